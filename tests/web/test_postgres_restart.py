"""PostgreSQL stopped and started again under a running app: clear refusals meanwhile, then service again.

A PostgreSQL of these tests' own (the session's shared one is not disturbed) is stopped by its PID
with a fast shutdown, which ends every session at once as a crash or an operator's restart would,
and started again on the same port and data folder. The app is never restarted: its pool's
pre-ping replaces the dead connections.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from signalling import events as ev
from tests.conftest import MakeApi
from tests.support.api_tools import assert_error, claimant_token, settle
from tests.support.postgres import PostgresServer, create_database
from tests.support.sio_peer import Peer, Refused
from tests.support.world import Api

pytestmark = pytest.mark.postgres

INVITES = "/api/v1/cases/case-std/invites"
NEW_INVITE = {"contact_id": "c-both", "method": "sms", "task_id": "t-main"}


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(tmp_path_factory.mktemp("pg-restart"))
    server.init()
    server.start()
    yield server
    server.stop()


@dataclass
class Outage:
    api: Api
    postgres: PostgresServer
    peers: list[Peer]

    async def stop_database(self) -> None:
        await asyncio.to_thread(self.postgres.stop, signal.SIGINT)

    async def start_database(self) -> None:
        await asyncio.to_thread(self.postgres.start)

    async def peer(self, auth: Any, namespace: str = ev.CALL_NAMESPACE) -> Peer:
        peer = Peer(namespace)
        self.peers.append(peer)
        await peer.connect(str(self.api.client.make_url("/")), auth)
        return peer


@pytest.fixture
async def outage(postgres: PostgresServer, make_api: MakeApi) -> AsyncIterator[Outage]:
    if not postgres.running:
        await asyncio.to_thread(postgres.start)  # a test before this one failed during its outage
    url = await create_database(postgres.url, f"restart_{uuid.uuid4().hex[:10]}")
    o = Outage(await make_api(database_url=url), postgres, [])
    yield o
    for peer in o.peers:
        await peer.close()
    if not postgres.running:
        await o.start_database()


def assert_unavailable(status: int, body: Any) -> None:
    assert_error(status, body, 503, "database_unavailable")
    assert "Traceback" not in body["error"]["message"]


async def test_api_answers_503_while_postgresql_is_down_and_serves_again_after_its_restart(outage: Outage) -> None:
    api = outage.api
    first = await api.invite()
    await settle(api)

    await outage.stop_database()
    status, body = await api.call("GET", INVITES, user="viewer")
    assert_unavailable(status, body)
    status, body = await api.call("POST", INVITES, user="inspector", json=NEW_INVITE)
    assert_unavailable(status, body)
    status, body = await api.call("GET", f"/api/v1/invites/{first['id']}/events", user="inspector")
    assert_unavailable(status, body)
    status, ready = await api.call("GET", "/readyz")
    assert (status, ready["status"], ready["checks"]["database"]) == (503, "not_ready", False)
    assert ready["checks"]["object_store"] is True
    assert await api.call("GET", "/healthz") == (200, {"status": "ok"})

    await outage.start_database()
    status, ready = await api.call("GET", "/readyz")
    assert (status, ready["status"]) == (200, "ready"), ready
    status, listing = await api.call("GET", INVITES, user="viewer")
    assert status == 200, listing
    # The refused POST left nothing behind: only the invite made before the outage is there.
    assert [i["id"] for i in listing["invites"]] == [first["id"]]
    second = await api.invite()
    await settle(api)  # the delivery worker outlived the outage and sends the new SMS
    status, log = await api.call("GET", f"/api/v1/invites/{second['id']}/events", user="inspector")
    assert status == 200 and log["integrity"]["ok"], log
    assert [e["kind"] for e in log["events"]] == ["created", "sent"]


async def test_socket_events_answer_database_unavailable_during_the_outage(outage: Outage) -> None:
    api = outage.api
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    claimant = await outage.peer({"token": token})
    assert (await claimant.call("join"))["ok"]
    staff = await outage.peer({"jwt": api.token("viewer")}, ev.STAFF_NAMESPACE)

    await outage.stop_database()
    ack = await claimant.call(ev.CHAT, {"text": "is anyone there?"})
    assert (ack["ok"], ack["error"]["code"]) == (False, "database_unavailable"), ack
    ack = await staff.call(ev.WATCH, {"case_id": "case-std"})
    assert (ack["ok"], ack["error"]["code"]) == (False, "database_unavailable"), ack
    with pytest.raises(Refused) as refused:
        await outage.peer({"token": token})
    assert refused.value.code == "database_unavailable"
    assert claimant.sio.connected  # the socket that was there stays

    await outage.start_database()
    ack = await claimant.call(ev.CHAT, {"text": "back again"})
    assert ack["ok"], ack
    ack = await staff.call(ev.WATCH, {"case_id": "case-std"})
    assert (ack["ok"], ack["access"]) == (True, "read"), ack
    await outage.peer({"token": token})
    status, log = await api.call("GET", f"/api/v1/invites/{invite['id']}/events", user="inspector")
    assert status == 200 and log["integrity"]["ok"], log
    assert [e["data"]["text"] for e in log["events"] if e["kind"] == "chat"] == ["back again"]


async def test_a_restart_between_requests_goes_unnoticed(outage: Outage) -> None:
    """No request saw the outage, so the pool still holds the dead connections: each is pinged
    before use and replaced, and not one request fails."""
    api = outage.api
    await asyncio.gather(*(api.call("GET", INVITES, user="viewer") for _ in range(5)))  # several pooled
    await outage.stop_database()
    await outage.start_database()
    replies = await asyncio.gather(*(api.call("GET", INVITES, user="viewer") for _ in range(5)))
    assert [status for status, _ in replies] == [200] * 5, replies
    await api.invite()
