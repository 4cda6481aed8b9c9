"""The durable delivery queue: one row per message to send, leased while a worker sends it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms import tables as t

PENDING, SENDING, SENT, FAILED, CANCELLED = "pending", "sending", "sent", "failed", "cancelled"
# Purposes: "invite" and "resend" carry the link; "sms_code" the claimant's security code.
SMS_CODE = "sms_code"


class Obsolete(Exception):
    """The message a delivery was for no longer applies (its security code expired or was used)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    invite_id: str
    purpose: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str


def _delivery(r: sa.Row[tuple[object, ...]]) -> Delivery:
    m = r._mapping
    return Delivery(
        m["id"], m["invite_id"], m["purpose"], m["state"], m["attempts"], m["next_attempt_at"], m["last_error"]
    )


async def enqueue(conn: AsyncConnection, invite_id: str, purpose: str, now: datetime) -> None:
    await conn.execute(
        t.deliveries.insert().values(
            invite_id=invite_id, purpose=purpose, state=PENDING, attempts=0, next_attempt_at=now, created_at=now
        )
    )


async def cancel_pending(conn: AsyncConnection, invite_id: str, purpose: str, reason: str) -> None:
    d = t.deliveries.c
    await conn.execute(
        t.deliveries.update()
        .where(d.invite_id == invite_id, d.purpose == purpose, d.state == PENDING)
        .values(state=CANCELLED, last_error=reason[:500])
    )


def _due(now: datetime) -> sa.ColumnElement[bool]:
    d = t.deliveries.c
    # A lease that ran out means the worker holding it died mid-send: take the row over.
    return sa.or_(
        sa.and_(d.state == PENDING, d.next_attempt_at <= now),
        sa.and_(d.state == SENDING, d.lease_until <= now),
    )


async def claim_due(conn: AsyncConnection, now: datetime, lease: timedelta, limit: int) -> list[Delivery]:
    d = t.deliveries.c
    ids = [r[0] for r in await conn.execute(sa.select(d.id).where(_due(now)).order_by(d.next_attempt_at).limit(limit))]
    claimed: list[Delivery] = []
    for delivery_id in ids:
        # Conditional update: when two nodes race for a row, exactly one sees rowcount 1.
        res = await conn.execute(
            t.deliveries.update()
            .where(d.id == delivery_id, _due(now))
            .values(state=SENDING, lease_until=now + lease, attempts=d.attempts + 1)
        )
        if res.rowcount == 1:
            row = (await conn.execute(t.deliveries.select().where(d.id == delivery_id))).one()
            claimed.append(_delivery(row))
    return claimed


async def finish(conn: AsyncConnection, delivery_id: int, state: str, error: str = "") -> None:
    await conn.execute(
        t.deliveries.update()
        .where(t.deliveries.c.id == delivery_id)
        .values(state=state, lease_until=None, last_error=error[:500])
    )


async def retry_later(conn: AsyncConnection, delivery_id: int, at: datetime, error: str) -> None:
    await conn.execute(
        t.deliveries.update()
        .where(t.deliveries.c.id == delivery_id)
        .values(state=PENDING, lease_until=None, next_attempt_at=at, last_error=error[:500])
    )


async def next_due_at(conn: AsyncConnection) -> datetime | None:
    d = t.deliveries.c
    pending = (await conn.execute(sa.select(sa.func.min(d.next_attempt_at)).where(d.state == PENDING))).scalar()
    leased = (await conn.execute(sa.select(sa.func.min(d.lease_until)).where(d.state == SENDING))).scalar()
    candidates = [x for x in (pending, leased) if x is not None]
    return min(candidates) if candidates else None


async def for_invite(conn: AsyncConnection, invite_id: str) -> list[Delivery]:
    rows = await conn.execute(
        t.deliveries.select().where(t.deliveries.c.invite_id == invite_id).order_by(t.deliveries.c.id)
    )
    return [_delivery(r) for r in rows]
