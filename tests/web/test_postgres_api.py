"""The whole calls-management flow through HTTP with PostgreSQL as the store."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import MakeApi
from tests.support.postgres import create_database

pytestmark = pytest.mark.postgres


async def test_invite_lifecycle_on_postgresql(make_api: MakeApi, pg_server: str) -> None:
    url = await create_database(pg_server, f"api_{uuid.uuid4().hex[:10]}")
    api = await make_api(database_url=url, demo=True)
    invite = await api.invite(contact="c-email", method="email", task=None)
    status, closed = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="handler")
    assert (status, closed["status"], closed["actions"]) == (200, "CLOSED", ["events", "pictures", "videos"])
    status, log = await api.call("GET", f"/api/v1/invites/{invite['id']}/events", user="viewer")
    assert status == 200 and log["integrity"] == {"ok": True, "broken_at": None}
    kinds = [e["kind"] for e in log["events"]]
    # The worker may hand the email over just before the close, so `sent` can follow `closed`.
    assert kinds[0] == "created" and "closed" in kinds
    status, grouped = await api.call("GET", "/api/v1/cases/case-std/events", user="viewer")
    assert status == 200 and [g["invite"]["id"] for g in grouped["groups"]] == [invite["id"]]
