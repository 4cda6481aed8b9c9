"""Two nodes behind one Redis: a call whose people sit on different nodes works like one on a single node.

Node A and node B are real `claimcam serve` processes sharing one PostgreSQL database and one real
redis-server; the clients are python-socketio clients over websockets. The last test runs both apps
in this process instead, because only from inside can the Redis listener task itself be killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import socketio
from aiohttp.test_utils import TestServer

from media.ice import IceSettings
from signalling import events as ev
from signalling.media_router import owner_key
from tests.conftest import test_settings as app_settings
from tests.support.nodes import (
    CASE,
    SECRET,
    Invite,
    connect,
    create_invite,
    get_json,
    invite_status,
    join,
    offer_over,
    stop_process,
    timeout,
)
from tests.support.ports import free_port
from tests.support.postgres import create_database
from tests.support.redis_server import RedisServer, redis_server
from tests.support.rtc_bots import claimant_bot, inspector_bot
from tests.support.sio_peer import Peer
from web import demo
from web.app import create_app
from web.keys import hub_key

pytestmark = pytest.mark.postgres

CLAIMCAM = str(Path(sys.executable).with_name("claimcam"))
READY_WITHIN_S = 30.0
RECOVER_WITHIN_S = 20.0
# What the nodes log when Redis goes away: the health watch (signalling/redis_health.py), and
# python-socketio's own listener retry.
WATCH_NOTICED = "Socket.IO Redis listener"
STOCK_NOTICED = "Cannot receive from redis"


# ---- talking to a node over HTTP ----


async def chat_until_delivered(sender: Peer, receiver: Peer, within_s: float) -> None:
    """Send chat from `sender` about once a second (its rate limit) until `receiver` gets one of them.

    While Redis is away an emit may take long or fail, so a send that times out or is refused
    only counts as not delivered.
    """
    deadline = time.monotonic() + within_s
    sent: set[str] = set()
    while time.monotonic() < deadline:
        text = f"ping {uuid.uuid4().hex[:8]}"
        with contextlib.suppress(TimeoutError, socketio.exceptions.TimeoutError):
            ack = await sender.call(ev.CHAT, {"text": text})
            if ack.get("ok"):
                sent.add(text)
        arrived = next((m["text"] for m in receiver.received[ev.CHAT] if m["text"] in sent), None)
        if arrived is None:
            with contextlib.suppress(AssertionError):
                got = await receiver.wait_for(ev.CHAT, lambda m: m["text"] in sent, within_s=1.0)
                arrived = got["text"]
        if arrived is not None:
            return
    raise AssertionError(f"none of {len(sent)} chat messages crossed the nodes within {within_s} s")


# ---- two `claimcam serve` processes ----


@dataclass
class Node:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_node(name: str, base: Path, database_url: str, redis_url: str) -> Node:
    port = free_port()
    base.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMCAM_")}
    env.update(
        CLAIMCAM_DATABASE_URL=database_url,
        CLAIMCAM_REDIS_URL=redis_url,
        CLAIMCAM_SECRET=SECRET,
        CLAIMCAM_DATA_DIR=str(base / "var"),
        CLAIMCAM_PORT=str(port),
        CLAIMCAM_REDIS_HEALTH_INTERVAL_S="0.5",
        CLAIMCAM_DEMO="true",
        CLAIMCAM_ICE_HOST_ADDRESSES="127.0.0.1",
    )
    log_path = base / f"node-{name}.log"
    with open(log_path, "wb") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen([CLAIMCAM, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    return Node(name, port, proc, log_path)


async def wait_ready(http: aiohttp.ClientSession, node: Node) -> None:
    deadline = time.monotonic() + READY_WITHIN_S
    while time.monotonic() < deadline:
        assert node.proc.poll() is None, f"node {node.name} exited during start-up:\n{node.log()}"
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(f"{node.url}/readyz", timeout=timeout(1)) as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.05)
    raise AssertionError(f"node {node.name} not ready within {READY_WITHIN_S} s:\n{node.log()}")


@dataclass
class Cluster:
    a: Node
    b: Node
    redis: RedisServer
    http: aiohttp.ClientSession
    tokens: dict[str, str]  # demo user id -> bearer token
    node_ids: dict[str, str]  # "a"/"b" -> the node id each reports on /readyz


@dataclass
class Calls:
    """One test's view of the cluster: its own invite, and the sockets it opened (closed after it)."""

    cluster: Cluster
    peers: list[Peer] = field(default_factory=list)

    async def invite(self) -> Invite:
        return await create_invite(self.cluster.http, self.cluster.a.url, self.cluster.tokens["u-inspector"])

    async def claimant(self, node: Node, invite: Invite) -> Peer:
        return await join(await connect(self.peers, node.url, {"token": invite.link_token}))

    async def inspector(self, node: Node, invite: Invite) -> Peer:
        auth = {"jwt": self.cluster.tokens["u-inspector"], "invite_id": invite.id}
        return await join(await connect(self.peers, node.url, auth))

    async def watcher(self, node: Node) -> Peer:
        peer = await connect(self.peers, node.url, {"jwt": self.cluster.tokens["u-viewer"]}, ev.STAFF_NAMESPACE)
        ack = await peer.call(ev.WATCH, {"case_id": CASE})
        assert ack == {"ok": True, "case_id": CASE, "access": "read"}, ack
        return peer

    async def status(self, invite: Invite) -> str:
        c = self.cluster
        return await invite_status(c.http, c.a.url, invite.id, c.tokens["u-inspector"])


