"""Servers a benchmark starts for itself on 127.0.0.1, each a child process stopped by its own PID.

Children run in their own session, so Ctrl-C reaches only the benchmark, which then stops them in
order (the reverse of their start). Should the benchmark die without doing so (SIGKILL, a crash),
the kernel sends them SIGTERM (Linux `PR_SET_PDEATHSIG`). Their CPU time is read from /proc.
`claimcam serve --workers N` is one child that supervises N workers: it counts as started once every
worker answers, and the workers go with it when it stops.
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

from bench import procstat
from web import workers as web_workers

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# A supervisor gives its workers this long to stop before it kills them; it needs that and a little more.
SUPERVISOR_STOP_TIMEOUT_S = web_workers.STOP_WITHIN_S + 5.0
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
    stop_timeout_s: float = STOP_TIMEOUT_S

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

    async def stop(self) -> None:
        """SIGTERM by PID, SIGKILL when it does not exit in time; safe on a process already gone.

        Its own children (a supervisor's workers) are its to stop; any it leaves behind, because it
        was killed or crashed, are killed by their PIDs.
        """
        if self.proc.returncode is None:
            descendants = [(pid, procstat.start_ticks(pid)) for pid in procstat.process_tree(self.pid)[1:]]
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), self.stop_timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                await self.proc.wait()
            _kill_left_behind(descendants)


def _kill_left_behind(processes: list[tuple[int, int | None]]) -> None:
    for pid, started in processes:
        # The start time tells the same process from a new one that got its PID since.
        if started is not None and procstat.start_ticks(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


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
        budget = sum(c.stop_timeout_s for c in self.children) + STOP_TIMEOUT_S
        task = asyncio.ensure_future(self.stop_all())
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, budget)
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

    async def claimcam(self, name: str, settings: dict[str, str], workers: int = 1) -> Server:
        """`claimcam serve` with these `CLAIMCAM_*` settings (and none inherited from this environment).

        With `workers` above 1 (`--workers N`, which needs `CLAIMCAM_REDIS_URL` in `settings`) it is
        ready once every worker has answered `/readyz`: the first one listens seconds before the others.
        """
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMCAM_")}
        env.update({"CLAIMCAM_HOST": "127.0.0.1", "CLAIMCAM_PORT": str(port), "PYTHONUNBUFFERED": "1"})
        env.update(settings)
        argv = [sys.executable, "-m", "web.cli", "serve"]
        if workers > 1:
            argv += ["--workers", str(workers)]
        child = await self.spawn(name, argv, env)
        url = f"http://127.0.0.1:{port}"
        if workers == 1:
            await self.wait_ready(child, lambda: self._http_ok(f"{url}/readyz"))
            return Server(child, url)
        child.stop_timeout_s = SUPERVISOR_STOP_TIMEOUT_S
        nodes: set[str] = set()

        async def every_worker_answers() -> bool:
            node = await self._node(f"{url}/readyz")
            if node is not None:
                nodes.add(node)
            return len(nodes) == workers

        await self.wait_ready(child, every_worker_answers)
        return Server(child, url)

    async def _node(self, readyz: str) -> str | None:
        """The node that answered, over a connection of its own: the kernel hands each new connection to one
        of the listening workers, so a reused one would keep asking the same worker."""
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError, ValueError, KeyError):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as fresh, \
                    fresh.get(readyz, timeout=aiohttp.ClientTimeout(total=1)) as r:
                if r.status == 200:
                    return str((await r.json())["node"])
        return None

    async def relay(self) -> Server:
        port = free_port()
        child = await self.spawn("raw websocket relay", [sys.executable, "-m", "bench.wsrelay", "--port", str(port)])
        url = f"http://127.0.0.1:{port}"
        await self.wait_ready(child, lambda: self._http_ok(f"{url}/healthz"))
        return Server(child, url)
