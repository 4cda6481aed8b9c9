"""Who may send which Socket.IO event: one table of role by event, checked against the hub's own registry.

`CALL_EVENTS` says, for every client event of /call, whether the claimant and an inspector may
send it, and what an allowed sender gets in the call the matrix sets up (the claimant and one
inspector joined, the real media plane without any media, nothing recorded, no camera switch
pending): `ok`, or a refusal that is not about who he is (`invalid_sdp`, `media_unavailable`...).
The inspector column is played by every user with full access in the world's `ACCESS` table;
users with read or no access cannot connect to the call at all. `STAFF_EVENTS` does the same for
/staff by the watcher's access to the case. An event the hub handles without a row fails.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from rooms.calls import CLAIMANT, INSPECTOR
from signalling import events as ev
from signalling.call_namespace import JOIN
from tests.conftest import test_settings as settings_in
from tests.support.api_tools import claimant_token, open_invite
from tests.support.sio_peer import Peer, Refused
from tests.support.world import ACCESS, Api
from web.app import create_app
from web.keys import hub_key

ALLOWED = "allowed"


@dataclass(frozen=True, slots=True)
class Row:
    payload: Any  # None: the event is sent without one
    who: dict[str, str]  # role -> ALLOWED, or the refusal code the README documents
    answer: str = "ok"  # what an allowed sender gets in the matrix's call


ONLY_INSPECTORS = {CLAIMANT: "forbidden", INSPECTOR: ALLOWED}
ONLY_THE_CLAIMANT = {CLAIMANT: ALLOWED, INSPECTOR: "forbidden"}
EVERYONE = {CLAIMANT: ALLOWED, INSPECTOR: ALLOWED}

CALL_EVENTS: dict[str, Row] = {
    JOIN: Row(None, EVERYONE),
    ev.CHAT: Row({"text": "the matrix says hello"}, EVERYONE),
    ev.CURSOR: Row({"action": "show"}, EVERYONE),
    ev.MUTE: Row({"muted": True}, EVERYONE),
    ev.CAMERA_FACING: Row({"facing": "user"}, ONLY_THE_CLAIMANT),
    ev.CAMERA_SWITCH_REQUEST: Row(None, ONLY_INSPECTORS),
    ev.CAMERA_SWITCH_ANSWER: Row({"request_id": "0" * 32, "allow": True}, ONLY_THE_CLAIMANT, "request_not_pending"),
    ev.END_CALL: Row(None, EVERYONE),
    # The offer is refused as SDP only after the sender has been let through.
    ev.RTC_OFFER: Row({"type": "offer", "sdp": "v=0\r\n"}, EVERYONE, "invalid_sdp"),
    ev.SCREENSHOT: Row(None, ONLY_INSPECTORS, "media_unavailable"),
    ev.RECORD_START: Row(None, ONLY_INSPECTORS, "media_unavailable"),
    ev.RECORD_STOP: Row(None, ONLY_INSPECTORS, "not_recording"),
}

# /staff: by the watcher's access to the watched case (any valid staff token may connect).
STAFF_EVENTS: dict[str, Row] = {
    ev.WATCH: Row({"case_id": "{case}"}, {"full": ALLOWED, "read": ALLOWED, "none": "not_found"}),
    ev.UNWATCH: Row({"case_id": "{case}"}, {"full": ALLOWED, "read": ALLOWED, "none": ALLOWED}),
}

# Who plays each /call role: the claimant through his link, an inspector as every full-access user.
SENDERS = [(CLAIMANT, "case-std", "")] + [
    (INSPECTOR, case_id, user)
    for case_id, users in ACCESS.items()
    for user, access in users.items()
    if access == "full"
]
CALL_CASES = [
    pytest.param(role, case_id, user, event, id=f"{event}-{role}-{case_id}-{user or 'link'}")
    for role, case_id, user in SENDERS
    for event in CALL_EVENTS
]
CANNOT_CONNECT = [
    pytest.param(case_id, user, access, id=f"{case_id}-{user}-{access}")
    for case_id, users in ACCESS.items()
    for user, access in users.items()
    if access != "full"
]
STAFF_CASES = [
    pytest.param(case_id, user, access, event, id=f"{event}-{case_id}-{user}-{access}")
    for case_id, users in ACCESS.items()
    for user, access in users.items()
    for event in STAFF_EVENTS
]


@pytest.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    """One app for the whole matrix, with the real media plane; each test makes its own invite."""
    settings = settings_in(tmp_path_factory.mktemp("event-matrix"))
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(settings), host="127.0.0.1"))
    await client.start_server()
    api = Api(client, settings)
    await api.seed()
    yield api
    await client.close()


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    made: list[Peer] = []
    yield made
    for peer in made:
        await peer.close()


async def connect(world: Api, peers: list[Peer], auth: Any, namespace: str = ev.CALL_NAMESPACE) -> Peer:
    peer = Peer(namespace)
    peers.append(peer)
    await peer.connect(str(world.client.make_url("/")), auth)
    return peer


async def joined(peer: Peer) -> Peer:
    ack = await peer.call(JOIN)
    assert ack["ok"], ack
    return peer


async def event_log(world: Api, case_id: str, invite_id: str) -> list[str]:
    reader = next(u for u, access in ACCESS[case_id].items() if access != "none")
    status, body = await world.call("GET", f"/api/v1/invites/{invite_id}/events", user=reader)
    assert status == 200 and body["integrity"]["ok"], body
    return [e["kind"] for e in body["events"] if e["kind"] != "sent"]  # delivery may land at any time


def assert_answer(ack: Any, expected: str) -> None:
    assert isinstance(ack, dict), ack
    if expected == "ok":
        assert ack["ok"] is True, ack
    else:
        assert (ack["ok"], ack["error"]["code"]) == (False, expected), ack


async def test_every_call_event_of_the_hub_has_a_row(world: Api) -> None:
    assert world.client.app[hub_key].call.client_events == set(CALL_EVENTS)
    assert all(set(row.who) == {CLAIMANT, INSPECTOR} for row in CALL_EVENTS.values())


async def test_every_staff_event_of_the_hub_has_a_row(world: Api) -> None:
    assert world.client.app[hub_key].staff.client_events == set(STAFF_EVENTS)
    assert all(set(row.who) == {"full", "read", "none"} for row in STAFF_EVENTS.values())


@pytest.mark.parametrize(("role", "case_id", "user", "event"), CALL_CASES)
async def test_call_event_is_answered_by_the_senders_role(
    world: Api, peers: list[Peer], role: str, case_id: str, user: str, event: str
) -> None:
    invite = await open_invite(world, case_id)
    link = {"token": await claimant_token(world, invite["id"])}
    claimant = await connect(world, peers, link)
    inspector = await connect(world, peers, {"jwt": world.token(user or "inspector"), "invite_id": invite["id"]})
    sender = claimant if role == CLAIMANT else inspector
    for peer in (claimant, inspector):
        if peer is not sender or event != JOIN:
            await joined(peer)
    row = CALL_EVENTS[event]
    before = await event_log(world, case_id, invite["id"])

    ack = await sender.call(event) if row.payload is None else await sender.call(event, row.payload)

    verdict = row.who[role]
    assert_answer(ack, row.answer if verdict == ALLOWED else verdict)
    if verdict != ALLOWED:
        assert await event_log(world, case_id, invite["id"]) == before  # a refusal leaves no trace


@pytest.mark.parametrize(("case_id", "user", "access"), CANNOT_CONNECT)
async def test_staff_without_full_access_cannot_connect_to_the_call(
    world: Api, peers: list[Peer], case_id: str, user: str, access: str
) -> None:
    invite = await open_invite(world, case_id)
    with pytest.raises(Refused) as refused:
        await connect(world, peers, {"jwt": world.token(user), "invite_id": invite["id"]})
    # No access answers as an invite that does not exist would; read access is told it may not.
    assert refused.value.code == ("forbidden" if access == "read" else "not_found")
    assert await event_log(world, case_id, invite["id"]) == ["created"]


@pytest.mark.parametrize(("case_id", "user", "access", "event"), STAFF_CASES)
async def test_staff_event_is_answered_by_the_watchers_access(
    world: Api, peers: list[Peer], case_id: str, user: str, access: str, event: str
) -> None:
    watcher = await connect(world, peers, {"jwt": world.token(user)}, ev.STAFF_NAMESPACE)
    row = STAFF_EVENTS[event]
    ack = await watcher.call(event, {k: v.format(case=case_id) for k, v in row.payload.items()})
    verdict = row.who[access]
    assert_answer(ack, "ok" if verdict == ALLOWED else verdict)
    if event == ev.WATCH and verdict == ALLOWED:
        assert ack["access"] == access
