"""A real PostgreSQL server for the session: initdb into a temp dir, run as `postgres` when root."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from tests.support import process
from tests.support.binaries import find_binary
from tests.support.ports import free_port

_PG_GLOBS = ("/usr/lib/postgresql/*/bin/{}",)


def _bin(name: str) -> str:
    return find_binary(name, tuple(g.format(name) for g in _PG_GLOBS))


def _demote() -> dict[str, Any]:
    """PostgreSQL refuses to run as root; run it as the `postgres` user then."""
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("postgres")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


class PostgresServer:
    """One PostgreSQL cluster in `base`, started and stopped by its own PID; it can be stopped and
    started again on the same port and data folder, as an operator's restart would."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.port = 0
        self._demote = _demote()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's URL without a database part."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        if self._demote:
            for p in [self.base, *self.base.parents]:
                p.chmod(p.stat().st_mode | 0o011)  # traversable for the postgres user
                if p == Path("/"):
                    break
            shutil.chown(self.base, user="postgres", group="postgres")
        subprocess.run(
            [_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8",
             "--locale=C"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **self._demote,
        )
        self.port = free_port()

    def start(self) -> None:
        self._log = open(self.base / "postgres.log", "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.base),
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
             "-c", "full_page_writes=off"],
            stdout=self._log, stderr=subprocess.STDOUT, **self._demote,
        )
        try:
            _wait_ready(self.port, self._proc)
        except BaseException:
            self.stop()
            raise

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """SIGTERM waits for clients to leave; SIGINT (fast shutdown) ends their sessions at once."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.send_signal(sig)
                try:
                    self._proc.wait(process.STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(process.STOP_TIMEOUT_S)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """Yields a server URL (no database part); stops the server by its own PID."""
    server = PostgresServer(base)
    server.init()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres", timeout=1)
        except (OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("postgres exited during start-up")
        # A thread of its own: the test session's event loop may be running in this one.
        with ThreadPoolExecutor(1) as pool:
            if pool.submit(asyncio.run, probe()).result():
                return
        time.sleep(0.05)
    raise RuntimeError("postgres did not accept connections within 30 s")


async def create_database(server_url: str, name: str) -> str:
    import asyncpg

    port = int(server_url.rsplit(":", 1)[1])
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="postgres")
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return f"{server_url}/{name}"
