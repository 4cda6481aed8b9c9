"""Captures filed while the object store is down: kept in the upload spool as `pending`, uploaded by the
pending uploader once the store answers, exactly once even with two uploaders over one folder; on SQLite
and PostgreSQL. The store here is the real local folder store, made unusable by putting a file where
its folder should be (each write then fails as on a lost mount); tests/recorder/test_store_outage.py
stops a real S3 server instead."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder import layout
from recorder.filing import CaptureFiler
from recorder.object_store import Content, LocalObjectStore, ObjectMissing, StoreUnavailable
from recorder.upload_spool import ENTRY, TEMP_PREFIX, UNRECOVERABLE, SpooledObject, UploadSpool
from recorder.uploader import PendingUploader, UploadRetry
from rooms import event_log, link_tokens, media_store
from rooms.changes import ChangeFeed
from rooms.invites import InviteService
from rooms.models import Invite, MediaItem, MediaKind, MediaState
from tests.recorder.test_filing import (
    JPEG,
    THUMB,
    Announcements,
    FailingStore,
    FakeClock,
    file_picture,
    new_invite,
)
from tests.rooms import world

WEBM = b"\x1aE\xdf\xa3" + bytes(range(256)) * 4000  # ~1 MB


class Outage:
    """Takes the local store's folder away (a file in its place) and gives it back."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def begin(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.root.write_text("not a folder")

    def end(self) -> None:
        self.root.unlink()


