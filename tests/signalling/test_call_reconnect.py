"""A lost connection is not a goodbye: the claimant's grace period, and a page replacing its old connection."""

from __future__ import annotations

import asyncio

import pytest

from tests.signalling.conftest import Call, StartCall
from tests.support.sio_peer import Peer, Refused

PAGE = "page-0123456789abcdef"


def fresh(peer: Peer, event: str) -> None:
    """Forget what `peer` received of `event`, so a wait sees only what comes next."""
    peer.received[event].clear()


async def test_a_lost_claimant_keeps_the_call_and_its_recording_until_the_grace_is_over(start_call: StartCall) -> None:
    call = await start_call(reconnect_grace_s=0.6)
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await inspector.call("record_start"))["ok"]
    fresh(inspector, "presence")
    await claimant.lose_connection()
    await inspector.wait_for("presence", lambda d: len(d["participants"]) == 1)
    assert await call.status() == "IN_CALL"
    assert call.media.recording == {call.invite_id}
    assert "claimant_disconnected" in await call.event_kinds()

    stopped = await inspector.wait_for("recording", lambda d: d["active"] is False, within_s=5)
    assert stopped["by"] == "Paula Policyholder" and call.media.recording == set()
    assert await call.status() == "ACTIVE"
    [ended] = await call.events("call_ended")
    assert ended["data"]["reason"] == "claimant_lost"


async def test_a_claimant_back_within_the_grace_carries_on_the_call(start_call: StartCall) -> None:
    call = await start_call(reconnect_grace_s=10.0)
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await inspector.call("record_start"))["ok"]
    await claimant.lose_connection()
    await inspector.wait_for("presence", lambda d: len(d["participants"]) == 1)
    fresh(inspector, "presence")

    back = await call.claimant(join=False)
    joined = await back.call("join")
    assert joined["ok"] and joined["recording"] is True
    await inspector.wait_for("presence", lambda d: len(d["participants"]) == 2)
    assert await call.status() == "IN_CALL" and call.media.recording == {call.invite_id}
    kinds = await call.event_kinds()
    assert kinds.index("claimant_disconnected") < kinds.index("claimant_reconnected")
    assert kinds.count("call_started") == 1 and "call_ended" not in kinds


async def test_a_page_that_reconnects_replaces_its_old_connection_at_once(call: Call) -> None:
    old = await call.peer({"token": call.token, "resume": PAGE})
    assert (await old.call("join"))["ok"]
    old_sid = old.sio.get_sid("/call")
    inspector = await call.inspector()
    # The server has not noticed the old connection is gone when the page comes back on a new one.
    new = await call.peer({"token": call.token, "resume": PAGE})
    joined = await new.call("join")
    assert joined["ok"] and sorted(p["role"] for p in joined["participants"]) == ["claimant", "inspector"]
    await asyncio.wait_for(old.disconnected.wait(), 5)
    assert old_sid in call.media.dropped  # its peer is let go, not left standing in for the new one
    await inspector.wait_for("presence", lambda d: len(d["participants"]) == 2)
    kinds = await call.event_kinds()
    assert kinds[-3:] == ["left", "joined", "claimant_reconnected"]
    assert await call.status() == "IN_CALL" and "call_ended" not in kinds


async def test_ending_the_call_while_it_waits_for_the_claimant_ends_it_now(start_call: StartCall) -> None:
    call = await start_call(reconnect_grace_s=30.0)
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await inspector.call("record_start"))["ok"]
    await claimant.lose_connection()
    await inspector.wait_for("presence", lambda d: len(d["participants"]) == 1)
    assert (await inspector.call("end_call"))["ok"]
    await inspector.wait_for("recording", lambda d: d["active"] is False)  # told before the room is emptied
    await asyncio.wait_for(inspector.disconnected.wait(), 5)
    assert await call.status() == "ACTIVE" and call.media.recording == set()


@pytest.mark.parametrize("resume", ["short", "has spaces in it 0123", 12345678901234567, "x" * 65])
async def test_a_malformed_resume_id_is_refused(call: Call, resume: object) -> None:
    with pytest.raises(Refused) as refused:
        await call.peer({"token": call.token, "resume": resume})
    assert refused.value.code == "invalid_payload"
