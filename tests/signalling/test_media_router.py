"""The media router against a real redis-server: ownership, requests to the owner, failures.

Two routers stand for two nodes; behind each is a recording fake MediaPort (the real media plane
over two nodes is tested in test_two_nodes.py), so these tests can see where each call ran.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from recorder.captures import Capture, MediaUnavailable
from rooms.calls import Participant
from signalling.media_router import (
    MediaUnreachable,
    RemoteMediaError,
    RoutedMedia,
    RouterTimings,
    alive_key,
    owner_key,
    requests_channel,
)
from tests.support.redis_server import RedisServer, redis_server

FAST = RouterTimings(owner_ttl_s=30, alive_ttl_s=2, refresh_s=0.2, rpc_timeout_s=3.0)


@dataclass
class FakeMedia:
    node: str
    calls: set[str] = field(default_factory=set)
    log: list[tuple[str, str]] = field(default_factory=list)
    refuse: bool = False

    async def negotiate(self, invite_id: str, by: Participant, offer_sdp: object) -> str:
        self.log.append(("negotiate", invite_id))
        self.calls.add(invite_id)
        return f"answer from {self.node} for {by.name}: {offer_sdp}"

    async def drop(self, invite_id: str, sid: str) -> None:
        self.log.append(("drop", invite_id))
        self.calls.discard(invite_id)

    async def screenshot(self, invite_id: str, by: Participant) -> Capture:
        self.log.append(("screenshot", invite_id))
        if self.refuse:
            raise MediaUnavailable("the claimant's camera is not connected")
        return Capture({"id": f"shot-{self.node}", "by": by.name})

    async def start_recording(self, invite_id: str, by: Participant) -> None:
        self.log.append(("start_recording", invite_id))

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None:
        self.log.append(("stop_recording", invite_id))
        return None

    async def is_recording(self, invite_id: str) -> bool:
        self.log.append(("is_recording", invite_id))
        return True


def person(invite_id: str, name: str = "Ines") -> Participant:
    return Participant(f"sid-{name}", invite_id, "inspector", "u-1", name)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_server(Path(tmp_path_factory.mktemp("router-redis"))) as server:
        yield server


@dataclass
class Node:
    media: FakeMedia
    router: RoutedMedia


@pytest.fixture
async def nodes(redis: RedisServer) -> AsyncIterator[tuple[Node, Node]]:
    made: list[Node] = []
    for name in ("a", "b"):
        media = FakeMedia(name)
        router = RoutedMedia(media, redis.url, f"node-{name}", has_call=media.calls.__contains__, timings=FAST)
        await router.start()
        made.append(Node(media, router))
    yield made[0], made[1]
    for node in made:
        await node.router.close()


async def test_the_first_to_negotiate_owns_the_call_and_the_other_node_is_served_there(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    assert await a.router.negotiate("inv-1", person("inv-1", "Paula"), "offer-1") == \
        "answer from a for Paula: offer-1"
    assert await b.router.negotiate("inv-1", person("inv-1", "Ines"), "offer-2") == "answer from a for Ines: offer-2"
    shot = await b.router.screenshot("inv-1", person("inv-1"))
    assert shot.media == {"id": "shot-a", "by": "Ines"}
    await b.router.start_recording("inv-1", person("inv-1"))
    assert await b.router.is_recording("inv-1") is True
    assert await b.router.stop_recording("inv-1", person("inv-1")) is None
    await b.router.drop("inv-1", "sid-Ines")
    assert [op for op, _ in a.media.log] == [
        "negotiate", "negotiate", "screenshot", "start_recording", "is_recording", "stop_recording", "drop",
    ]
    assert b.media.log == []


async def test_a_refusal_on_the_owner_comes_back_with_its_code(nodes: tuple[Node, Node]) -> None:
    a, b = nodes
    await a.router.negotiate("inv-2", person("inv-2"), "offer")
    a.media.refuse = True
    with pytest.raises(RemoteMediaError) as refused:
        await b.router.screenshot("inv-2", person("inv-2"))
    assert refused.value.code == "media_unavailable"


async def test_ownership_ends_with_the_call(nodes: tuple[Node, Node], redis: RedisServer) -> None:
    a, b = nodes
    await a.router.negotiate("inv-3", person("inv-3"), "offer")
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        assert await client.get(owner_key("inv-3")) == "node-a"
        await b.router.drop("inv-3", "sid-x")  # the fake forgets the call: the owner's next refresh lets it go
        for _ in range(50):
            if await client.get(owner_key("inv-3")) is None:
                break
            await asyncio.sleep(0.05)
        assert await client.get(owner_key("inv-3")) is None
        # A call nobody owns runs where it is asked next.
        assert (await b.router.negotiate("inv-3", person("inv-3"), "again")).startswith("answer from b")
    finally:
        await client.aclose()


async def test_a_crashed_owner_is_taken_over(nodes: tuple[Node, Node], redis: RedisServer) -> None:
    _, b = nodes
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        # A node that claimed the call, then died: its alive key is gone, its owner key is not.
        await client.set(owner_key("inv-4"), "node-ghost", ex=30)
        assert not await client.exists(alive_key("node-ghost"))
        assert (await b.router.negotiate("inv-4", person("inv-4"), "offer")).startswith("answer from b")
        assert await client.get(owner_key("inv-4")) == "node-b"
    finally:
        await client.aclose()


async def test_an_owner_that_is_alive_but_deaf_gives_a_clear_error(
    nodes: tuple[Node, Node], redis: RedisServer
) -> None:
    _, b = nodes
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    try:
        await client.set(owner_key("inv-5"), "node-deaf", ex=30)
        await client.set(alive_key("node-deaf"), "1", ex=30)
        with pytest.raises(MediaUnreachable):
            await b.router.screenshot("inv-5", person("inv-5"))
    finally:
        await client.delete(owner_key("inv-5"), alive_key("node-deaf"))
        await client.aclose()


async def test_garbage_on_the_request_channel_is_answered_or_ignored(
    nodes: tuple[Node, Node], redis: RedisServer
) -> None:
    a, b = nodes
    client = aioredis.Redis.from_url(redis.url, decode_responses=True)
    replies = client.pubsub()
    await replies.subscribe("claimcam:media:reply:node-probe")
    try:
        await client.publish(requests_channel("node-a"), "not json {")
        bad: dict[str, Any] = {"id": "r1", "from": "node-probe", "op": "format_disk", "invite_id": "inv-6"}
        await client.publish(requests_channel("node-a"), json.dumps(bad))
        missing = {"id": "r2", "from": "node-probe", "op": "screenshot", "invite_id": "inv-6"}  # no participant
        await client.publish(requests_channel("node-a"), json.dumps(missing))
        answers: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(answers) < 2:
                message = await replies.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    answers.append(json.loads(message["data"]))
        assert {x["id"]: x["error"]["code"] for x in answers} == {"r1": "invalid_request", "r2": "invalid_request"}
        # The node still serves real requests.
        await a.router.negotiate("inv-6", person("inv-6"), "offer")
        assert (await b.router.screenshot("inv-6", person("inv-6"))).media["id"] == "shot-a"
    finally:
        await replies.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()
