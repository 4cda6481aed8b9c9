"""Servers a benchmark starts for itself on 127.0.0.1, each a child process stopped by its own PID.

Children run in their own session, so Ctrl-C reaches only the benchmark, which then stops them in
order (the reverse of their start). Should the benchmark die without doing so (SIGKILL, a crash),
the kernel sends them SIGTERM (Linux `PR_SET_PDEATHSIG`). Their CPU time is read from /proc.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import glob
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import aiohttp
import redis.asyncio as aioredis
import redis.exceptions

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
PR_SET_PDEATHSIG = 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ServiceError(Exception):
    """A server the benchmark needs is missing, or did not start."""


def find_binary(name: str, extra_globs: tuple[str, ...] = ()) -> str:
    """On PATH (sbin too), else the newest match of a glob; tests/support/binaries.py adds fail/skip."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path:
        return path
    for pattern in extra_globs:
        hits = sorted(glob.glob(pattern), reverse=True)
        if hits:
            return hits[0]
    raise ServiceError(f"{name} is not installed (Debian: apt-get install {name}; `make test` installs it too)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a whole process (every thread), from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # the command name may hold spaces and parentheses
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime: fields 14 and 15 of stat(5)


def _die_with_parent() -> Callable[[], None] | None:
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None
    sigterm = int(signal.SIGTERM)

    def set_death_signal() -> None:
        prctl(PR_SET_PDEATHSIG, sigterm)

    return set_death_signal


@dataclass
class Child:
    name: str
    proc: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM by PID, SIGKILL when it does not exit in time; safe on a process already gone."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()


Probe = Callable[[], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Server:
    child: Child
    url: str


class Services:
    """Owns every child process of one scenario; leaving the `async with` stops them all, whatever happened."""

    def __init__(self, base: Path, http: aiohttp.ClientSession, report: Callable[[str], None]) -> None:
        self.base = base
        self._http = http
        self._report = report
        self.children: list[Child] = []
        self._die_with_parent = _die_with_parent()

    async def __aenter__(self) -> Services:
        return self

    async def __aexit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        # Shielded: a Ctrl-C during the stop must not leave a child behind.
        task = asyncio.ensure_future(self.stop_all())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, STOP_TIMEOUT_S * 2)
            raise

    async def stop_all(self) -> None:
        while self.children:
            child = self.children.pop()
            await child.stop()
            self._report(f"stopped {child.name} (pid {child.pid})")

    async def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        self.base.mkdir(parents=True, exist_ok=True)
        log_path = self.base / f"{name.replace(' ', '-')}.log"
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                start_new_session=True, preexec_fn=self._die_with_parent,
            )
        finally:
            os.close(log)  # the child has its own descriptor
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    async def wait_ready(self, child: Child, probe: Probe, timeout_s: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not child.running:
                raise ServiceError(f"{child.name} exited during start-up (code {child.proc.returncode}):\n"
                                   f"{child.log_tail()}")
            if await probe():
                self._report(f"started {child.name} (pid {child.pid})")
                return
            await asyncio.sleep(0.05)
        raise ServiceError(f"{child.name} did not answer within {timeout_s:g} s:\n{child.log_tail()}")

    async def _http_ok(self, url: str) -> bool:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                return r.status == 200
        return False

    async def redis(self) -> Server:
        binary = find_binary("redis-server")
        port = free_port()
        child = await self.spawn("redis-server", [
            binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.base), "--protected-mode", "yes", "--loglevel", "warning",
        ])
        url = f"redis://127.0.0.1:{port}/0"

        async def answers() -> bool:
            client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(await client.ping())
            except (redis.exceptions.RedisError, OSError):
                return False
            finally:
                await client.aclose()

        await self.wait_ready(child, answers)
        return Server(child, url)

    async def claimcam(self, name: str, settings: dict[str, str]) -> Server:
        """`claimcam serve` with these `CLAIMCAM_*` settings (and none inherited from this environment)."""
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMCAM_")}
        env.update({"CLAIMCAM_HOST": "127.0.0.1", "CLAIMCAM_PORT": str(port), "PYTHONUNBUFFERED": "1"})
        env.update(settings)
        child = await self.spawn(name, [sys.executable, "-m", "web.cli", "serve"], env)
        url = f"http://127.0.0.1:{port}"
        await self.wait_ready(child, lambda: self._http_ok(f"{url}/readyz"))
        return Server(child, url)

    async def relay(self) -> Server:
        port = free_port()
        child = await self.spawn("raw websocket relay", [sys.executable, "-m", "bench.wsrelay", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        await self.wait_ready(child, lambda: self._http_ok(f"{url}/healthz"))
        return Server(child, url)