class CountingStore(LocalObjectStore):
    """The local store, counting the writes of each key and taking a moment over each (a slow link)."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.puts: dict[str, int] = {}

    async def put(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        self.puts[key] = self.puts.get(key, 0) + 1
        await asyncio.sleep(0.05)
        await super().put(key, data, content_type, metadata)


class Rig:
    def __init__(self, engine: AsyncEngine, store: LocalObjectStore, pending: Path) -> None:
        self.feed = ChangeFeed()
        self.announced = Announcements(self.feed)
        self.spool = UploadSpool(pending)
        self.filer = CaptureFiler(engine, store, self.feed, FakeClock(), self.spool)
        self.uploader = PendingUploader(self.filer, self.spool, UploadRetry(first_delay_s=0.05))

    def states(self) -> list[str]:
        return [c.data["media"]["state"] for c in self.announced.changes]


class DownStore(LocalObjectStore):
    """A store whose every write fails as unavailable (one request lost, say)."""

    async def put(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        raise StoreUnavailable("connection refused")


@pytest.fixture
async def invites(engine: AsyncEngine) -> InviteService:
    await world.seed(engine)
    return InviteService(engine, link_tokens.LinkKey(b"k" * 32), "http://claimcam.test", FakeClock())


@pytest.fixture
def objects(tmp_path: Path) -> Path:
    return tmp_path / "objects"


@pytest.fixture
def pending(tmp_path: Path) -> Path:
    return tmp_path / "pending-uploads"


@pytest.fixture
def outage(objects: Path) -> Outage:
    return Outage(objects)


@pytest.fixture
def rig(engine: AsyncEngine, objects: Path, pending: Path) -> Rig:
    return Rig(engine, LocalObjectStore(objects), pending)


def entries(pending: Path) -> list[str]:
    return sorted(p.name for p in pending.iterdir() if p.name != UNRECOVERABLE) if pending.exists() else []


async def item_of(engine: AsyncEngine, media_id: str) -> MediaItem:
    async with engine.connect() as conn:
        return await media_store.get(conn, media_id)


async def file_video(filer: CaptureFiler, invite: Invite, source: Path) -> MediaItem:
    return await filer.file(
        invite.id,
        MediaKind.VIDEO,
        source,
        "video/webm",
        "webm",
        "u1",
        "Ines Inspector",
        width=320,
        height=240,
        duration_s=2.0,
    )


async def test_local_store_that_cannot_write_is_unavailable(objects: Path, outage: Outage) -> None:
    outage.begin()
    with pytest.raises(StoreUnavailable):
        await LocalObjectStore(objects).put("cases/c/x.jpg", JPEG, "image/jpeg", {})


async def test_capture_is_filed_pending_and_kept_on_disk_when_the_store_is_down(
    rig: Rig, engine: AsyncEngine, invites: InviteService, outage: Outage, pending: Path
) -> None:
    invite = await new_invite(invites)
    outage.begin()
    item = await file_picture(rig.filer, invite)
    assert item.state is MediaState.PENDING
    assert await item_of(engine, item.id) == item
    assert rig.states() == ["pending"]  # announced at once, marked pending
    async with engine.connect() as conn:
        events = await event_log.list_for_invite(conn, invite.id)
    assert events[-1].kind == "screenshot_taken" and events[-1].data["media_id"] == item.id
    assert entries(pending) == [item.id]
    entry = json.loads((pending / item.id / ENTRY).read_text())
    assert [(o["file"], o["key"]) for o in entry["objects"]] == [
        ("content", item.object_key),
        ("thumbnail", item.thumbnail_key),
    ]
    assert (pending / item.id / "content").read_bytes() == JPEG
    assert (pending / item.id / "thumbnail").read_bytes() == THUMB


async def test_pending_capture_is_uploaded_marked_stored_announced_and_in_the_manifest_when_the_store_is_back(
    rig: Rig, engine: AsyncEngine, invites: InviteService, outage: Outage, pending: Path
) -> None:
    invite = await new_invite(invites)
    outage.begin()
    item = await file_picture(rig.filer, invite)
    assert await rig.uploader.upload_pending() is False  # still down: kept
    assert entries(pending) == [item.id] and (await item_of(engine, item.id)).state is MediaState.PENDING

    outage.end()
    assert await rig.uploader.upload_pending() is True
    assert await rig.filer.store.get(item.object_key) == JPEG
    assert await rig.filer.store.get(item.thumbnail_key) == THUMB
    assert (await item_of(engine, item.id)).state is MediaState.STORED
    assert rig.states() == ["pending", "stored"]
    manifest = json.loads(await rig.filer.store.get(layout.manifest_key(invite.case_id, invite.id)))
    assert [(m["id"], m["sha256"]) for m in manifest["media"]] == [(item.id, hashlib.sha256(JPEG).hexdigest())]
    assert entries(pending) == []


async def test_manifest_lists_only_captures_in_the_bucket(
    rig: Rig, engine: AsyncEngine, invites: InviteService, outage: Outage
) -> None:
    invite = await new_invite(invites)
    stored = await file_picture(rig.filer, invite)
    outage.begin()
    await file_picture(rig.filer, invite)
    outage.end()
    manifest = await rig.filer.refresh_manifest(invite.id)
    assert [m["id"] for m in manifest["media"]] == [stored.id]


async def test_recording_is_kept_whole_after_its_file_is_gone(
    rig: Rig, engine: AsyncEngine, invites: InviteService, outage: Outage, tmp_path: Path
) -> None:
    invite = await new_invite(invites)
    source = tmp_path / "finished.webm"
    source.write_bytes(WEBM)
    outage.begin()
    item = await file_video(rig.filer, invite, source)
    source.unlink()  # the recording's own files are removed once it is filed
    outage.end()
    assert await rig.uploader.upload_pending() is True
    assert await rig.filer.store.get(item.object_key) == WEBM
    assert (await item_of(engine, item.id)).sha256 == hashlib.sha256(WEBM).hexdigest()


async def test_a_store_that_refuses_the_request_still_fails_the_capture(
    engine: AsyncEngine, invites: InviteService, objects: Path, pending: Path
) -> None:
    invite = await new_invite(invites)
    rig = Rig(engine, FailingStore(objects, lambda key: True), pending)  # its OSError is no StoreUnavailable
    with pytest.raises(OSError, match="no space left"):
        await file_picture(rig.filer, invite)
    assert entries(pending) == [] and rig.announced.changes == []


async def test_failed_filing_of_a_spooled_capture_leaves_no_entry(
    rig: Rig, engine: AsyncEngine, outage: Outage, pending: Path
) -> None:
    outage.begin()
    with pytest.raises(Exception, match="not found"):
        await rig.filer.file("no-such-invite", MediaKind.PICTURE, JPEG, "image/jpeg", "jpg", "u1", "Ines")
    assert entries(pending) == []


async def test_two_uploaders_sharing_the_folder_upload_each_capture_once(
    engine: AsyncEngine, invites: InviteService, objects: Path, outage: Outage, pending: Path
) -> None:
    invite = await new_invite(invites)
    rig = Rig(engine, LocalObjectStore(objects), pending)
    outage.begin()
    items = [await file_picture(rig.filer, invite) for _ in range(4)]
    outage.end()
    store = CountingStore(objects)
    nodes = [Rig(engine, store, pending) for _ in range(2)]  # two processes sharing the data dir
    assert await asyncio.gather(*(n.uploader.upload_pending() for n in nodes)) == [True, True]
    captures = {k: n for k, n in store.puts.items() if not k.endswith(layout.MANIFEST_NAME)}
    assert captures == {k: 1 for i in items for k in (i.object_key, i.thumbnail_key)}
    assert sorted(c.data["media"]["id"] for n in nodes for c in n.announced.changes) == sorted(i.id for i in items)
    assert entries(pending) == []


async def test_entry_another_process_holds_is_left_to_it(
    rig: Rig, engine: AsyncEngine, invites: InviteService, outage: Outage, pending: Path
) -> None:
    invite = await new_invite(invites)
    outage.begin()
    item = await file_picture(rig.filer, invite)
    outage.end()
    other = UploadSpool(pending).claim(item.id)  # another node is uploading it
    assert other is not None
    try:
        assert await rig.uploader.upload_pending() is True
        assert (await item_of(engine, item.id)).state is MediaState.PENDING
    finally:
        other.release()
    assert await rig.uploader.upload_pending() is True
    assert (await item_of(engine, item.id)).state is MediaState.STORED


async def test_entry_uploaded_before_a_crash_is_only_removed(
    rig: Rig, engine: AsyncEngine, invites: InviteService, outage: Outage, pending: Path
) -> None:
    invite = await new_invite(invites)
    outage.begin()
    item = await file_picture(rig.filer, invite)
    outage.end()
    async with engine.begin() as conn:
        assert await media_store.mark_stored(conn, item.id)  # then the node died before removing the entry
    assert await rig.uploader.upload_pending() is True
    assert entries(pending) == [] and rig.states() == ["pending"]


async def test_entries_that_cannot_be_uploaded_are_moved_aside_and_half_written_ones_removed(
    rig: Rig,
    engine: AsyncEngine,
    invites: InviteService,
    outage: Outage,
    pending: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    invite = await new_invite(invites)
    outage.begin()
    damaged = await file_picture(rig.filer, invite)
    unreadable = await file_picture(rig.filer, invite)
    outage.end()
    (pending / damaged.id / "content").write_bytes(JPEG[:-1] + b"!")  # bit rot on the node's disk
    (pending / unreadable.id / ENTRY).write_text("{not json")
    orphan = "0" * 32  # spooled, then the node died before the media item was recorded
    held = await rig.spool.add(orphan, invite.id, [SpooledObject("cases/x/orphan.jpg", JPEG, "image/jpeg", {})])
    held.release()
    half = pending / f"{TEMP_PREFIX}{'1' * 32}"  # a crash while an entry was written
    half.mkdir()
    (half / "lock").touch()
    with caplog.at_level(logging.ERROR, logger="recorder.uploader"):
        assert await rig.uploader.upload_pending() is True
    assert entries(pending) == []
    assert sorted(p.name for p in (pending / UNRECOVERABLE).iterdir()) == sorted([damaged.id, unreadable.id, orphan])
    assert len([r for r in caplog.records if "cannot be uploaded" in r.getMessage()]) == 3
    with pytest.raises(ObjectMissing):
        await rig.filer.store.get(damaged.object_key)  # damaged bytes never reach the bucket
    assert (await item_of(engine, damaged.id)).state is MediaState.PENDING


async def test_uploader_wakes_for_a_new_capture_and_stops_when_asked(
    rig: Rig, engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    runner = asyncio.create_task(rig.uploader.run())
    try:
        await asyncio.sleep(0.05)  # idle now, with nothing to upload, until its 30 s rescan
        item = await file_picture(CaptureFiler(engine, DownStore(objects), rig.feed, FakeClock(), rig.spool), invite)
        for _ in range(100):
            if (await item_of(engine, item.id)).state is MediaState.STORED:
                break
            await asyncio.sleep(0.02)
        assert (await item_of(engine, item.id)).state is MediaState.STORED
    finally:
        rig.uploader.stop()
        await asyncio.wait_for(runner, 2)


async def test_a_capture_the_store_takes_again_ends_the_pause_of_those_waiting(
    engine: AsyncEngine, invites: InviteService, objects: Path, outage: Outage, pending: Path
) -> None:
    invite = await new_invite(invites)
    rig = Rig(engine, LocalObjectStore(objects), pending)
    rig.uploader = PendingUploader(rig.filer, rig.spool, UploadRetry(first_delay_s=60.0))
    outage.begin()
    waiting = await file_picture(rig.filer, invite)
    runner = asyncio.create_task(rig.uploader.run())
    try:
        await asyncio.sleep(0.1)  # it tried, failed and pauses for a minute
        assert (await item_of(engine, waiting.id)).state is MediaState.PENDING
        outage.end()
        await file_picture(rig.filer, invite)  # stored: the store is back
        for _ in range(100):
            if (await item_of(engine, waiting.id)).state is MediaState.STORED:
                break
            await asyncio.sleep(0.02)
        assert (await item_of(engine, waiting.id)).state is MediaState.STORED
    finally:
        rig.uploader.stop()
        await asyncio.wait_for(runner, 2)
