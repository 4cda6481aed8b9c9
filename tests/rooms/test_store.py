"""The store on SQLite and on a real PostgreSQL server: the same tests, both engines."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import directory, event_log, invite_store, link_tokens, media_store, tables
from rooms.errors import Forbidden, InvalidTransition, LinkUnusable, NotFound, Unprocessable
from rooms.invites import InviteService
from rooms.migrations import MIGRATIONS, applied_versions, migrate
from rooms.models import (
    Actor,
    Case,
    Filing,
    InviteStatus,
    MediaItem,
    MediaKind,
    MediaState,
    Method,
    Visibility,
)
from tests.rooms import world


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


KEY = link_tokens.LinkKey(b"k" * 32)


@pytest.fixture
async def service(engine: AsyncEngine) -> InviteService:
    await world.seed(engine)
    return InviteService(engine, KEY, "http://claimcam.test", FakeClock())


def clock_of(service: InviteService) -> FakeClock:
    clock = service._clock
    assert isinstance(clock, FakeClock)
    return clock


async def token_of(engine: AsyncEngine, invite_id: str) -> str:
    async with engine.connect() as conn:
        return KEY.token_for(invite_id, await invite_store.token_salt(conn, invite_id))


async def test_migrations_are_idempotent(engine: AsyncEngine) -> None:
    assert await migrate(engine) == []
    async with engine.begin() as conn:
        assert await applied_versions(conn) == {m.version for m in MIGRATIONS}


async def test_case_round_trips_with_contacts_tasks_members(engine: AsyncEngine) -> None:
    await world.seed(engine)
    async with engine.connect() as conn:
        assert await directory.get_case(conn, "case-1") == world.CASE
        assert await directory.get_portal(conn, "p1") == world.PORTAL
        assert await directory.get_user(conn, "u1") == world.INSPECTOR


async def test_put_case_replaces_children(engine: AsyncEngine) -> None:
    await world.seed(engine)
    smaller = dataclasses.replace(world.CASE, contacts=world.CASE.contacts[:1], tasks=(), members=())
    async with engine.begin() as conn:
        await directory.put_case(conn, smaller)
    async with engine.connect() as conn:
        assert await directory.get_case(conn, "case-1") == smaller


async def test_case_of_unknown_portal_is_refused(engine: AsyncEngine) -> None:
    with pytest.raises(Unprocessable):
        async with engine.begin() as conn:
            await directory.put_case(conn, Case("c-x", "no-portal", "R"))


async def test_create_invite_snapshots_contact_and_task(service: InviteService) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.EMAIL, "t1")
    assert (inv.status, inv.destination, inv.task_name) == (InviteStatus.INVITED, "p@example.com", "Main inspection")
    assert inv.expires_at - inv.created_at == timedelta(hours=2)


async def test_invite_by_read_only_user_is_forbidden(service: InviteService) -> None:
    with pytest.raises(Forbidden):
        await service.create("case-1", world.VIEWER, "c1", Method.SMS, None)


async def test_email_to_contact_without_email_is_unprocessable(service: InviteService) -> None:
    with pytest.raises(Unprocessable):
        await service.create("case-1", world.INSPECTOR, "c2", Method.EMAIL, None)


async def test_unknown_case_is_not_found(service: InviteService) -> None:
    with pytest.raises(NotFound):
        await service.create("nope", world.INSPECTOR, "c1", Method.SMS, None)


async def test_status_machine_through_the_store(service: InviteService) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    claimant = Actor("claimant", inv.id, "Paula")
    with pytest.raises(InvalidTransition):
        await service.transition(inv.id, InviteStatus.ACTIVE, claimant, "left")
    assert (await service.transition(inv.id, InviteStatus.IN_CALL, claimant, "joined")).status is InviteStatus.IN_CALL
    assert (await service.transition(inv.id, InviteStatus.ACTIVE, claimant, "left")).status is InviteStatus.ACTIVE
    assert (await service.transition(inv.id, InviteStatus.IN_CALL, claimant, "joined")).status is InviteStatus.IN_CALL
    closed = await service.close(inv.id, world.INSPECTOR)
    assert (closed.status, closed.closed_reason) == (InviteStatus.CLOSED, "closed")
    for target in InviteStatus:
        with pytest.raises(InvalidTransition):
            await service.transition(inv.id, target, claimant, "x")


async def test_concurrent_joins_move_status_once(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    claimant = Actor("claimant", inv.id, "Paula")
    results = await asyncio.gather(
        *(service.transition(inv.id, InviteStatus.IN_CALL, claimant, "joined") for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, InvalidTransition) for r in results if isinstance(r, BaseException))
    async with engine.connect() as conn:
        assert [e.kind for e in await event_log.list_for_invite(conn, inv.id)].count("joined") == 1


async def test_link_resolves_to_its_invite_only(service: InviteService, engine: AsyncEngine) -> None:
    a = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    b = await service.create("case-1", world.INSPECTOR, "c2", Method.SMS, None)
    assert (await service.resolve_link(await token_of(engine, a.id))).id == a.id
    assert (await service.resolve_link(await token_of(engine, b.id))).id == b.id
    with pytest.raises(NotFound):
        await service.resolve_link("A" * 32)


async def test_token_is_stored_only_as_hash(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    token = await token_of(engine, inv.id)
    assert len(token) >= 32  # 24 random-looking bytes, 192 bits
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(tables.invites).where(tables.invites.c.id == inv.id))).one()
    assert token not in [str(v) for v in row]
    assert row.token_hash == link_tokens.token_hash(token)


async def test_closed_link_stops_working(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    await service.close(inv.id, world.INSPECTOR)
    with pytest.raises(LinkUnusable):
        await service.resolve_link(await token_of(engine, inv.id))


async def test_expired_link_closes_the_invite(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    clock_of(service).now += timedelta(hours=2, seconds=1)
    with pytest.raises(LinkUnusable):
        await service.resolve_link(await token_of(engine, inv.id))
    async with engine.connect() as conn:
        closed = await invite_store.get(conn, inv.id)
        kinds = [e.kind for e in await event_log.list_for_invite(conn, inv.id)]
    assert (closed.status, closed.closed_reason, kinds[-1]) == (InviteStatus.CLOSED, "expired", "closed")


async def test_sweep_closes_only_overdue_invites(service: InviteService) -> None:
    old = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    clock_of(service).now += timedelta(hours=1)
    young = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    clock_of(service).now += timedelta(hours=1, minutes=30)
    assert await service.expire_due() == [old.id]
    _, invites = await service.list_for_case("case-1", world.INSPECTOR.id)
    by_id = {i.id: i.status for i in invites}
    assert by_id == {old.id: InviteStatus.CLOSED, young.id: InviteStatus.INVITED}


async def test_resend_keeps_the_link_and_extends_expiry(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    token = await token_of(engine, inv.id)
    clock_of(service).now += timedelta(hours=1)
    again = await service.resend(inv.id, world.INSPECTOR)
    assert again.resend_count == 1
    assert again.expires_at == clock_of(service).now + timedelta(hours=2)
    assert await token_of(engine, inv.id) == token
    async with engine.connect() as conn:
        _, rendered = await service.render_message(conn, inv.id)
    assert rendered.link == f"http://claimcam.test/join/{token}"


async def test_resend_of_closed_invite_is_refused(service: InviteService) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    await service.close(inv.id, world.INSPECTOR)
    with pytest.raises(InvalidTransition):
        await service.resend(inv.id, world.INSPECTOR)


async def test_event_chain_verifies(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    await service.resend(inv.id, world.INSPECTOR)
    await service.close(inv.id, world.INSPECTOR)
    async with engine.connect() as conn:
        events = await event_log.list_for_invite(conn, inv.id)
        assert [e.kind for e in events] == ["created", "resent", "closed"]
        assert [e.seq for e in events] == [1, 2, 3]
        assert (await event_log.verify(conn, inv.id)).ok


@pytest.mark.parametrize(
    ("column", "value"),
    [("data", {"contact": "Mallory"}), ("kind", "deleted"), ("actor_name", "Someone else")],
)
async def test_edited_event_is_detected(
    service: InviteService, engine: AsyncEngine, column: str, value: object
) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    await service.resend(inv.id, world.INSPECTOR)
    ev = tables.events
    async with engine.begin() as conn:
        await conn.execute(ev.update().where(ev.c.invite_id == inv.id, ev.c.seq == 1).values({column: value}))
    async with engine.connect() as conn:
        check = await event_log.verify(conn, inv.id)
    assert (check.ok, check.broken_at) == (False, 1)


async def test_deleted_last_event_is_detected(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    await service.close(inv.id, world.INSPECTOR)
    ev = tables.events
    async with engine.begin() as conn:
        await conn.execute(ev.delete().where(ev.c.invite_id == inv.id, ev.c.seq == 2))
    async with engine.connect() as conn:
        assert not (await event_log.verify(conn, inv.id)).ok


async def test_an_event_appended_between_the_reads_is_not_a_broken_chain(
    service: InviteService, engine: AsyncEngine
) -> None:
    """The events endpoint lists the events, then verifies: an append in between is not tampering."""
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    async with engine.connect() as conn:
        listed = await event_log.list_for_invite(conn, inv.id)
    await service.resend(inv.id, world.INSPECTOR)
    async with engine.connect() as conn:
        assert (await event_log.verify(conn, inv.id, listed)).ok
        assert (await event_log.verify(conn, inv.id)).ok


async def test_concurrent_appends_keep_one_chain(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)

    async def append(i: int) -> None:
        async with engine.begin() as conn:
            await event_log.append(conn, inv.id, "chat", Actor.system(), datetime.now(UTC), {"i": i})

    await asyncio.gather(*(append(i) for i in range(20)))
    async with engine.connect() as conn:
        events = await event_log.list_for_invite(conn, inv.id)
        assert [e.seq for e in events] == list(range(1, 22))
        assert (await event_log.verify(conn, inv.id)).ok


def _picture(inv_id: str, task_id: str | None, n: int) -> MediaItem:
    filing, visibility = (
        (Filing.TASK_MULTIMEDIA, Visibility.ALL) if task_id else (Filing.CASE_DOCUMENTS, Visibility.OWN)
    )
    return MediaItem(
        id=f"m{n}", kind=MediaKind.PICTURE, invite_id=inv_id, case_id="case-1", task_id=task_id,
        object_key=f"cases/case-1/invites/{inv_id}/pictures/m{n}.jpg", thumbnail_key="",
        content_type="image/jpeg", size=10, sha256="0" * 64, captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        captured_by_id="u1", captured_by_name="Ines", owner_company="Nordbuild Oy", filing=filing,
        visibility=visibility, width=640, height=480,
    )


async def test_media_filing_follows_the_invite_task(service: InviteService, engine: AsyncEngine) -> None:
    with_task = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, "t1")
    without = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    assert media_store.filing_for(with_task) == (Filing.TASK_MULTIMEDIA, Visibility.ALL)
    assert media_store.filing_for(without) == (Filing.CASE_DOCUMENTS, Visibility.OWN)
    async with engine.begin() as conn:
        await media_store.insert(conn, _picture(with_task.id, "t1", 1))
        await media_store.insert(conn, _picture(without.id, None, 2))
    async with engine.connect() as conn:
        assert [m.id for m in await media_store.task_multimedia(conn, "case-1", "t1")] == ["m1"]
        assert [m.id for m in await media_store.case_documents(conn, "case-1")] == ["m2"]
        assert [m.id for m in await media_store.for_case(conn, "case-1", MediaKind.VIDEO)] == []
        counted = await invite_store.get(conn, with_task.id)
    assert (counted.pictures, counted.videos) == (1, 0)


async def test_media_moves_between_main_and_extra(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, "t1")
    async with engine.begin() as conn:
        await media_store.insert(conn, _picture(inv.id, "t1", 1))
        item = await media_store.get(conn, "m1")
        moved = await media_store.update(conn, item, filing=Filing.TASK_MULTIMEDIA_EXTRA, shared_with_customer=True)
    assert (moved.filing, moved.shared_with_customer) == (Filing.TASK_MULTIMEDIA_EXTRA, True)
    with pytest.raises(Unprocessable):
        async with engine.begin() as conn:
            await media_store.update(conn, moved, filing=Filing.CASE_DOCUMENTS)


async def test_pending_media_is_marked_stored_once(service: InviteService, engine: AsyncEngine) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, "t1")
    async with engine.begin() as conn:
        await media_store.insert(conn, dataclasses.replace(_picture(inv.id, "t1", 1), state=MediaState.PENDING))
        assert (await media_store.get(conn, "m1")).state is MediaState.PENDING
        assert await media_store.mark_stored(conn, "m1") is True
        assert await media_store.mark_stored(conn, "m1") is False  # another node got there first
        assert (await media_store.get(conn, "m1")).state is MediaState.STORED


async def test_database_of_version_1_is_upgraded(engine: AsyncEngine) -> None:
    # Rebuild what a version-1 database looked like, then migrate it forward.
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: tables.link_codes.drop(c))
        await conn.run_sync(lambda c: tables.call_requests.drop(c))
        await conn.run_sync(lambda c: tables.call_participants.drop(c))
        await conn.execute(sa.text("ALTER TABLE invites DROP COLUMN call_started_at"))
        await conn.execute(sa.text("ALTER TABLE media_items DROP COLUMN state"))
        await conn.execute(sa.text("DELETE FROM schema_migrations WHERE version > 1"))
    assert await migrate(engine) == [m.version for m in MIGRATIONS if m.version > 1]
    async with engine.connect() as conn:
        columns = await conn.run_sync(lambda c: {col["name"] for col in sa.inspect(c).get_columns("invites")})
        media_columns = await conn.run_sync(lambda c: {col["name"] for col in sa.inspect(c).get_columns("media_items")})
        names = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    assert "call_started_at" in columns and {"call_participants", "call_requests", "link_codes"} <= names
    assert "state" in media_columns


async def test_media_filed_before_the_state_column_counts_as_stored(
    service: InviteService, engine: AsyncEngine
) -> None:
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, "t1")
    async with engine.begin() as conn:
        await media_store.insert(conn, _picture(inv.id, "t1", 1))
        await conn.execute(sa.text("ALTER TABLE media_items DROP COLUMN state"))
        await conn.execute(sa.text("DELETE FROM schema_migrations WHERE version = 5"))
    assert await migrate(engine) == [5]
    async with engine.connect() as conn:
        assert (await media_store.get(conn, "m1")).state is MediaState.STORED


async def test_participants_of_a_dead_node_are_let_go(service: InviteService, engine: AsyncEngine) -> None:
    from rooms.calls import CLAIMANT, CallService, Participant
    from rooms.changes import ChangeFeed

    clock = clock_of(service)
    inv = await service.create("case-1", world.INSPECTOR, "c1", Method.SMS, None)
    dead = CallService(engine, clock, "node-dead", ChangeFeed())
    alive = CallService(engine, clock, "node-alive", ChangeFeed())
    await dead.heartbeat()
    await alive.heartbeat()
    await dead.join(Participant("sid-1", inv.id, CLAIMANT, "c1", "Paula"))
    clock.now += timedelta(seconds=20)
    await alive.heartbeat()
    assert await alive.remove_dead_nodes(silent_s=30) == []  # 20 s of silence is not death yet
    clock.now += timedelta(seconds=20)
    await alive.heartbeat()
    [(gone, invite, present)] = await alive.remove_dead_nodes(silent_s=30)
    assert (gone.sid, invite.status, present) == ("sid-1", InviteStatus.ACTIVE, [])
    async with engine.connect() as conn:
        events = await event_log.list_for_invite(conn, inv.id)
        node_ids = [r[0] for r in await conn.execute(sa.select(tables.nodes.c.id))]
    assert [e.kind for e in events][-2:] == ["left", "call_ended"]
    assert events[-2].data["reason"] == "node_lost"
    assert node_ids == ["node-alive"]