@pytest.fixture(scope="module")
async def cluster(pg_server: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    base = tmp_path_factory.mktemp("two-nodes")
    database_url = await create_database(pg_server, f"t_{uuid.uuid4().hex[:12]}")
    nodes: list[Node] = []
    with redis_server(base / "redis") as redis:
        async with aiohttp.ClientSession() as http:
            try:
                # One after the other: both migrate, and the second finds the work done.
                for name in ("a", "b"):
                    nodes.append(start_node(name, base / name, database_url, redis.url))
                    await wait_ready(http, nodes[-1])
                info = await get_json(http, f"{nodes[0].url}/dev/demo")
                tokens = {u["id"]: u["token"] for u in info["users"]}
                assert tokens.keys() >= {"u-inspector", "u-viewer"}
                node_ids = {n.name: (await get_json(http, f"{n.url}/readyz"))["node"] for n in nodes}
                assert len(set(node_ids.values())) == 2
                yield Cluster(nodes[0], nodes[1], redis, http, tokens, node_ids)
            finally:
                for node in nodes:
                    stop_process(node.proc)


@pytest.fixture
async def calls(cluster: Cluster) -> AsyncIterator[Calls]:
    view = Calls(cluster)
    yield view
    for peer in view.peers:
        await peer.close()


# ---- media: one owner node per call ----


async def media_owner(cluster: Cluster, invite: Invite) -> str | None:
    client = aioredis.Redis.from_url(cluster.redis.url, decode_responses=True)
    try:
        value = await client.get(owner_key(invite.id))
        return None if value is None else str(value)
    finally:
        await client.aclose()


@pytest.mark.parametrize("first", ["claimant", "inspector"])
async def test_call_media_runs_on_the_node_that_negotiated_first(
    calls: Calls, loopback_ice: IceSettings, first: str
) -> None:
    """Claimant on node A, inspector on node B; whoever offers first makes his node the owner, and
    the other's offer, screenshot and recording are carried out there: the video still arrives."""
    c = calls.cluster
    invite = await calls.invite()
    claimant = await calls.claimant(c.a, invite)
    inspector = await calls.inspector(c.b, invite)
    sender, receiver = claimant_bot(), inspector_bot()
    try:
        if first == "claimant":
            await sender.connect(lambda sdp: offer_over(claimant, sdp))
            await receiver.connect(lambda sdp: offer_over(inspector, sdp))
        else:
            await receiver.connect(lambda sdp: offer_over(inspector, sdp))
            await sender.connect(lambda sdp: offer_over(claimant, sdp))
        expected_owner = c.node_ids["a" if first == "claimant" else "b"]
        assert await media_owner(c, invite) == expected_owner
        await receiver.wait_for("video", 30, within_s=20)
        await sender.wait_for("audio", 25, within_s=10)  # the inspector's voice, back across

        shot = await inspector.call(ev.SCREENSHOT)
        assert shot["ok"], shot
        assert shot["media"]["content_type"] == "image/jpeg" and shot["media"]["width"] == 320
        started = await inspector.call(ev.RECORD_START)
        assert started == {"ok": True, "recording": True}, started
        # The join ack of a newcomer on the other node asks the owner whether it records.
        late = await connect(calls.peers, c.a.url, {"jwt": c.tokens["u-inspector"], "invite_id": invite.id})
        ack = await late.call("join")
        assert ack["ok"] and ack["recording"] is True, ack
        await asyncio.sleep(2.0)  # past the recording's first keyframe
        stopped = await inspector.call(ev.RECORD_STOP)
        assert stopped["ok"] and stopped["media"]["content_type"] == "video/webm", stopped
    finally:
        await sender.close()
        await receiver.close()
    # Everyone leaves: the owner lets the call go, and the key with it.
    for peer in calls.peers:
        await peer.close()
    calls.peers.clear()
    for _ in range(100):
        if await media_owner(c, invite) is None:
            break
        await asyncio.sleep(0.1)
    assert await media_owner(c, invite) is None


async def test_claimant_on_node_a_sees_the_inspector_on_node_b_in_presence(calls: Calls) -> None:
    c = calls.cluster
    invite = await calls.invite()
    claimant = await calls.claimant(c.a, invite)
    await calls.inspector(c.b, invite)
    presence = await claimant.wait_for(ev.PRESENCE, lambda d: len(d["participants"]) == 2)
    assert sorted(p["role"] for p in presence["participants"]) == ["claimant", "inspector"]


async def test_chat_crosses_between_the_nodes_both_ways(calls: Calls) -> None:
    c = calls.cluster
    invite = await calls.invite()
    claimant = await calls.claimant(c.a, invite)
    inspector = await calls.inspector(c.b, invite)
    assert (await inspector.call(ev.CHAT, {"text": "Show me the floor, please"}))["ok"]
    got = await claimant.wait_for(ev.CHAT)
    assert (got["text"], got["from"]["role"]) == ("Show me the floor, please", "inspector")
    assert (await claimant.call(ev.CHAT, {"text": "Here it is"}))["ok"]
    back = await inspector.wait_for(ev.CHAT)
    assert (back["text"], back["from"]["role"]) == ("Here it is", "claimant")


async def test_cursor_from_the_inspector_on_node_b_reaches_the_claimant_on_node_a(calls: Calls) -> None:
    c = calls.cluster
    invite = await calls.invite()
    claimant = await calls.claimant(c.a, invite)
    inspector = await calls.inspector(c.b, invite)
    assert (await inspector.call(ev.CURSOR, {"action": "show"}))["ok"]
    await asyncio.sleep(0.05)  # moves closer together than 1/30 s are dropped
    assert (await inspector.call(ev.CURSOR, {"action": "move", "x": 0.5, "y": 0.25}))["relayed"]
    await claimant.wait_for(ev.CURSOR, lambda d: d["action"] == "show")
    move = await claimant.wait_for(ev.CURSOR, lambda d: d["action"] == "move")
    assert (move["x"], move["y"], move["name"]) == (0.5, 0.25, "Ines Inspector")


async def test_staff_watchers_on_both_nodes_see_the_claimant_join_on_node_a(calls: Calls) -> None:
    c = calls.cluster
    invite = await calls.invite()
    on_b = await calls.watcher(c.b)
    on_a = await calls.watcher(c.a)
    await calls.claimant(c.a, invite)
    for watcher in (on_b, on_a):
        update = await watcher.wait_for(
            ev.INVITE_UPDATED, lambda d: d["invite_id"] == invite.id and d["status"] == "IN_CALL"
        )
        assert update["case_id"] == CASE and "join" not in update["actions"]  # the viewer only reads


async def test_end_call_on_node_b_disconnects_the_claimant_on_node_a(calls: Calls) -> None:
    c = calls.cluster
    invite = await calls.invite()
    claimant = await calls.claimant(c.a, invite)
    inspector = await calls.inspector(c.b, invite)
    assert await calls.status(invite) == "IN_CALL"
    assert (await inspector.call(ev.END_CALL))["ok"]
    ended = await claimant.wait_for(ev.CALL_ENDED)
    assert ended["by"] == {"role": "inspector", "name": "Ines Inspector"}
    await asyncio.wait_for(claimant.disconnected.wait(), 5)
    # Node A writes the claimant's leaving when its socket closes: poll for it, at most 5 s.
    statuses = []
    for _ in range(100):
        statuses.append(await calls.status(invite))
        if statuses[-1] == "ACTIVE":
            break
        await asyncio.sleep(0.05)
    assert statuses[-1] == "ACTIVE", statuses


async def test_cross_node_chat_recovers_after_redis_restarts(calls: Calls) -> None:
    # Last in the module: it takes the shared Redis away (and gives it back).
    c = calls.cluster
    invite = await calls.invite()
    claimant = await calls.claimant(c.a, invite)
    inspector = await calls.inspector(c.b, invite)
    await chat_until_delivered(inspector, claimant, within_s=5)
    c.redis.kill()
    await asyncio.sleep(1.0)
    c.redis.start()  # the same port
    await chat_until_delivered(inspector, claimant, within_s=RECOVER_WITHIN_S)
    logs = c.a.log() + c.b.log()
    # The health watch should notice the outage; should the stock retry win the race, its own line shows it.
    assert WATCH_NOTICED in logs or STOCK_NOTICED in logs, logs[-4000:]


# ---- in-process: kill the listener task itself (python-socketio issue #1581) ----


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


async def test_watch_restarts_a_dead_listener_so_cross_node_chat_resumes(
    pg_server: str, redis: RedisServer, tmp_path: Path
) -> None:
    database_url = await create_database(pg_server, f"t_{uuid.uuid4().hex[:12]}")
    servers: list[TestServer] = []
    peers: list[Peer] = []
    try:
        async with aiohttp.ClientSession() as http:
            settings = {
                name: app_settings(tmp_path / name, redis_url=redis.url, database_url=database_url,
                                   redis_health_interval_s=0.3, demo=True)
                for name in ("a", "b")
            }
            for name in ("a", "b"):  # one after the other, like the processes above
                server = TestServer(create_app(settings[name]), host="127.0.0.1", port=free_port())
                await server.start_server()
                servers.append(server)
            app_a, url_a, url_b = servers[0].app, str(servers[0].make_url("")), str(servers[1].make_url(""))
            assert app_a is not None
            jwt_secret = settings["a"].jwt_secret  # the same on both: test_settings gives them one secret
            inspector_token = next(u.token for u in demo.demo_users(jwt_secret) if u.id == "u-inspector")
            # A node can go a while before its first client (and its listener) arrives: the watch must
            # live through that, or nothing is left to notice the listener dying later.
            await asyncio.sleep(1.0)
            invite = await create_invite(http, url_a, inspector_token)
            claimant = await join(await connect(peers, url_a, {"token": invite.link_token}))
            inspector = await join(await connect(peers, url_b, {"jwt": inspector_token, "invite_id": invite.id}))
            await chat_until_delivered(inspector, claimant, within_s=5)

            manager = app_a[hub_key].manager
            assert manager is not None and manager.thread is not None
            dead = manager.thread
            dead.cancel()
            await asyncio.wait_for(asyncio.wait({dead}), 5)
            assert dead.done()

            await chat_until_delivered(inspector, claimant, within_s=5)
            assert manager.restarts >= 1
            assert manager.thread is not dead and not manager.thread.done()
    finally:
        for peer in peers:
            await peer.close()
        for server in reversed(servers):
            await server.close()
