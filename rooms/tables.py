"""The SQL schema as SQLAlchemy Core tables. Migrations create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both engines (SQLite would otherwise hand back naive values)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

ID = sa.String(64)

portals = sa.Table(
    "portals",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("insurer_company", sa.String(200), nullable=False, server_default=""),
    sa.Column("language", sa.String(8), nullable=False, server_default="en"),
    sa.Column("remote_video_enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("invite_link_lifetime_hours", sa.Integer, nullable=False, server_default="72"),
    sa.Column("sms_code_required", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("external_case_handler_rights", sa.JSON, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False, server_default=""),
    sa.Column("company", sa.String(200), nullable=False, server_default=""),
    sa.Column("office", sa.String(200), nullable=False, server_default=""),
    sa.Column("phone", sa.String(40), nullable=False, server_default=""),
)

cases = sa.Table(
    "cases",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("portal_id", ID, sa.ForeignKey("portals.id"), nullable=False),
    sa.Column("reference", sa.String(100), nullable=False),
    sa.Column("title", sa.String(300), nullable=False, server_default=""),
    sa.Column("address", sa.String(300), nullable=False, server_default=""),
)

contacts = sa.Table(
    "case_contacts",
    metadata,
    sa.Column("case_id", ID, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", ID, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("phone", sa.String(40), nullable=False, server_default=""),
    sa.Column("email", sa.String(320), nullable=False, server_default=""),
)

tasks = sa.Table(
    "case_tasks",
    metadata,
    sa.Column("case_id", ID, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("id", ID, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
)

members = sa.Table(
    "case_members",
    metadata,
    sa.Column("case_id", ID, sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", ID, primary_key=True),
    sa.Column("role", sa.String(32), primary_key=True),
    sa.Column("task_id", ID, nullable=True),
    sa.Index("ix_case_members_user", "user_id"),
)

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("case_id", ID, sa.ForeignKey("cases.id"), nullable=False, index=True),
    # Task and contact are snapshots: the platform may later rename or drop them.
    sa.Column("task_id", ID, nullable=True),
    sa.Column("task_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("contact_id", ID, nullable=False),
    sa.Column("contact_name", sa.String(200), nullable=False),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("destination", sa.String(320), nullable=False),
    sa.Column("sender_id", ID, nullable=False),
    sa.Column("sender_name", sa.String(200), nullable=False),
    sa.Column("sender_company", sa.String(200), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("closed_at", UtcDateTime, nullable=True),
    sa.Column("closed_reason", sa.String(32), nullable=False, server_default=""),
    sa.Column("resend_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("token_salt", sa.String(64), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    # Head of the hash chain; updating it serialises appends to one invite's log.
    sa.Column("event_seq", sa.Integer, nullable=False, server_default="0"),
    sa.Column("event_head", sa.String(64), nullable=False),
    # When the current call began (first claimant in); cleared when it ends. Added in migration 2.
    sa.Column("call_started_at", UtcDateTime, nullable=True),
    # When the call lost its last claimant without him leaving on purpose: the call waits for him to
    # reconnect until this plus the grace period (rooms/calls.py). Added in migration 6.
    sa.Column("claimant_away_since", UtcDateTime, nullable=True),
    sa.Index("ix_invites_open_expiry", "status", "expires_at"),
)

events = sa.Table(
    "invite_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("actor_kind", sa.String(16), nullable=False),
    sa.Column("actor_id", ID, nullable=False, server_default=""),
    sa.Column("actor_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("invite_id", "seq", name="uq_invite_events_seq"),
)

media_items = sa.Table(
    "media_items",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id"), nullable=False, index=True),
    sa.Column("case_id", ID, sa.ForeignKey("cases.id"), nullable=False, index=True),
    sa.Column("task_id", ID, nullable=True),
    sa.Column("object_key", sa.String(500), nullable=False),
    sa.Column("thumbnail_key", sa.String(500), nullable=False, server_default=""),
    sa.Column("content_type", sa.String(100), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("duration_s", sa.Float, nullable=True),
    sa.Column("captured_at", UtcDateTime, nullable=False),
    sa.Column("captured_by_id", ID, nullable=False),
    sa.Column("captured_by_name", sa.String(200), nullable=False),
    sa.Column("owner_company", sa.String(200), nullable=False, server_default=""),
    sa.Column("filing", sa.String(32), nullable=False),
    sa.Column("visibility", sa.String(8), nullable=False),
    sa.Column("shared_with_customer", sa.Boolean, nullable=False, server_default=sa.false()),
    # stored | pending: spooled on a node's disk while the object store was down (migration 5).
    sa.Column("state", sa.String(16), nullable=False, server_default="stored"),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id"), nullable=False, index=True),
    sa.Column("purpose", sa.String(16), nullable=False),  # invite | resend | sms_code
    sa.Column("state", sa.String(16), nullable=False),  # pending | sending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    sa.Column("lease_until", UtcDateTime, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=False, server_default=""),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index("ix_deliveries_due", "state", "next_attempt_at"),
)

outbox = sa.Table(
    "dev_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("invite_id", ID, nullable=False, index=True),
    sa.Column("method", sa.String(8), nullable=False),
    sa.Column("recipient", sa.String(320), nullable=False),
    sa.Column("subject", sa.String(300), nullable=False, server_default=""),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("link", sa.String(500), nullable=False),
    sa.Column("sent_at", UtcDateTime, nullable=False),
)

# Who is in which call, shared by every node (Socket.IO sids are unique across nodes).
call_participants = sa.Table(
    "call_participants",
    metadata,
    sa.Column("sid", sa.String(64), primary_key=True),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id"), nullable=False, index=True),
    sa.Column("node_id", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),  # claimant | inspector
    sa.Column("user_id", ID, nullable=False, server_default=""),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("facing", sa.String(16), nullable=False, server_default=""),
    sa.Column("joined_at", UtcDateTime, nullable=False),
    # A random id the page keeps for its lifetime: its next connection replaces this one (migration 6).
    sa.Column("resume", sa.String(64), nullable=False, server_default=""),
)

# Requests to the claimant awaiting an answer (camera switch); conditional updates settle races.
call_requests = sa.Table(
    "call_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id"), nullable=False, index=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("asker_sid", sa.String(64), nullable=False),
    sa.Column("asker_name", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # pending | accepted | declined | expired
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

# Nodes that hold calls; a node silent for too long is presumed dead and its participants removed.
nodes = sa.Table(
    "nodes",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("seen_at", UtcDateTime, nullable=False),
)

# The claimant's SMS security codes (migration 4), newest per invite counts. The code itself is not
# stored: it is derived from the instance secret and `nonce` (rooms/link_codes.py), so the delivery
# queue can render the SMS again on a retry while the database alone yields no code.
link_codes = sa.Table(
    "link_codes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("invite_id", ID, sa.ForeignKey("invites.id"), nullable=False),
    sa.Column("nonce", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # live | used | dead
    sa.Column("wrong_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Index("ix_link_codes_invite", "invite_id", "created_at"),
)
