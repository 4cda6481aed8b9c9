"""`claimcam serve --workers 2`: two processes on one port, calls working whichever worker each side hits."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from media.ice import IceSettings
from tests.support.nodes import (
    SECRET,
    connect,
    create_invite,
    get_json,
    join,
    offer_over,
    stop_process,
)
from tests.support.ports import free_port
from tests.support.postgres import create_database
from tests.support.redis_server import redis_server
from tests.support.rtc_bots import claimant_bot, inspector_bot
from tests.support.sio_peer import Peer

pytestmark = pytest.mark.postgres

CLAIMCAM = str(Path(sys.executable).with_name("claimcam"))


@dataclass
class Workers:
    url: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def children(self) -> list[int]:
        """PIDs whose parent is the supervisor (from /proc, no psutil needed)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.proc.pid:
                    found.append(int(entry.name))
        return found


def env_for(base: Path, database_url: str, redis_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMCAM_")}
    env.update(
        CLAIMCAM_DATABASE_URL=database_url, CLAIMCAM_REDIS_URL=redis_url, CLAIMCAM_SECRET=SECRET,
        CLAIMCAM_DATA_DIR=str(base / "var"), CLAIMCAM_PORT=str(port), CLAIMCAM_DEMO="true",
        CLAIMCAM_ICE_HOST_ADDRESSES="127.0.0.1",
    )
    return env


def start(log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen([CLAIMCAM, "serve", "--workers", "2"], stdout=log, stderr=subprocess.STDOUT, env=env)


def gone(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return not status.exists() or "zombie" in status.read_text()


@pytest.fixture
async def workers(pg_server: str, tmp_path: Path) -> AsyncIterator[Workers]:
    database_url = await create_database(pg_server, f"t_{uuid.uuid4().hex[:12]}")
    port = free_port()
    with redis_server(tmp_path / "redis") as redis:
        log_path = tmp_path / "workers.log"
        proc = start(log_path, env_for(tmp_path, database_url, redis.url, port))
        running = Workers(f"http://127.0.0.1:{port}", proc, log_path)
        try:
            async with aiohttp.ClientSession() as http:
                for _ in range(300):
                    assert proc.poll() is None, log_path.read_text()
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{running.url}/readyz") as r:
                            if r.status == 200 and len(running.children()) == 2:
                                break
                    await asyncio.sleep(0.1)
            yield running
        finally:
            stop_process(proc)


async def node_ids_seen(url: str, attempts: int = 300) -> set[str]:
    """Each request on a fresh connection: the kernel spreads connections over the listeners (once
    the second worker listens too, which may take a few seconds after the first)."""
    seen: set[str] = set()
    for _ in range(attempts):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            seen.add((await get_json(http, f"{url}/readyz"))["node"])
        if len(seen) == 2:
            break
        await asyncio.sleep(0.05)
    return seen


async def test_two_workers_share_one_port_and_carry_calls(workers: Workers, loopback_ice: IceSettings) -> None:
    assert len(await node_ids_seen(workers.url)) == 2
    async with aiohttp.ClientSession() as http:
        tokens = {u["id"]: u["token"] for u in (await get_json(http, f"{workers.url}/dev/demo"))["users"]}
        # Several calls: their sockets land on either worker, so some cross; every one must work.
        for _ in range(3):
            invite = await create_invite(http, workers.url, tokens["u-inspector"])
            peers: list[Peer] = []
            sender, receiver = claimant_bot(), inspector_bot()
            try:
                claimant = await join(await connect(peers, workers.url, {"token": invite.link_token}))
                inspector = await join(await connect(peers, workers.url,
                                                     {"jwt": tokens["u-inspector"], "invite_id": invite.id}))
                await sender.connect(functools.partial(offer_over, claimant))
                await receiver.connect(functools.partial(offer_over, inspector))
                await receiver.wait_for("video", 20, within_s=20)
                shot = await inspector.call("screenshot")
                assert shot["ok"], shot
            finally:
                await sender.close()
                await receiver.close()
                for peer in peers:
                    await peer.close()


async def test_polling_is_refused_when_several_workers_share_the_port(workers: Workers) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{workers.url}/socket.io/?EIO=4&transport=polling") as r:
        assert r.status == 400


async def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(workers: Workers) -> None:
    assert len(await node_ids_seen(workers.url)) == 2
    first = workers.children()
    assert len(first) == 2
    os.kill(first[0], signal.SIGKILL)
    for _ in range(100):
        now = workers.children()
        if len(now) == 2 and first[0] not in now:
            break
        await asyncio.sleep(0.1)
    now = workers.children()
    assert len(now) == 2 and first[0] not in now, workers.log_path.read_text()
    workers.proc.send_signal(signal.SIGTERM)
    assert workers.proc.wait(20) == 0
    assert all(gone(pid) for pid in now)


def test_more_than_one_worker_needs_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMCAM_")}
    env["CLAIMCAM_DATA_DIR"] = str(tmp_path)
    done = subprocess.run([CLAIMCAM, "serve", "--workers", "2"], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2 and b"CLAIMCAM_REDIS_URL" in done.stderr
    done = subprocess.run([CLAIMCAM, "serve", "--workers", "0"], env=env, capture_output=True, timeout=30)
    assert done.returncode == 2 and b"--workers must be" in done.stderr
