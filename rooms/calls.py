"""Who is in a call, and the status changes their coming and going cause.

Presence lives in SQL, which every node shares, so the first-claimant-in and last-claimant-out
rules hold when participants sit on different nodes. Every change to a call first takes the
invite row's write lock, so joins and leaves of one call are applied one at a time.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rooms import event_log, invite_store
from rooms import tables as t
from rooms.changes import STATUS, Change, ChangeFeed
from rooms.clock import Clock
from rooms.errors import LinkUnusable, NotFound
from rooms.models import Actor, Event, Invite, InviteStatus

CLAIMANT = "claimant"
INSPECTOR = "inspector"


@dataclass(frozen=True, slots=True)
class Participant:
    sid: str
    invite_id: str
    role: str
    user_id: str
    name: str
    muted: bool = False
    facing: str = ""

    @property
    def actor(self) -> Actor:
        return Actor("claimant" if self.role == CLAIMANT else "user", self.user_id, self.name)


@dataclass(frozen=True, slots=True)
class CallRequest:
    id: str
    invite_id: str
    kind: str
    asker_sid: str
    asker_name: str
    state: str
    expires_at: datetime


def _participant(m: Any) -> Participant:
    return Participant(m["sid"], m["invite_id"], m["role"], m["user_id"], m["name"], m["muted"], m["facing"])


def _request(m: Any) -> CallRequest:
    return CallRequest(m["id"], m["invite_id"], m["kind"], m["asker_sid"], m["asker_name"], m["state"], m["expires_at"])


async def _lock_invite(conn: AsyncConnection, invite_id: str) -> tuple[InviteStatus, datetime | None]:
    """Take the invite row's write lock (row lock on PostgreSQL, database lock on SQLite)."""
    inv = t.invites
    row = (
        await conn.execute(
            inv.update()
            .where(inv.c.id == invite_id)
            .values(status=inv.c.status)
            .returning(inv.c.status, inv.c.call_started_at)
        )
    ).first()
    if row is None:
        raise NotFound(f"invite {invite_id} not found")
    return InviteStatus(row[0]), row[1]


async def participants_of(conn: AsyncConnection, invite_id: str) -> list[Participant]:
    p = t.call_participants
    rows = await conn.execute(p.select().where(p.c.invite_id == invite_id).order_by(p.c.joined_at, p.c.sid))
    return [_participant(r._mapping) for r in rows]


