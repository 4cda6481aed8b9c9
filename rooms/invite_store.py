"""Rows of the invites table. Status changes are conditional updates, so races cannot skip a step."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms import status as machine
from rooms import tables as t
from rooms.errors import InvalidTransition, NotFound
from rooms.models import Invite, InviteStatus, MediaKind, Method


def _counts() -> sa.Subquery:
    mi = t.media_items
    return (
        sa.select(
            mi.c.invite_id,
            sa.func.sum(sa.case((mi.c.kind == str(MediaKind.PICTURE), 1), else_=0)).label("pictures"),
            sa.func.sum(sa.case((mi.c.kind == str(MediaKind.VIDEO), 1), else_=0)).label("videos"),
        )
        .group_by(mi.c.invite_id)
        .subquery()
    )


def _select() -> sa.Select[Any]:
    counts = _counts()
    return sa.select(
        t.invites,
        sa.func.coalesce(counts.c.pictures, 0).label("pictures"),
        sa.func.coalesce(counts.c.videos, 0).label("videos"),
    ).select_from(t.invites.outerjoin(counts, counts.c.invite_id == t.invites.c.id))


def _invite(m: Any) -> Invite:
    return Invite(
        id=m["id"],
        case_id=m["case_id"],
        task_id=m["task_id"],
        task_name=m["task_name"],
        contact_id=m["contact_id"],
        contact_name=m["contact_name"],
        method=Method(m["method"]),
        destination=m["destination"],
        sender_id=m["sender_id"],
        sender_name=m["sender_name"],
        sender_company=m["sender_company"],
        status=InviteStatus(m["status"]),
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        resend_count=m["resend_count"],
        closed_at=m["closed_at"],
        closed_reason=m["closed_reason"],
        pictures=int(m["pictures"]),
        videos=int(m["videos"]),
    )


async def insert(conn: AsyncConnection, invite: Invite, token_salt: str, token_hash: str, head: str) -> None:
    await conn.execute(
        t.invites.insert().values(
            id=invite.id,
            case_id=invite.case_id,
            task_id=invite.task_id,
            task_name=invite.task_name,
            contact_id=invite.contact_id,
            contact_name=invite.contact_name,
            method=str(invite.method),
            destination=invite.destination,
            sender_id=invite.sender_id,
            sender_name=invite.sender_name,
            sender_company=invite.sender_company,
            status=str(invite.status),
            created_at=invite.created_at,
            expires_at=invite.expires_at,
            resend_count=0,
            token_salt=token_salt,
            token_hash=token_hash,
            event_seq=0,
            event_head=head,
        )
    )


async def get(conn: AsyncConnection, invite_id: str) -> Invite:
    row = (await conn.execute(_select().where(t.invites.c.id == invite_id))).first()
    if row is None:
        raise NotFound(f"invite {invite_id} not found")
    return _invite(row._mapping)


async def token_salt(conn: AsyncConnection, invite_id: str) -> str:
    row = (await conn.execute(sa.select(t.invites.c.token_salt).where(t.invites.c.id == invite_id))).first()
    if row is None:
        raise NotFound(f"invite {invite_id} not found")
    return str(row[0])


async def find_by_token_hash(conn: AsyncConnection, token_hash: str) -> Invite | None:
    row = (await conn.execute(_select().where(t.invites.c.token_hash == token_hash))).first()
    return None if row is None else _invite(row._mapping)


async def list_for_case(conn: AsyncConnection, case_id: str) -> list[Invite]:
    rows = await conn.execute(
        _select().where(t.invites.c.case_id == case_id).order_by(t.invites.c.created_at.desc(), t.invites.c.id)
    )
    return [_invite(r._mapping) for r in rows]


async def set_status(
    conn: AsyncConnection,
    invite_id: str,
    target: InviteStatus,
    *,
    now: datetime,
    reason: str = "",
    only_from: Iterable[InviteStatus] | None = None,
) -> Invite:
    """Move the invite to `target` if the machine allows it from its current status, atomically."""
    sources = machine.sources_of(target)
    if only_from is not None:
        sources = sources & frozenset(only_from)
    values: dict[str, Any] = {"status": str(target)}
    if target is InviteStatus.CLOSED:
        values.update(closed_at=now, closed_reason=reason)
    res = await conn.execute(
        t.invites.update()
        .where(t.invites.c.id == invite_id, t.invites.c.status.in_([str(s) for s in sources]))
        .values(**values)
    )
    if res.rowcount == 0:
        current = await get(conn, invite_id)  # raises NotFound for unknown ids
        machine.check(current.status, target)
        # The machine allows it but `only_from` excluded the current status.
        raise InvalidTransition(f"invite is {current.status}, not one of {sorted(sources)}")
    return await get(conn, invite_id)


async def record_resend(conn: AsyncConnection, invite_id: str, expires_at: datetime) -> Invite:
    res = await conn.execute(
        t.invites.update()
        .where(t.invites.c.id == invite_id, t.invites.c.status != str(InviteStatus.CLOSED))
        .values(resend_count=t.invites.c.resend_count + 1, expires_at=expires_at)
    )
    if res.rowcount == 0:
        await get(conn, invite_id)  # raises NotFound for unknown ids
        raise InvalidTransition("a closed invite cannot be re-sent")
    return await get(conn, invite_id)


async def due_for_expiry(
    conn: AsyncConnection, now: datetime, limit: int = 500, case_id: str | None = None
) -> Sequence[str]:
    query = sa.select(t.invites.c.id).where(
        t.invites.c.status != str(InviteStatus.CLOSED), t.invites.c.expires_at <= now
    )
    if case_id is not None:
        query = query.where(t.invites.c.case_id == case_id)
    rows = await conn.execute(query.limit(limit))
    return [r[0] for r in rows]
