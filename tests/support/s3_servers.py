"""Real S3 servers on free loopback ports, in the foreground, stopped by their own PID.

moto (`moto_server`) has the broadest S3 semantics but checks no signature; nanio verifies SigV4
on every request and on presigned URLs (tampered or expired ones are refused), so signed-URL and
credential tests run against nanio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import urllib3
from minio import Minio

from tests.support import process
from tests.support.binaries import find_binary
from tests.support.ports import free_port

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
ACCESS_KEY = "claimcam-test"
SECRET_KEY = "claimcam-test-secret-key-0123456789"


def _venv_binary(name: str) -> str:
    """Console scripts of the venv, found even when pytest runs without the venv on PATH."""
    return find_binary(name, (str(Path(sys.executable).parent / name),))


class S3Server:
    name = "s3"

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """In the settings' form: with the scheme, which decides TLS."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.base / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    @contextmanager
    def client(self, *, secret_key: str | None = None) -> Iterator[Minio]:
        """A plain minio client, the way a consumer of the bucket reads it; its connections close at exit."""
        http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5.0, read=30.0), retries=False)
        try:
            yield Minio(
                f"127.0.0.1:{self.port}", self.access_key, secret_key or self.secret_key, secure=False,
                region="us-east-1", http_client=http,
            )
        finally:
            http.clear()

    @staticmethod
    def new_bucket_name() -> str:
        return f"t-{uuid.uuid4().hex[:16]}"

    def start(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=self.environment(), cwd=self.base
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=1):
                return True
        except urllib.error.HTTPError as e:  # any HTTP answer (403 for anonymous requests) means it is up
            e.close()
            return True
        except OSError:
            return False

    def _wait_ready(self) -> None:
        assert self._proc is not None
        process.wait_until_ready(
            self._proc, self._answers, self.name, START_TIMEOUT_S, lambda: f"; see {self.log_path}", step_s=0.05
        )

    def stop(self) -> None:
        """Terminate by PID; SIGKILL when it does not exit within the timeout."""
        if self._proc is not None:
            process.stop(self._proc, STOP_TIMEOUT_S)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


class MotoServer(S3Server):
    name = "moto"

    def __init__(self, base: Path) -> None:
        self.binary = _venv_binary("moto_server")
        super().__init__(base)

    def command(self) -> list[str]:
        return [self.binary, "-H", "127.0.0.1", "-p", str(self.port)]


class NanioServer(S3Server):
    name = "nanio"

    def __init__(self, base: Path) -> None:
        self.binary = _venv_binary("nanio")
        super().__init__(base)

    def command(self) -> list[str]:
        return [
            self.binary, "serve", "--host", "127.0.0.1", "--port", str(self.port),
            "--data-dir", str(self.base / "data"), "--log-level", "warning", "--no-access-log",
        ]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "NANIO_ACCESS_KEY": self.access_key, "NANIO_SECRET_KEY": self.secret_key}


@contextmanager
def running(server: S3Server) -> Iterator[S3Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
