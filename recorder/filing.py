"""Filing a capture: store the object, record the media item and its event, announce it, refresh the manifest.

The media plane calls `CaptureFiler.file` for every screenshot and every finished recording. When the
object store is down, the capture is kept in the upload spool instead and filed as `pending`; the
pending uploader (recorder/uploader.py) stores it when the store answers again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from recorder import layout
from recorder.manifest import write_manifest
from recorder.object_store import Content, ObjectStore, StoreUnavailable
from recorder.upload_spool import HeldEntry, SpooledObject, UploadSpool
from rooms import directory, event_log, invite_store, media_store
from rooms.changes import MEDIA_ADDED, Change, ChangeFeed
from rooms.clock import Clock
from rooms.models import Actor, MediaItem, MediaKind, MediaState

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
THUMBNAIL_CONTENT_TYPE = "image/jpeg"
EVENT_OF_KIND = {MediaKind.PICTURE: "screenshot_taken", MediaKind.VIDEO: "recording_stored"}


def _digest(data: Content) -> tuple[str, int]:
    """SHA-256 and size, reading a file in chunks rather than whole."""
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest(), len(data)
    h = hashlib.sha256()
    with data.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest(), data.stat().st_size


def media_dict(item: MediaItem) -> dict[str, Any]:
    """How a capture is announced (change feed, call room, staff page): when it is filed, and again
    when a pending one has reached the object store."""
    return {
        "id": item.id,
        "kind": str(item.kind),
        "state": str(item.state),
        "content_type": item.content_type,
        "size": item.size,
        "sha256": item.sha256,
        "width": item.width,
        "height": item.height,
        "duration_s": item.duration_s,
        "content_url": f"{API_PREFIX}/media/{item.id}/content",
        "thumbnail_url": f"{API_PREFIX}/media/{item.id}/thumbnail" if item.thumbnail_key else None,
    }


class _KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if self._users[key] == 0:
                del self._users[key], self._locks[key]


@dataclass(frozen=True, slots=True)
class CaptureFiler:
    engine: AsyncEngine
    store: ObjectStore
    feed: ChangeFeed
    clock: Clock
    # Where captures wait while the store is down; without one, a failed upload fails the capture.
    spool: UploadSpool | None = None
    # Manifest rewrites of one invite take turns, so an older snapshot never lands after a newer one.
    _manifest_turns: _KeyedLocks = field(default_factory=_KeyedLocks, init=False, repr=False, compare=False)

    async def file(
        self,
        invite_id: str,
        kind: MediaKind,
        data: Content,
        content_type: str,
        extension: str,
        by_user_id: str,
        by_name: str,
        *,
        width: int | None = None,
        height: int | None = None,
        duration_s: float | None = None,
        thumbnail: bytes | None = None,
    ) -> MediaItem:
        """Store and file one capture of the invite; returns the filed media item.

        When the store is unavailable and there is a spool, the capture is spooled and filed with
        state `pending`. Otherwise raises what the store raises when the upload fails (nothing is
        filed then), NotFound for an unknown invite, ValueError for an extension the layout does not
        have (`jpg` for pictures, `webm`/`mp4` for videos). A failing manifest rewrite is logged, not
        raised: the capture is filed by then, and the next capture rewrites the manifest anyway.
        """
        extension = layout.normalise_extension(kind, extension)
        sha256, size = await asyncio.to_thread(_digest, data)
        media_id = uuid.uuid4().hex
        captured_at = self.clock()
        async with self.engine.connect() as conn:
            invite = await invite_store.get(conn, invite_id)
            user = await directory.get_user(conn, by_user_id)
        filing, visibility = media_store.filing_for(invite)
        key = layout.media_key(kind, invite.case_id, invite.id, media_id, extension)
        thumb_key = layout.thumbnail_key(invite.case_id, invite.id, media_id) if thumbnail is not None else ""
        item = MediaItem(
            id=media_id,
            kind=kind,
            invite_id=invite.id,
            case_id=invite.case_id,
            task_id=invite.task_id,
            object_key=key,
            thumbnail_key=thumb_key,
            content_type=content_type,
            size=size,
            sha256=sha256,
            captured_at=captured_at,
            captured_by_id=by_user_id,
            captured_by_name=by_name,
            owner_company=user.company if user is not None else "",
            filing=filing,
            visibility=visibility,
            width=width,
            height=height,
            duration_s=duration_s,
        )
        event_data: dict[str, Any] = {"media_id": media_id, "sha256": sha256, "size": size}
        event_data.update(
            {k: v for k, v in (("width", width), ("height", height), ("duration_s", duration_s)) if v is not None}
        )

        def metadata(digest: str) -> dict[str, str]:
            return layout.capture_metadata(invite.case_id, invite.task_id, invite.id, captured_at, digest)

        objects = [SpooledObject(key, data, content_type, metadata(sha256))]
        if thumbnail is not None:
            digest = hashlib.sha256(thumbnail).hexdigest()
            objects.append(SpooledObject(thumb_key, thumbnail, THUMBNAIL_CONTENT_TYPE, metadata(digest)))
        stored, held = await self._store(item, objects)
        if held is not None:
            item = replace(item, state=MediaState.PENDING)
        try:
            async with self.engine.begin() as conn:
                # The event first: appending takes the invite row's lock, as every writer does.
                await event_log.append(
                    conn, invite.id, EVENT_OF_KIND[kind], Actor("user", by_user_id, by_name), captured_at, event_data
                )
                await media_store.insert(conn, item)
        except BaseException:
            if held is not None:
                await asyncio.to_thread(held.remove)
            await self._discard(stored)
            raise
        finally:
            if held is not None:
                held.release()
        if self.spool is not None:
            # Spooled: there is something to upload. Stored: the store answers, so what waits can go now.
            self.spool.notify()
        await self.feed.publish(Change(MEDIA_ADDED, invite.id, invite.case_id, {"media": media_dict(item)}))
        if held is None:  # a pending capture is not in the manifest yet; the uploader rewrites it
            try:
                await self.refresh_manifest(invite.id)
            except Exception:
                log.exception("manifest of invite %s not rewritten after filing %s", invite.id, media_id)
        return item

    async def _store(self, item: MediaItem, objects: list[SpooledObject]) -> tuple[list[str], HeldEntry | None]:
        """Put the capture's objects in the store; when it is unavailable, in the spool (when there is one).

        Returns the keys stored, to take back if filing fails, and the spool entry, locked, when spooled.
        """
        stored: list[str] = []
        try:
            for obj in objects:
                await self.store.put(obj.key, obj.data, obj.content_type, obj.metadata)
                stored.append(obj.key)
        except StoreUnavailable as e:
            if self.spool is None:
                await self._discard(stored)
                raise
            log.warning(
                "object store unavailable; %s %s of invite %s kept for upload: %s",
                item.kind,
                item.id,
                item.invite_id,
                e,
            )
            try:
                # Objects stored before the store failed are written again by the upload.
                return stored, await self.spool.add(item.id, item.invite_id, objects)
            except BaseException:
                await self._discard(stored)
                raise
        except BaseException:
            await self._discard(stored)
            raise
        return stored, None

    async def refresh_manifest(self, invite_id: str) -> dict[str, Any]:
        """Rewrite the invite's manifest.json from the database (other changes can call this too)."""
        async with self._manifest_turns.hold(invite_id):
            return await write_manifest(self.engine, self.store, invite_id, clock=self.clock)

    async def _discard(self, keys: list[str]) -> None:
        """Remove objects of a capture that could not be filed, so the bucket holds nothing unfiled."""
        for key in keys:
            try:
                await self.store.delete(key)
            except Exception:
                log.exception("object %s of an unfiled capture could not be removed", key)
