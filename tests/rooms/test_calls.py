"""A claimant's lost connection and his return: the grace period, and a page replacing its own connection.

On SQLite and PostgreSQL, with a clock the tests move, and two CallServices standing for two nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import event_log, invite_store, link_tokens
from rooms.calls import CLAIMANT, INSPECTOR, CallService, Participant
from rooms.changes import STATUS, Change, ChangeFeed
from rooms.invites import InviteService
from rooms.models import InviteStatus, Method
from tests.rooms import world

GRACE_S = 20.0


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def pass_s(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Calls:
    engine: AsyncEngine
    clock: Clock
    invite_id: str
    node: CallService
    other_node: CallService
    changes: list[Change]

    async def status(self) -> InviteStatus:
        async with self.engine.connect() as conn:
            return (await invite_store.get(conn, self.invite_id)).status

    async def events(self) -> list[tuple[str, dict[str, Any]]]:
        async with self.engine.connect() as conn:
            return [(e.kind, e.data) for e in await event_log.list_for_invite(conn, self.invite_id)]

    async def kinds(self) -> list[str]:
        return [kind for kind, _ in await self.events()]


@pytest.fixture
async def calls(engine: AsyncEngine) -> Calls:
    await world.seed(engine)
    clock = Clock()
    invites = InviteService(engine, link_tokens.LinkKey(b"k" * 32), "http://claimcam.test", clock)
    invite = await invites.create("case-1", world.INSPECTOR, "c1", Method.SMS, "t1")
    feed = ChangeFeed()
    changes: list[Change] = []

    async def keep(change: Change) -> None:
        changes.append(change)

    feed.subscribe(keep)
    node = CallService(engine, clock, "node-a", feed, reconnect_grace_s=GRACE_S)
    other = CallService(engine, clock, "node-b", feed, reconnect_grace_s=GRACE_S)
    return Calls(engine, clock, invite.id, node, other, changes)


def claimant(sid: str, invite_id: str, resume: str = "") -> Participant:
    return Participant(sid, invite_id, CLAIMANT, "c1", "Paula", resume=resume)


async def test_a_lost_claimant_keeps_the_call_in_call_until_the_grace_is_over(calls: Calls) -> None:
    await calls.node.join(claimant("s1", calls.invite_id))
    await calls.node.join(Participant("s2", calls.invite_id, INSPECTOR, "u1", "Ines"))
    calls.clock.pass_s(60)
    await calls.node.leave("s1", "ping timeout", lost=True)
    assert await calls.status() is InviteStatus.IN_CALL
    assert (await calls.events())[-1] == ("claimant_disconnected", {"reason": "ping timeout", "grace_s": GRACE_S})

    calls.clock.pass_s(GRACE_S - 1)
    assert await calls.node.end_abandoned() == []
    calls.clock.pass_s(1)
    [ended] = await calls.other_node.end_abandoned()  # any node: the deadline lives in the database
    assert ended.status is InviteStatus.ACTIVE and await calls.status() is InviteStatus.ACTIVE
    kind, data = (await calls.events())[-1]
    # The call lasted until the claimant went, not until the grace ran out.
    assert (kind, data) == ("call_ended", {"duration_s": 60.0, "reason": "claimant_lost"})
    assert calls.changes[-1] == Change(STATUS, calls.invite_id, "case-1", {"status": "ACTIVE"})
    assert await calls.node.end_abandoned() == []


async def test_a_claimant_back_within_the_grace_carries_on_the_same_call(calls: Calls) -> None:
    await calls.node.join(claimant("s1", calls.invite_id))
    await calls.node.leave("s1", "transport close", lost=True)
    calls.clock.pass_s(5)
    joined = await calls.other_node.join(claimant("s3", calls.invite_id))
    assert joined.reconnected and joined.invite.status is InviteStatus.IN_CALL
    assert (await calls.events())[-1] == ("claimant_reconnected", {"away_s": 5.0})
    calls.clock.pass_s(GRACE_S)
    assert await calls.node.end_abandoned() == []
    kinds = await calls.kinds()
    assert kinds.count("call_started") == 1 and "call_ended" not in kinds


async def test_leaving_on_purpose_or_without_a_grace_ends_the_call_at_once(calls: Calls, engine: AsyncEngine) -> None:
    await calls.node.join(claimant("s1", calls.invite_id))
    await calls.node.leave("s1", "client disconnect")
    assert await calls.status() is InviteStatus.ACTIVE
    no_grace = CallService(engine, calls.clock, "node-c", ChangeFeed())
    await no_grace.join(claimant("s2", calls.invite_id))
    await no_grace.leave("s2", "ping timeout", lost=True)
    assert await calls.status() is InviteStatus.ACTIVE
    assert "claimant_disconnected" not in await calls.kinds()


async def test_a_node_lost_with_the_claimant_gives_him_the_grace(calls: Calls) -> None:
    await calls.node.heartbeat()
    await calls.other_node.heartbeat()
    await calls.node.join(claimant("s1", calls.invite_id))
    calls.clock.pass_s(40)
    await calls.other_node.heartbeat()
    [(gone, invite, present)] = await calls.other_node.remove_dead_nodes(silent_s=30)
    assert (gone.sid, invite.status, present) == ("s1", InviteStatus.IN_CALL, [])
    assert (await calls.events())[-1] == ("claimant_disconnected", {"reason": "node_lost", "grace_s": GRACE_S})
    calls.clock.pass_s(GRACE_S)
    assert [i.id for i in await calls.other_node.end_abandoned()] == [calls.invite_id]


async def test_ending_the_call_during_the_grace_ends_it_now(calls: Calls) -> None:
    await calls.node.join(claimant("s1", calls.invite_id))
    calls.clock.pass_s(30)
    await calls.node.leave("s1", "ping timeout", lost=True)
    calls.clock.pass_s(10)
    invite = await calls.node.end(calls.invite_id)
    assert invite.status is InviteStatus.ACTIVE
    assert (await calls.events())[-1] == ("call_ended", {"duration_s": 30.0})
    calls.clock.pass_s(GRACE_S)
    assert await calls.node.end_abandoned() == []


async def test_a_page_reconnecting_replaces_its_own_earlier_connection(calls: Calls) -> None:
    await calls.node.join(claimant("s1", calls.invite_id, resume="page-one-0123456789"))
    await calls.node.join(Participant("s2", calls.invite_id, INSPECTOR, "u1", "Ines", resume="page-one-0123456789"))
    calls.clock.pass_s(7)
    # The server has not noticed s1 is gone; the page's new connection takes its place.
    joined = await calls.other_node.join(claimant("s3", calls.invite_id, resume="page-one-0123456789"))
    assert [p.sid for p in joined.replaced] == ["s1"]  # not the inspector's, though he sent the same id
    assert joined.reconnected
    assert sorted(p.sid for p in joined.present) == ["s2", "s3"]
    assert (await calls.events())[-3:] == [
        ("left", {"role": CLAIMANT, "reason": "reconnected", "seconds": 7.0}),
        ("joined", {"role": CLAIMANT}),
        ("claimant_reconnected", {}),
    ]
    assert await calls.node.leave("s1", "ping timeout", lost=True) is None  # its socket goes later: nothing
    assert await calls.status() is InviteStatus.IN_CALL


async def test_another_page_of_the_same_claimant_is_not_replaced(calls: Calls) -> None:
    await calls.node.join(claimant("s1", calls.invite_id, resume="page-one-0123456789"))
    joined = await calls.node.join(claimant("s2", calls.invite_id, resume="page-two-0123456789"))
    assert joined.replaced == [] and not joined.reconnected
    assert sorted(p.sid for p in joined.present) == ["s1", "s2"]