class CallService:
    def __init__(self, engine: AsyncEngine, clock: Clock, node_id: str, feed: ChangeFeed) -> None:
        self._engine = engine
        self._clock = clock
        self._node_id = node_id
        self._feed = feed

    @property
    def node_id(self) -> str:
        """This process's id among the nodes (presence rows and media ownership name it)."""
        return self._node_id

    async def join(self, p: Participant) -> tuple[Invite, list[Participant]]:
        """Add a participant; the first claimant in starts the call (INVITED/ACTIVE -> IN_CALL)."""
        now = self._clock()
        started = False
        async with self._engine.begin() as conn:
            status, _ = await _lock_invite(conn, p.invite_id)
            if status is InviteStatus.CLOSED:
                raise LinkUnusable("the invite is closed")
            await conn.execute(
                t.call_participants.insert().values(
                    sid=p.sid, invite_id=p.invite_id, node_id=self._node_id, role=p.role, user_id=p.user_id,
                    name=p.name, muted=p.muted, facing=p.facing, joined_at=now,
                )
            )
            await event_log.append(conn, p.invite_id, "joined", p.actor, now, {"role": p.role})
            if p.role == CLAIMANT and status in (InviteStatus.INVITED, InviteStatus.ACTIVE):
                await invite_store.set_status(conn, p.invite_id, InviteStatus.IN_CALL, now=now)
                await conn.execute(
                    t.invites.update().where(t.invites.c.id == p.invite_id).values(call_started_at=now)
                )
                await event_log.append(conn, p.invite_id, "call_started", p.actor, now)
                started = True
            invite = await invite_store.get(conn, p.invite_id)
            present = await participants_of(conn, p.invite_id)
        if started:
            await self._feed.publish(Change(STATUS, invite.id, invite.case_id, {"status": str(invite.status)}))
        return invite, present

    async def leave(self, sid: str, reason: str = "left") -> tuple[Participant, Invite, list[Participant]] | None:
        """Remove a participant; the last claimant out ends the call (IN_CALL -> ACTIVE)."""
        now = self._clock()
        ended = False
        p_table = t.call_participants
        async with self._engine.begin() as conn:
            row = (await conn.execute(p_table.select().where(p_table.c.sid == sid))).first()
            if row is None:
                return None
            p = _participant(row._mapping)
            joined_at: datetime = row._mapping["joined_at"]
            status, call_started_at = await _lock_invite(conn, p.invite_id)
            await conn.execute(p_table.delete().where(p_table.c.sid == sid))
            await event_log.append(
                conn, p.invite_id, "left", p.actor, now,
                {"role": p.role, "reason": reason, "seconds": round((now - joined_at).total_seconds(), 1)},
            )
            if p.role == CLAIMANT:
                claimants_left = (
                    await conn.execute(
                        sa.select(sa.func.count()).where(
                            p_table.c.invite_id == p.invite_id, p_table.c.role == CLAIMANT
                        )
                    )
                ).scalar_one()
                if claimants_left == 0 and call_started_at is not None:
                    duration = round((now - call_started_at).total_seconds(), 1)
                    await event_log.append(
                        conn, p.invite_id, "call_ended", Actor.system(), now, {"duration_s": duration}
                    )
                    await conn.execute(
                        t.invites.update().where(t.invites.c.id == p.invite_id).values(call_started_at=None)
                    )
                    if status is InviteStatus.IN_CALL:
                        await invite_store.set_status(conn, p.invite_id, InviteStatus.ACTIVE, now=now)
                        ended = True
            invite = await invite_store.get(conn, p.invite_id)
            present = await participants_of(conn, p.invite_id)
        if ended:
            await self._feed.publish(Change(STATUS, invite.id, invite.case_id, {"status": str(invite.status)}))
        return p, invite, present

    async def heartbeat(self) -> None:
        """Say this node is alive."""
        now = self._clock()
        n = t.nodes
        async with self._engine.begin() as conn:
            res = await conn.execute(n.update().where(n.c.id == self._node_id).values(seen_at=now))
            if res.rowcount == 0:
                await conn.execute(n.insert().values(id=self._node_id, started_at=now, seen_at=now))

    async def remove_dead_nodes(self, silent_s: float) -> list[tuple[Participant, Invite, list[Participant]]]:
        """Let go of the participants of nodes silent for `silent_s`, as if each had left."""
        n, p = t.nodes, t.call_participants
        cutoff = self._clock() - timedelta(seconds=silent_s)
        async with self._engine.connect() as conn:
            dead = [r[0] for r in await conn.execute(sa.select(n.c.id).where(n.c.seen_at < cutoff))]
            # Rows of a node that never got to its first heartbeat count as dead too.
            orphans = await conn.execute(
                sa.select(p.c.sid).where(
                    p.c.node_id != self._node_id, p.c.joined_at < cutoff, p.c.node_id.not_in(sa.select(n.c.id))
                )
            )
            sids = [r[0] for r in orphans]
            if dead:
                sids += [r[0] for r in await conn.execute(sa.select(p.c.sid).where(p.c.node_id.in_(dead)))]
        removed = []
        for sid in sids:
            left = await self.leave(sid, "node_lost")
            if left is not None:
                removed.append(left)
        if dead:
            async with self._engine.begin() as conn:
                await conn.execute(n.delete().where(n.c.id.in_(dead), n.c.seen_at < cutoff))
        return removed

    async def forget_node(self) -> None:
        """At a clean shutdown, after this node's sockets have left."""
        async with self._engine.begin() as conn:
            await conn.execute(t.nodes.delete().where(t.nodes.c.id == self._node_id))

    async def participants(self, invite_id: str) -> list[Participant]:
        async with self._engine.connect() as conn:
            return await participants_of(conn, invite_id)

    async def participant(self, sid: str) -> Participant | None:
        p = t.call_participants
        async with self._engine.connect() as conn:
            row = (await conn.execute(p.select().where(p.c.sid == sid))).first()
        return None if row is None else _participant(row._mapping)

    async def update(self, p: Participant, kind: str, data: dict[str, Any], **values: Any) -> list[Participant]:
        """Change a participant's muted/facing state and log it as `kind`."""
        async with self._engine.begin() as conn:
            table = t.call_participants
            await conn.execute(table.update().where(table.c.sid == p.sid).values(**values))
            await event_log.append(conn, p.invite_id, kind, p.actor, self._clock(), data)
            return await participants_of(conn, p.invite_id)

    async def log(self, p: Participant, kind: str, data: dict[str, Any] | None = None) -> Event:
        async with self._engine.begin() as conn:
            return await event_log.append(conn, p.invite_id, kind, p.actor, self._clock(), data)

    async def history(self, invite_id: str, kind: str, limit: int) -> list[Event]:
        async with self._engine.connect() as conn:
            return await event_log.latest_of_kind(conn, invite_id, kind, limit)

    async def ask(self, asker: Participant, kind: str, ttl_s: float) -> CallRequest:
        now = self._clock()
        request = CallRequest(uuid.uuid4().hex, asker.invite_id, kind, asker.sid, asker.name, "pending",
                              now + timedelta(seconds=ttl_s))
        async with self._engine.begin() as conn:
            await conn.execute(
                t.call_requests.insert().values(
                    id=request.id, invite_id=request.invite_id, kind=kind, asker_sid=asker.sid,
                    asker_name=asker.name, state="pending", created_at=now, expires_at=request.expires_at,
                )
            )
            await event_log.append(
                conn, asker.invite_id, f"{kind}_requested", asker.actor, now, {"request_id": request.id}
            )
        return request

    async def settle(self, invite_id: str, request_id: str, state: str, by: Actor) -> CallRequest | None:
        """Answer a pending request once; a late or repeated answer (or expiry) gets None."""
        r = t.call_requests
        now = self._clock()
        async with self._engine.begin() as conn:
            conditions = [r.c.id == request_id, r.c.invite_id == invite_id, r.c.state == "pending"]
            if state != "expired":
                conditions.append(r.c.expires_at > now)
            res = await conn.execute(r.update().where(*conditions).values(state=state))
            if res.rowcount != 1:
                return None
            row = (await conn.execute(r.select().where(r.c.id == request_id))).one()
            request = _request(row._mapping)
            await event_log.append(conn, invite_id, f"{request.kind}_{state}", by, now, {"request_id": request_id})
        return request
