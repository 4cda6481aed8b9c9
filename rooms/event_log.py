"""The append-only, hash-chained event log of each invite."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms import event_chain
from rooms import tables as t
from rooms.errors import NotFound
from rooms.models import Actor, Event


async def append(
    conn: AsyncConnection,
    invite_id: str,
    kind: str,
    actor: Actor,
    at: datetime,
    data: dict[str, Any] | None = None,
) -> Event:
    """Append one event; call inside the transaction that made the change it records."""
    data = data or {}
    at = at.astimezone(UTC)  # the hash covers the ISO text, so fix one zone
    # Bumping the counter on the invite row takes its write lock first (PostgreSQL row lock,
    # SQLite database lock), so concurrent appends to one invite queue up instead of forking.
    row = (
        await conn.execute(
            t.invites.update()
            .where(t.invites.c.id == invite_id)
            .values(event_seq=t.invites.c.event_seq + 1)
            .returning(t.invites.c.event_seq, t.invites.c.event_head)
        )
    ).first()
    if row is None:
        raise NotFound(f"invite {invite_id} not found")
    seq, prev = int(row[0]), str(row[1])
    digest = event_chain.event_hash(prev, invite_id, seq, at, kind, actor, data)
    await conn.execute(
        t.events.insert().values(
            invite_id=invite_id,
            seq=seq,
            at=at,
            kind=kind,
            actor_kind=actor.kind,
            actor_id=actor.id,
            actor_name=actor.name,
            data=data,
            prev_hash=prev,
            hash=digest,
        )
    )
    await conn.execute(t.invites.update().where(t.invites.c.id == invite_id).values(event_head=digest))
    return Event(invite_id, seq, at, kind, actor, data, prev, digest)


def _event(m: Any) -> Event:
    return Event(
        invite_id=m["invite_id"],
        seq=m["seq"],
        at=m["at"],
        kind=m["kind"],
        actor=Actor(m["actor_kind"], m["actor_id"], m["actor_name"]),
        data=dict(m["data"]),
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


async def list_for_invite(conn: AsyncConnection, invite_id: str) -> list[Event]:
    rows = await conn.execute(
        t.events.select().where(t.events.c.invite_id == invite_id).order_by(t.events.c.seq)
    )
    return [_event(r._mapping) for r in rows]


async def latest_of_kind(conn: AsyncConnection, invite_id: str, kind: str, limit: int) -> list[Event]:
    """The newest `limit` events of one kind, oldest first (e.g. chat history on rejoin)."""
    ev = t.events
    rows = await conn.execute(
        ev.select().where(ev.c.invite_id == invite_id, ev.c.kind == kind).order_by(ev.c.seq.desc()).limit(limit)
    )
    return [_event(r._mapping) for r in reversed(rows.all())]


async def list_for_case(conn: AsyncConnection, case_id: str) -> dict[str, list[Event]]:
    rows = await conn.execute(
        t.events.select()
        .join(t.invites, t.invites.c.id == t.events.c.invite_id)
        .where(t.invites.c.case_id == case_id)
        .order_by(t.events.c.invite_id, t.events.c.seq)
    )
    grouped: dict[str, list[Event]] = {}
    for r in rows:
        ev = _event(r._mapping)
        grouped.setdefault(ev.invite_id, []).append(ev)
    return grouped


async def verify(conn: AsyncConnection, invite_id: str, events: list[Event] | None = None) -> event_chain.ChainCheck:
    """Recompute the chain and compare it with the head kept on the invite (catches a cut tail).

    The head is read first: on SQLite two reads are not one snapshot, and an event appended
    between them must not look like a broken chain. Events newer than the head read are checked
    by the chain's own links; the head must match the event at its own position.
    """
    head = (
        await conn.execute(
            sa.select(t.invites.c.event_seq, t.invites.c.event_head).where(t.invites.c.id == invite_id)
        )
    ).first()
    if head is None:
        raise NotFound(f"invite {invite_id} not found")
    seq, head_hash = int(head[0]), head[1]
    if events is None or len(events) < seq:
        events = await list_for_invite(conn, invite_id)
    check = event_chain.verify(events)
    if not check.ok:
        return check
    if len(events) < seq or (events[seq - 1].hash if seq else event_chain.GENESIS) != head_hash:
        return event_chain.ChainCheck(False, min(len(events), seq) + 1)
    return check
    last_hash = events[-1].hash if events else event_chain.GENESIS
    if len(events) != head[0] or last_hash != head[1]:
        return event_chain.ChainCheck(False, len(events) + 1)
    return check
