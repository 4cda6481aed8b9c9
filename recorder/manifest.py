"""`manifest.json` of an invite: everything a consumer of the bucket needs, without asking this server.

It sits next to the invite's captures (`cases/{case_id}/invites/{invite_id}/manifest.json`) and holds
the invite summary, the whole hash-chained event log with the result of checking the chain, and
every media item in the bucket with its object keys, sizes and SHA-256. It is rewritten whole each time.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from recorder import layout
from recorder.object_store import ObjectStore
from rooms import event_log, invite_store, media_store
from rooms.clock import Clock, utc_now
from rooms.event_chain import ChainCheck
from rooms.models import Event, Invite, MediaItem, MediaState

FORMAT = "claimcam-manifest/1"
CONTENT_TYPE = "application/json"
_READ_ATTEMPTS = 3


def _time(at: datetime | None) -> str | None:
    return None if at is None else layout.utc_text(at)


def _invite(invite: Invite) -> dict[str, Any]:
    return {
        "id": invite.id,
        "case_id": invite.case_id,
        "task_id": invite.task_id,
        "task_name": invite.task_name,
        "contact_name": invite.contact_name,
        "method": str(invite.method),
        "status": str(invite.status),
        "created_at": _time(invite.created_at),
        "closed_at": _time(invite.closed_at),
        "closed_reason": invite.closed_reason,
    }


def _event(ev: Event) -> dict[str, Any]:
    return {
        "seq": ev.seq,
        # Exactly the text the event's hash covers, so consumers can recompute the chain.
        "at": ev.at.astimezone(UTC).isoformat(timespec="microseconds"),
        "kind": ev.kind,
        "actor": {"kind": ev.actor.kind, "id": ev.actor.id, "name": ev.actor.name},
        "data": ev.data,
        "prev_hash": ev.prev_hash,
        "hash": ev.hash,
    }


def _media(m: MediaItem) -> dict[str, Any]:
    return {
        "id": m.id,
        "kind": str(m.kind),
        "key": m.object_key,
        "thumbnail_key": m.thumbnail_key or None,
        "content_type": m.content_type,
        "size": m.size,
        "sha256": m.sha256,
        "width": m.width,
        "height": m.height,
        "duration_s": m.duration_s,
        "captured_at": _time(m.captured_at),
        "captured_by": {"id": m.captured_by_id, "name": m.captured_by_name, "company": m.owner_company},
        "filing": str(m.filing),
        "visibility": str(m.visibility),
        "shared_with_customer": m.shared_with_customer,
    }


async def _checked_events(conn: AsyncConnection, invite_id: str) -> tuple[list[Event], ChainCheck]:
    # The chain check compares the events read with the head kept on the invite row; an event
    # appended between the two reads (a chat line during the call) looks like a cut tail, so read
    # again. A chain that was really tampered with stays broken on every attempt.
    events = await event_log.list_for_invite(conn, invite_id)
    check = await event_log.verify(conn, invite_id, events)
    for _ in range(_READ_ATTEMPTS - 1):
        if check.ok:
            break
        events = await event_log.list_for_invite(conn, invite_id)
        check = await event_log.verify(conn, invite_id, events)
    return events, check


async def build_manifest(conn: AsyncConnection, invite_id: str, written_at: datetime) -> dict[str, Any]:
    invite = await invite_store.get(conn, invite_id)
    events, check = await _checked_events(conn, invite_id)
    # Only what a consumer can fetch from the bucket: a pending capture is listed once it is uploaded.
    items = [m for m in await media_store.for_invite(conn, invite_id) if m.state is MediaState.STORED]
    return {
        "format": FORMAT,
        "written_at": layout.utc_text(written_at),
        "invite": _invite(invite),
        "integrity": {"ok": check.ok, "broken_at": check.broken_at},
        "events": [_event(e) for e in events],
        "media": [_media(m) for m in items],
    }


async def write_manifest(
    engine: AsyncEngine, store: ObjectStore, invite_id: str, *, clock: Clock = utc_now
) -> dict[str, Any]:
    """Rewrite the invite's manifest.json from the database and return what was written."""
    written_at = clock()
    async with engine.connect() as conn:
        manifest = await build_manifest(conn, invite_id, written_at)
    invite = manifest["invite"]
    body = json.dumps(manifest, indent=2, ensure_ascii=False).encode()
    metadata = {
        "case": invite["case_id"],
        "task": invite["task_id"] or "",
        "invite": invite["id"],
        "written-at": manifest["written_at"],
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    await store.put(layout.manifest_key(invite["case_id"], invite["id"]), body, CONTENT_TYPE, metadata)
    return manifest
