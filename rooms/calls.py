"""Who is in a call, and the status changes their coming and going cause.

Presence lives in SQL, which every node shares, so the first-claimant-in and last-claimant-out
rules hold when participants sit on different nodes. Every change to a call first takes the
invite row's write lock, so joins and leaves of one call are applied one at a time.

A claimant whose connection is lost (a phone changing networks, a node dying) has a grace period
to come back: the invite stays IN_CALL and `claimant_away_since` marks when he went. Any node ends
such a call once the grace is over (`end_abandoned`), so the deadline survives the node that saw
him go. Ending the call (`end`), or a disconnect the server can tell was meant, ends it at once.
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
    resume: str = ""  # the page's own id: its next connection replaces this one

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


@dataclass(frozen=True, slots=True)
class Joined:
    invite: Invite
    present: list[Participant]
    replaced: list[Participant]  # earlier connections of the same page, now gone: disconnect them
    reconnected: bool  # the claimant came back to a call that was waiting for him


@dataclass(frozen=True, slots=True)
class _Locked:
    status: InviteStatus
    call_started_at: datetime | None
    claimant_away_since: datetime | None


def _participant(m: Any) -> Participant:
    return Participant(
        m["sid"], m["invite_id"], m["role"], m["user_id"], m["name"], m["muted"], m["facing"], m["resume"]
    )


def _request(m: Any) -> CallRequest:
    return CallRequest(m["id"], m["invite_id"], m["kind"], m["asker_sid"], m["asker_name"], m["state"], m["expires_at"])


async def _lock_invite(conn: AsyncConnection, invite_id: str) -> _Locked:
    """Take the invite row's write lock (row lock on PostgreSQL, database lock on SQLite)."""
    inv = t.invites
    row = (
        await conn.execute(
            inv.update()
            .where(inv.c.id == invite_id)
            .values(status=inv.c.status)
            .returning(inv.c.status, inv.c.call_started_at, inv.c.claimant_away_since)
        )
    ).first()
    if row is None:
        raise NotFound(f"invite {invite_id} not found")
    return _Locked(InviteStatus(row[0]), row[1], row[2])


async def _end_call(conn: AsyncConnection, invite_id: str, call: _Locked, now: datetime, reason: str) -> bool:
    """Log the end of a started call and clear it; True when that moved the invite IN_CALL -> ACTIVE."""
    if call.call_started_at is None:
        return False
    # A call that was waiting for its claimant ended, in effect, when he went.
    until = call.claimant_away_since or now
    data: dict[str, Any] = {"duration_s": round((until - call.call_started_at).total_seconds(), 1)}
    if reason:
        data["reason"] = reason
    await event_log.append(conn, invite_id, "call_ended", Actor.system(), now, data)
    await conn.execute(
        t.invites.update().where(t.invites.c.id == invite_id).values(call_started_at=None, claimant_away_since=None)
    )
    if call.status is not InviteStatus.IN_CALL:
        return False
    await invite_store.set_status(conn, invite_id, InviteStatus.ACTIVE, now=now)
    return True


async def _claimants_in(conn: AsyncConnection, invite_id: str) -> int:
    p = t.call_participants
    query = sa.select(sa.func.count()).where(p.c.invite_id == invite_id, p.c.role == CLAIMANT)
    return int((await conn.execute(query)).scalar_one())


async def participants_of(conn: AsyncConnection, invite_id: str) -> list[Participant]:
    p = t.call_participants
    rows = await conn.execute(p.select().where(p.c.invite_id == invite_id).order_by(p.c.joined_at, p.c.sid))
    return [_participant(r._mapping) for r in rows]


