"""Malformed, hostile and excessive input: a clear error acknowledgement, never a crash or stuck room."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.signalling.conftest import Call


@pytest.mark.parametrize(
    ("event", "payload"),
    [("chat", "just a string"), ("chat", ["text"]), ("chat", 42), ("chat", {"text": 5}),
     ("chat", {"text": "hi", "html": "<b>"}), ("mute", {"muted": "yes"}), ("mute", {}),
     ("camera_switch_answer", {"request_id": "../../etc", "allow": True}), ("join", {"as": "inspector"}),
     ("camera_facing", {"facing": "sideways"}), ("end_call", {"force": True})],
)
async def test_malformed_payload_gets_an_error_ack(call: Call, event: str, payload: Any) -> None:
    peer = await call.claimant()
    ack = await peer.call(event, payload)
    assert ack["ok"] is False and ack["error"]["code"] in {"invalid_payload", "forbidden"}
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]


async def test_unknown_event_gets_an_error_ack(call: Call) -> None:
    peer = await call.claimant()
    ack = await peer.call("take_over_the_server", {"x": 1})
    assert ack["error"]["code"] == "unknown_event"


async def test_several_arguments_are_refused(call: Call) -> None:
    peer = await call.claimant()
    ack = await peer.call("chat", {"text": "a"}, {"text": "b"})
    assert ack["error"]["code"] == "invalid_payload"
    assert await call.events("chat") == []


async def test_events_before_join_are_refused(call: Call) -> None:
    peer = await call.claimant(join=False)
    for event, payload in (("chat", {"text": "hi"}), ("mute", {"muted": True}), ("end_call", {})):
        assert (await peer.call(event, payload))["error"]["code"] == "not_joined"
    assert await call.status() == "INVITED"


async def test_event_flood_is_rate_limited_and_the_room_keeps_working(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    acks = await asyncio.gather(*(claimant.call("mute", {"muted": i % 2 == 0}) for i in range(150)))
    assert any(not a["ok"] and a["error"]["code"] == "rate_limited" for a in acks)
    await asyncio.sleep(1.5)  # the bucket refills
    assert (await inspector.call("chat", {"text": "still here?"}))["ok"]
    assert (await claimant.wait_for("chat"))["text"] == "still here?"


async def test_oversized_message_drops_that_socket_only(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    await claimant.sio.emit("chat", {"text": "x" * 200_000}, namespace="/call")
    await asyncio.wait_for(claimant.disconnected.wait(), 5)
    assert (await inspector.call("chat", {"text": "after the flood"}))["ok"]
    status, _ = await call.api.call("GET", "/healthz")
    assert status == 200
    await inspector.wait_for("presence", lambda d: len(d["participants"]) == 1)
