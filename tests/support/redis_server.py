"""A real redis-server on a free loopback port, in the foreground, stopped by its own PID.

`kill()` ends it hard (SIGKILL, as a crash would) and `start()` brings it back on the same port,
so a test can take Redis away under running nodes and give it back.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import redis

from tests.support import process
from tests.support.binaries import find_binary
from tests.support.ports import free_port

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


class RedisServer:
    def __init__(self, base: Path, port: int | None = None) -> None:
        self.binary = find_binary("redis-server")
        self.base = base
        self.port = port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.base / "redis.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (again) on `self.port` and return once it answers PING."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        self._close_log()
        self.base.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()/kill()
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.base), "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        self.starts += 1
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self._proc is not None
        process.wait_until_ready(
            self._proc, self.ping, "redis-server", START_TIMEOUT_S, lambda: f"; see {self.log_path}"
        )

    def ping(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def kill(self) -> None:
        """End the server at once with SIGKILL, the way a crash would, and reap it."""
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            self._proc.wait(STOP_TIMEOUT_S)
            self._proc = None
        self._close_log()

    def stop(self) -> None:
        """Terminate by PID; SIGKILL when it does not exit within the timeout."""
        if self._proc is not None:
            process.stop(self._proc, STOP_TIMEOUT_S)
            self._proc = None
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


@contextmanager
def redis_server(base: Path) -> Iterator[RedisServer]:
    server = RedisServer(base)
    server.start()
    try:
        yield server
    finally:
        server.stop()