class CallService:
    def __init__(
        self, engine: AsyncEngine, clock: Clock, node_id: str, feed: ChangeFeed, reconnect_grace_s: float = 0.0
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._node_id = node_id
        self._feed = feed
        self._grace_s = reconnect_grace_s

    @property
    def node_id(self) -> str:
        """This process's id among the nodes (presence rows and media ownership name it)."""
        return self._node_id

    @property
    def reconnect_grace_s(self) -> float:
        """How long a call waits for a claimant whose connection was lost; 0: it ends at once."""
        return self._grace_s

    async def join(self, p: Participant) -> Joined:
        """Add a participant; the first claimant in starts the call (INVITED/ACTIVE -> IN_CALL).

        An earlier connection of the same page (same `resume`, role and person) is replaced: the
        page reconnected before the server noticed it had gone.
        """
        now = self._clock()
        started = False
        reconnected = False
        async with self._engine.begin() as conn:
            call = await _lock_invite(conn, p.invite_id)
            if call.status is InviteStatus.CLOSED:
                raise LinkUnusable("the invite is closed")
            replaced = await self._replace_earlier(conn, p, now)
            await conn.execute(
                t.call_participants.insert().values(
                    sid=p.sid, invite_id=p.invite_id, node_id=self._node_id, role=p.role, user_id=p.user_id,
                    name=p.name, muted=p.muted, facing=p.facing, joined_at=now, resume=p.resume,
                )
            )
            await event_log.append(conn, p.invite_id, "joined", p.actor, now, {"role": p.role})
            if p.role == CLAIMANT and call.status in (InviteStatus.INVITED, InviteStatus.ACTIVE):
                await invite_store.set_status(conn, p.invite_id, InviteStatus.IN_CALL, now=now)
                await conn.execute(
                    t.invites.update().where(t.invites.c.id == p.invite_id).values(call_started_at=now)
                )
                await event_log.append(conn, p.invite_id, "call_started", p.actor, now)
                started = True
            elif p.role == CLAIMANT and call.status is InviteStatus.IN_CALL:
                reconnected = await self._claimant_back(conn, p, call, replaced, now)
            invite = await invite_store.get(conn, p.invite_id)
            present = await participants_of(conn, p.invite_id)
        if started:
            await self._feed.publish(Change(STATUS, invite.id, invite.case_id, {"status": str(invite.status)}))
        return Joined(invite, present, replaced, reconnected)

    async def _replace_earlier(self, conn: AsyncConnection, p: Participant, now: datetime) -> list[Participant]:
        if not p.resume:
            return []
        table = t.call_participants
        rows = await conn.execute(
            table.select().where(
                table.c.invite_id == p.invite_id, table.c.resume == p.resume, table.c.role == p.role,
                table.c.user_id == p.user_id, table.c.sid != p.sid,
            )
        )
        replaced = []
        for row in rows.all():
            old = _participant(row._mapping)
            seconds = round((now - row._mapping["joined_at"]).total_seconds(), 1)
            await conn.execute(table.delete().where(table.c.sid == old.sid))
            data = {"role": old.role, "reason": "reconnected", "seconds": seconds}
            await event_log.append(conn, p.invite_id, "left", old.actor, now, data)
            replaced.append(old)
        return replaced

    async def _claimant_back(
        self, conn: AsyncConnection, p: Participant, call: _Locked, replaced: list[Participant], now: datetime
    ) -> bool:
        """Log a claimant's return to a call that was waiting for him (or kept his lost connection)."""
        if call.claimant_away_since is not None:
            away = round((now - call.claimant_away_since).total_seconds(), 1)
            await conn.execute(
                t.invites.update().where(t.invites.c.id == p.invite_id).values(claimant_away_since=None)
            )
            await event_log.append(conn, p.invite_id, "claimant_reconnected", p.actor, now, {"away_s": away})
            return True
        if any(old.role == CLAIMANT for old in replaced):
            await event_log.append(conn, p.invite_id, "claimant_reconnected", p.actor, now, {})
            return True
        return False

    async def leave(
        self, sid: str, reason: str = "left", *, lost: bool = False
    ) -> tuple[Participant, Invite, list[Participant]] | None:
        """Remove a participant; the last claimant out ends the call (IN_CALL -> ACTIVE).

        With `lost` (the connection dropped, rather than the page leaving) and a grace period, the
        last claimant out leaves the call IN_CALL, waiting for him until `end_abandoned` ends it.
        """
        now = self._clock()
        ended = False
        p_table = t.call_participants
        async with self._engine.begin() as conn:
            row = (await conn.execute(p_table.select().where(p_table.c.sid == sid))).first()
            if row is None:
                return None
            p = _participant(row._mapping)
            joined_at: datetime = row._mapping["joined_at"]
            call = await _lock_invite(conn, p.invite_id)
            await conn.execute(p_table.delete().where(p_table.c.sid == sid))
            await event_log.append(
                conn, p.invite_id, "left", p.actor, now,
                {"role": p.role, "reason": reason, "seconds": round((now - joined_at).total_seconds(), 1)},
            )
            if p.role == CLAIMANT and call.call_started_at is not None and await _claimants_in(conn, p.invite_id) == 0:
                if lost and self._grace_s > 0 and call.status is InviteStatus.IN_CALL:
                    await conn.execute(
                        t.invites.update().where(t.invites.c.id == p.invite_id).values(claimant_away_since=now)
                    )
                    await event_log.append(
                        conn, p.invite_id, "claimant_disconnected", p.actor, now,
                        {"reason": reason, "grace_s": self._grace_s},
                    )
                else:
                    ended = await _end_call(conn, p.invite_id, call, now, "")
            invite = await invite_store.get(conn, p.invite_id)
            present = await participants_of(conn, p.invite_id)
        if ended:
            await self._feed.publish(Change(STATUS, invite.id, invite.case_id, {"status": str(invite.status)}))
        return p, invite, present

    async def end(self, invite_id: str) -> Invite:
        """End the call now (someone ended it, or the invite closed), before its sockets are let go."""
        now = self._clock()
        async with self._engine.begin() as conn:
            ended = await _end_call(conn, invite_id, await _lock_invite(conn, invite_id), now, "")
            invite = await invite_store.get(conn, invite_id)
        if ended:
            await self._feed.publish(Change(STATUS, invite.id, invite.case_id, {"status": str(invite.status)}))
        return invite

    async def end_abandoned(self) -> list[Invite]:
        """End the calls whose claimant has not come back within the grace period (IN_CALL -> ACTIVE)."""
        cutoff = self._clock() - timedelta(seconds=self._grace_s)
        inv = t.invites.c
        async with self._engine.connect() as conn:
            due = [
                r[0]
                for r in await conn.execute(
                    sa.select(inv.id).where(
                        inv.status == str(InviteStatus.IN_CALL), inv.claimant_away_since <= cutoff
                    )
                )
            ]
        ended = []
        for invite_id in due:
            invite = await self._end_if_abandoned(invite_id, cutoff)
            if invite is not None:
                ended.append(invite)
        return ended

    async def _end_if_abandoned(self, invite_id: str, cutoff: datetime) -> Invite | None:
        now = self._clock()
        async with self._engine.begin() as conn:
            call = await _lock_invite(conn, invite_id)
            # Checked again under the lock: another node, or the claimant, may have been quicker.
            away = call.claimant_away_since
            if away is None or away > cutoff or await _claimants_in(conn, invite_id) > 0:
                return None
            if not await _end_call(conn, invite_id, call, now, "claimant_lost"):
                return None
            invite = await invite_store.get(conn, invite_id)
        await self._feed.publish(Change(STATUS, invite.id, invite.case_id, {"status": str(invite.status)}))
        return invite

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
            left = await self.leave(sid, "node_lost", lost=True)
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
