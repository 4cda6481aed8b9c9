"""Uploads the captures the object store did not take, once it answers again.

A capture filed while the store was down is a `pending` media item with an entry in the upload spool
(recorder/upload_spool.py). The uploader takes the entries oldest first, one at a time, each under its
lock: it checks the files against their SHA-256, stores them, marks the item stored, removes the entry,
announces the item again (now `stored`) and rewrites the invite's manifest. While the store stays down
it tries again after 2x longer pauses each time, or at once when a new capture is filed. It runs from
start-up, so a restart finds what an earlier run left, and stops between two entries, never in the
middle of one.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from recorder.filing import CaptureFiler, media_dict
from recorder.object_store import StoreUnavailable
from recorder.upload_spool import HeldEntry, UploadSpool, file_sha256
from rooms import media_store
from rooms.changes import MEDIA_ADDED, Change
from rooms.errors import NotFound
from rooms.models import MediaItem, MediaState
from rooms.stopping import StopSignal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UploadRetry:
    first_delay_s: float = 2.0
    factor: float = 2.0
    max_delay_s: float = 60.0
    # Entries other processes sharing the folder spooled, or left locked, are looked for this often.
    rescan_s: float = 30.0

    def delay_after(self, failures: int) -> float:
        return min(self.first_delay_s * self.factor ** (failures - 1), self.max_delay_s)


class _Unrecoverable(Exception):
    """An entry that trying again will not upload."""


class PendingUploader:
    def __init__(self, filer: CaptureFiler, spool: UploadSpool, retry: UploadRetry) -> None:
        self._filer = filer
        self._spool = spool
        self._retry = retry
        self._stop = StopSignal()

    def stop(self) -> None:
        """Finish the entry in progress, then end `run`."""
        self._stop.set()
        self._spool.notify()

    async def run(self) -> None:
        failures = 0
        while not self._stop.stopped:
            try:
                done = await self.upload_pending()
            except Exception:
                # A database or disk hiccup must not end uploads for good.
                log.exception("pending uploads: pass failed")
                done = False
            if done:
                failures = 0
                await self._spool.wait(self._retry.rescan_s)
            else:
                failures += 1
                # A capture spooled or stored meanwhile cuts the pause short: the store may be back.
                await self._spool.wait(self._retry.delay_after(failures))

    async def upload_pending(self) -> bool:
        """One pass over the spool; True when it holds nothing more this process can upload now."""
        await asyncio.to_thread(self._spool.clear_temporaries)
        names = await asyncio.to_thread(self._spool.names)
        clean = True
        for name in names:
            if self._stop.stopped:
                return False
            held = await asyncio.to_thread(self._spool.claim, name)
            if held is None:
                continue  # another process files or uploads it, or it is gone
            try:
                await self._upload(held)
            except StoreUnavailable as e:
                log.warning("object store still unavailable, %d capture(s) wait for it: %s", len(names), e)
                return False
            except _Unrecoverable as e:
                await asyncio.to_thread(self._set_aside, held, str(e))
            except Exception:
                log.exception("pending capture %s not uploaded; it is tried again", name)
                clean = False
            finally:
                held.release()
        return clean

    async def _upload(self, held: HeldEntry) -> None:
        try:
            entry = await asyncio.to_thread(held.read)
        except (ValueError, OSError) as e:
            raise _Unrecoverable(f"its entry is unreadable: {e}") from e
        try:
            async with self._filer.engine.connect() as conn:
                item = await media_store.get(conn, entry.media_id)
        except NotFound:
            raise _Unrecoverable("it has no media item: its filing never finished") from None
        if item.state is MediaState.PENDING:
            for obj in entry.objects:
                await asyncio.to_thread(self._check, obj.path, obj.metadata.get("sha256", ""))
            for obj in entry.objects:
                await self._filer.store.put(obj.key, obj.path, obj.content_type, obj.metadata)
            async with self._filer.engine.begin() as conn:
                marked = await media_store.mark_stored(conn, item.id)
        else:
            marked = False  # stored by a run that stopped before it removed the entry
        await asyncio.to_thread(held.remove)
        if marked:
            log.info("pending %s %s of invite %s is stored", item.kind, item.id, item.invite_id)
            await self._announce(replace(item, state=MediaState.STORED))
        await self._refresh_manifest(item.invite_id)

    @staticmethod
    def _check(path: Path, sha256: str) -> None:
        try:
            actual = file_sha256(path)
        except OSError as e:
            raise _Unrecoverable(f"{path.name} cannot be read: {e}") from e
        if sha256 and actual != sha256:
            raise _Unrecoverable(f"{path.name} is damaged: its SHA-256 is {actual}, not {sha256}")

    async def _announce(self, item: MediaItem) -> None:
        await self._filer.feed.publish(Change(MEDIA_ADDED, item.invite_id, item.case_id, {"media": media_dict(item)}))

    async def _refresh_manifest(self, invite_id: str) -> None:
        try:
            await self._filer.refresh_manifest(invite_id)
        except Exception:
            log.exception("manifest of invite %s not rewritten after a pending upload", invite_id)

    @staticmethod
    def _set_aside(held: HeldEntry, why: str) -> None:
        try:
            where = held.move_aside()
        except OSError as e:
            log.error("pending capture %s cannot be uploaded (%s) nor moved aside: %s", held.media_id, why, e)
            return
        log.error("pending capture %s cannot be uploaded (%s); moved to %s", held.media_id, why, where)
