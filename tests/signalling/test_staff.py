"""Namespace /staff: live invite updates for calls-management pages."""

from __future__ import annotations

import pytest

from tests.signalling.conftest import Call
from tests.support.sio_peer import Refused


async def test_watcher_sees_a_new_invite_and_its_delivery(call: Call) -> None:
    watcher = await call.staff("inspector")
    assert (await watcher.call("watch", {"case_id": "case-std"})) == {"ok": True, "case_id": "case-std",
                                                                      "access": "full"}
    invite = await call.api.invite(contact="c-email", method="email", task=None)
    created = await watcher.wait_for("invite_updated", lambda d: d["invite_id"] == invite["id"])
    assert created["status"] == "INVITED" and "resend" in created["actions"]
    await watcher.wait_for("invite_updated", lambda d: d["invite_id"] == invite["id"] and d["change"] == "delivery")


async def test_watchers_see_status_changes_with_actions_for_their_access(call: Call) -> None:
    full = await call.staff("inspector")
    read = await call.staff("viewer")
    await full.call("watch", {"case_id": "case-std"})
    assert (await read.call("watch", {"case_id": "case-std"}))["access"] == "read"
    await call.claimant()
    in_call = await full.wait_for("invite_updated", lambda d: d["status"] == "IN_CALL")
    assert "join" in in_call["actions"]
    seen_by_reader = await read.wait_for("invite_updated", lambda d: d["status"] == "IN_CALL")
    assert seen_by_reader["actions"] == ["events", "pictures", "videos"]


async def test_watcher_is_told_when_the_claimant_opens_the_link(call: Call) -> None:
    watcher = await call.staff("viewer")
    await watcher.call("watch", {"case_id": "case-std"})
    await call.api.call("GET", f"/api/v1/join/{call.token}")
    opened = await watcher.wait_for("link_opened")
    assert opened == {"invite_id": call.invite_id, "name": "Paula Policyholder"}


async def test_watcher_hears_of_new_media(call: Call) -> None:
    watcher = await call.staff("viewer")
    await watcher.call("watch", {"case_id": "case-std"})
    await call.claimant()
    inspector = await call.inspector()
    await inspector.call("screenshot")
    added = await watcher.wait_for("media_added")
    assert added == {"invite_id": call.invite_id, "media_id": "shot-1", "kind": "picture"}


async def test_close_is_seen_live(call: Call) -> None:
    watcher = await call.staff("viewer")
    await watcher.call("watch", {"case_id": "case-std"})
    await call.api.call("POST", f"/api/v1/invites/{call.invite_id}/close", user="inspector")
    closed = await watcher.wait_for("invite_updated", lambda d: d["status"] == "CLOSED")
    assert closed["closed_reason"] == "closed"


@pytest.mark.parametrize("case_id", ["case-ech", "no-such-case", "../x"])
async def test_watching_a_case_without_access_is_refused(call: Call, case_id: str) -> None:
    watcher = await call.staff("viewer")
    ack = await watcher.call("watch", {"case_id": case_id})
    assert ack["ok"] is False and ack["error"]["code"] in {"not_found", "invalid_payload"}


async def test_unwatched_case_sends_nothing_more(call: Call) -> None:
    watcher = await call.staff("inspector")
    await watcher.call("watch", {"case_id": "case-std"})
    await watcher.call("unwatch", {"case_id": "case-std"})
    fresh = await call.api.invite()
    second = await call.staff("inspector")  # a watcher that stays, to know the updates went out
    await second.call("watch", {"case_id": "case-std"})
    await call.api.call("POST", f"/api/v1/invites/{fresh['id']}/resend", user="inspector")
    await second.wait_for("invite_updated", lambda d: d["invite_id"] == fresh["id"])
    assert [u for u in watcher.received["invite_updated"] if u["invite_id"] == fresh["id"]] == []


@pytest.mark.parametrize("auth", [None, {"jwt": "garbage"}, {"token": "claimant-link"}])
async def test_staff_namespace_needs_a_staff_token(call: Call, auth: object) -> None:
    with pytest.raises(Refused) as refused:
        await call.peer(auth, "/staff")
    assert refused.value.code in {"unauthorized", "invalid_token", "invalid_payload"}


async def test_staff_bad_payloads_get_error_acks(call: Call) -> None:
    watcher = await call.staff("inspector")
    assert (await watcher.call("watch", "case-std"))["error"]["code"] == "invalid_payload"
    assert (await watcher.call("watch"))["error"]["code"] == "invalid_payload"
    assert (await watcher.call("subscribe_all", {}))["error"]["code"] == "unknown_event"
