"""Opening the SQL engine for a database URL, on SQLite or PostgreSQL alike."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from rooms.errors import DatabaseUnavailable

log = logging.getLogger(__name__)


def normalise_url(url: str) -> str:
    """Accept the plain scheme names operators type and pick the async driver."""
    u = make_url(url)
    if u.drivername in ("sqlite", "sqlite+pysqlite"):
        u = u.set(drivername="sqlite+aiosqlite")
    elif u.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    return u.render_as_string(hide_password=False)


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers proceed during writes; foreign keys are off by default in SQLite.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_engine(url: str) -> AsyncEngine:
    url = normalise_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    _outage_is_a_domain_error(engine)
    return engine


def _outage_is_a_domain_error(engine: AsyncEngine) -> None:
    """A database that is down or restarting raises DatabaseUnavailable, which every edge answers
    clearly (503, an error acknowledgement) instead of as an unexpected error.

    Connecting fails with the driver's own errors (asyncpg raises a bare ConnectionRefusedError),
    so connecting is wrapped; a connection lost mid-query is a disconnect SQLAlchemy recognises.
    The pool's pre-ping is left alone: it replaces a dead pooled connection by itself, which is how
    requests succeed again once the database is back.
    """

    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as e:
            log.warning("cannot connect to the database: %s", e)
            raise DatabaseUnavailable("the database is unavailable; try again shortly") from e

    def lost(ctx: ExceptionContext) -> None:
        if ctx.is_disconnect and not ctx.is_pre_ping:
            log.warning("lost the connection to the database: %s", ctx.original_exception)
            raise DatabaseUnavailable("the database is unavailable; try again shortly")

    sa.event.listen(engine.sync_engine, "do_connect", connect)
    sa.event.listen(engine.sync_engine, "handle_error", lost)
