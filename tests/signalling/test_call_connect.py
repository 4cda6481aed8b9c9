"""Who may connect to /call, and the status changes that joining and leaving cause."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.signalling.conftest import Call, StartCall
from tests.support.sio_peer import Refused


async def test_claimant_join_starts_the_call(call: Call) -> None:
    peer = await call.claimant(join=False)
    ack = await peer.call("join")
    assert ack["ok"] and ack["you"]["role"] == "claimant" and ack["you"]["name"] == "Paula Policyholder"
    assert ack["recording"] is False and ack["chat"] == []
    assert await call.status() == "IN_CALL"
    kinds = [k for k in await call.event_kinds() if k != "sent"]  # the SMS may be handed over meanwhile
    assert kinds[-2:] == ["joined", "call_started"]


async def test_last_claimant_leaving_ends_the_call_with_its_duration(call: Call) -> None:
    peer = await call.claimant()
    await asyncio.sleep(0.1)
    await peer.close()
    for _ in range(100):
        if await call.status() == "ACTIVE":
            break
        await asyncio.sleep(0.02)
    assert await call.status() == "ACTIVE"
    [ended] = await call.events("call_ended")
    assert ended["data"]["duration_s"] >= 0.1
    assert (await call.events("left"))[0]["actor"]["kind"] == "claimant"


async def test_second_claimant_connection_keeps_the_call_going(call: Call) -> None:
    first = await call.claimant()
    second = await call.claimant()
    await first.close()
    await second.wait_for("presence", lambda d: len(d["participants"]) == 1)
    assert await call.status() == "IN_CALL"
    assert (await call.event_kinds()).count("call_started") == 1


async def test_rejoining_an_active_invite_calls_again(call: Call) -> None:
    peer = await call.claimant()
    await peer.close()
    for _ in range(100):
        if await call.status() == "ACTIVE":
            break
        await asyncio.sleep(0.02)
    await call.claimant()
    assert await call.status() == "IN_CALL"
    assert (await call.event_kinds()).count("call_started") == 2


async def test_inspector_joining_does_not_start_the_call(call: Call) -> None:
    await call.inspector()
    assert await call.status() == "INVITED"


async def test_everyone_gets_presence_with_role_name_muted_facing(call: Call) -> None:
    claimant = await call.claimant()
    await call.inspector()
    presence = await claimant.wait_for("presence", lambda d: len(d["participants"]) == 2)
    people = {p["role"]: p for p in presence["participants"]}
    assert people["inspector"]["name"] == "Ines Inspector"
    assert set(people["claimant"]) == {"id", "role", "name", "muted", "facing"}


async def test_join_is_idempotent(call: Call) -> None:
    peer = await call.claimant()
    again = await peer.call("join")
    assert again["ok"] and len(again["participants"]) == 1
    assert (await call.event_kinds()).count("joined") == 1


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "unauthorized"),
        ("a string", "unauthorized"),
        ({"token": "A" * 32}, "not_found"),
        ({"token": ""}, "invalid_payload"),
        ({"token": 5}, "invalid_payload"),
        ({"token": "x" * 10_000}, "invalid_payload"),
        ({"jwt": "not-a-jwt", "invite_id": "x"}, "invalid_token"),
        ({"token": "abc", "extra": 1}, "invalid_payload"),
    ],
)
async def test_bad_credentials_are_refused_with_a_reason(call: Call, auth: Any, code: str) -> None:
    with pytest.raises(Refused) as refused:
        await call.peer(auth)
    assert refused.value.code == code


async def test_read_only_user_is_refused(call: Call) -> None:
    with pytest.raises(Refused) as refused:
        await call.peer({"jwt": call.api.token("viewer"), "invite_id": call.invite_id})
    assert refused.value.code == "forbidden"


@pytest.mark.parametrize("user", ["outsider", "nobody-at-all"])
async def test_user_outside_the_case_is_refused_as_not_found(call: Call, user: str) -> None:
    with pytest.raises(Refused) as refused:
        await call.peer({"jwt": call.api.token(user), "invite_id": call.invite_id})
    assert refused.value.code == "not_found"


async def test_invite_of_another_case_is_not_found_for_its_outsiders(start_call: StartCall) -> None:
    call = await start_call()
    _, other = await call.api.call(
        "POST", "/api/v1/cases/case-ech/invites", user="ech", json={"contact_id": "c-both", "method": "sms"}
    )
    with pytest.raises(Refused) as refused:
        await call.peer({"jwt": call.api.token("pm"), "invite_id": other["id"]})
    assert refused.value.code == "not_found"


async def test_closed_invite_refuses_claimant_and_staff(call: Call) -> None:
    await call.api.call("POST", f"/api/v1/invites/{call.invite_id}/close", user="inspector")
    for auth in ({"token": call.token}, {"jwt": call.api.token("inspector"), "invite_id": call.invite_id}):
        with pytest.raises(Refused) as refused:
            await call.peer(auth)
        assert refused.value.code == "invite_closed"


async def test_closing_the_invite_ends_the_call_for_everyone(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    status, _ = await call.api.call("POST", f"/api/v1/invites/{call.invite_id}/close", user="handler")
    assert status == 200
    for peer in (claimant, inspector):
        ended = await peer.wait_for("call_ended")
        assert ended["reason"] == "closed"
        await asyncio.wait_for(peer.disconnected.wait(), 5)
    assert await call.status() == "CLOSED"
    with pytest.raises(Refused):
        await call.claimant()


async def test_link_opened_is_logged_once_a_minute(call: Call) -> None:
    for _ in range(3):
        status, body = await call.api.call("GET", f"/api/v1/join/{call.token}")
        assert status == 200 and body["invite_id"] == call.invite_id
    assert (await call.event_kinds()).count("link_opened") == 1
