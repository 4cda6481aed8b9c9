"""A real PostgreSQL server for the session: initdb into a temp dir, run as `postgres` when root."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """Yields a server URL (no database part); stops the server by its own PID."""
    initdb, postgres = _bin("initdb"), _bin("postgres")
    demote = _demote()
    base.mkdir(parents=True, exist_ok=True)
    if demote:
        for p in [base, *base.parents]:
            p.chmod(p.stat().st_mode | 0o011)  # traversable for the postgres user
            if p == Path("/"):
                break
        shutil.chown(base, user="postgres", group="postgres")
    data = base / "data"
    subprocess.run(
        [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **demote,
    )
    port = free_port()
    log = open(base / "postgres.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [postgres, "-D", str(data), "-p", str(port), "-k", str(base), "-c", "listen_addresses=127.0.0.1",
         "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
        stdout=log, stderr=subprocess.STDOUT, **demote,
    )
    try:
        _wait_ready(port, proc)
        yield f"postgresql+asyncpg://postgres@127.0.0.1:{port}"
    finally:
        process.stop(proc)
        log.close()


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
