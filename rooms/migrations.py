"""Versioned schema migrations, applied in order, each in its own transaction.

Deliberately small instead of Alembic: the schema is owned by this package alone, and nodes that
start together must not race, so PostgreSQL takes an advisory lock while migrating.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rooms import tables

log = logging.getLogger(__name__)

_LOCK_KEY = 0x636C616D  # "clam": any constant shared by all nodes

schema_migrations = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", tables.UtcDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    apply: Callable[[AsyncConnection], Awaitable[None]]


async def _initial(conn: AsyncConnection) -> None:
    await conn.run_sync(tables.metadata.create_all)


def _columns(sync_conn: sa.Connection, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(sync_conn).get_columns(table)}


async def _calls(conn: AsyncConnection) -> None:
    # Migrations after the first are idempotent: a fresh database gets the whole current schema
    # from the first one, an older database gets only what it lacks.
    if "call_started_at" not in await conn.run_sync(_columns, "invites"):
        await conn.execute(sa.text("ALTER TABLE invites ADD COLUMN call_started_at TIMESTAMP WITH TIME ZONE"))
    await conn.run_sync(
        lambda c: tables.metadata.create_all(c, tables=[tables.call_participants, tables.call_requests])
    )


async def _nodes(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: tables.metadata.create_all(c, tables=[tables.nodes]))


async def _link_codes(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda c: tables.metadata.create_all(c, tables=[tables.link_codes]))


async def _media_state(conn: AsyncConnection) -> None:
    # Items filed before this existed were all stored in the object store.
    if "state" not in await conn.run_sync(_columns, "media_items"):
        await conn.execute(sa.text("ALTER TABLE media_items ADD COLUMN state VARCHAR(16) NOT NULL DEFAULT 'stored'"))


async def _reconnects(conn: AsyncConnection) -> None:
    if "claimant_away_since" not in await conn.run_sync(_columns, "invites"):
        await conn.execute(sa.text("ALTER TABLE invites ADD COLUMN claimant_away_since TIMESTAMP WITH TIME ZONE"))
    if "resume" not in await conn.run_sync(_columns, "call_participants"):
        await conn.execute(
            sa.text("ALTER TABLE call_participants ADD COLUMN resume VARCHAR(64) NOT NULL DEFAULT ''")
        )


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _initial),
    Migration(2, "call participants, requests and call start", _calls),
    Migration(3, "node liveness", _nodes),
    Migration(4, "claimant SMS security codes", _link_codes),
    Migration(5, "media item state: stored or pending upload", _media_state),
    Migration(6, "reconnects: the claimant's grace period, a page's connection replaced", _reconnects),
)


async def applied_versions(conn: AsyncConnection) -> set[int]:
    await conn.run_sync(schema_migrations.metadata.create_all)
    rows = await conn.execute(sa.select(schema_migrations.c.version))
    return {r[0] for r in rows}


async def migrate(engine: AsyncEngine, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply every missing migration; returns the versions applied now."""
    done: list[int] = []
    async with engine.connect() as conn:
        is_pg = conn.dialect.name == "postgresql"
        if is_pg:
            await conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            await conn.commit()
        try:
            async with conn.begin():
                have = await applied_versions(conn)
            for m in sorted(migrations, key=lambda m: m.version):
                if m.version in have:
                    continue
                async with conn.begin():
                    await m.apply(conn)
                    await conn.execute(
                        schema_migrations.insert().values(
                            version=m.version, name=m.name, applied_at=datetime.now(UTC)
                        )
                    )
                log.info("applied migration %d: %s", m.version, m.name)
                done.append(m.version)
        finally:
            if is_pg:
                await conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                await conn.commit()
    return done
