"""Filing captures on SQLite and PostgreSQL: objects by the layout, the media item, its event, the
announcement and manifest.json, and nothing half-filed when storing fails."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.filing import CaptureFiler
from recorder.object_store import Content, LocalObjectStore, S3ObjectStore
from rooms import event_log, link_tokens, media_store
from rooms import tables as t
from rooms.changes import MEDIA_ADDED, Change, ChangeFeed
from rooms.errors import NotFound
from rooms.invites import InviteService
from rooms.models import Filing, Invite, MediaKind, Method, Visibility
from tests.rooms import world
from tests.support.s3_servers import S3Server

JPEG = b"\xff\xd8\xff\xe0" + b"picture" * 100 + b"\xff\xd9"
THUMB = b"\xff\xd8\xff\xe0thumb\xff\xd9"
WEBM = b"\x1a\x45\xdf\xa3" + b"video" * 300
CAPTURED_AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = CAPTURED_AT

    def __call__(self) -> datetime:
        return self.now


class FailingStore(LocalObjectStore):
    """A real local store whose writes of some keys fail, as a full disk or a dropped connection would."""

    def __init__(self, root: Path, fails: Callable[[str], bool]) -> None:
        super().__init__(root)
        self.fails = fails

    async def put(self, key: str, data: Content, content_type: str, metadata: dict[str, str]) -> None:
        if self.fails(key):
            raise OSError(f"no space left on device while writing {key}")
        await super().put(key, data, content_type, metadata)


class Announcements:
    def __init__(self, feed: ChangeFeed) -> None:
        self.changes: list[Change] = []
        feed.subscribe(self._record)

    async def _record(self, change: Change) -> None:
        self.changes.append(change)


def stored_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def sidecar(root: Path, key: str) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads((root / (key + ".meta.json")).read_text())
    return meta


@pytest.fixture
def objects(tmp_path: Path) -> Path:
    """The local store's folder, apart from the SQLite file."""
    return tmp_path / "objects"


@pytest.fixture
async def invites(engine: AsyncEngine) -> InviteService:
    await world.seed(engine)
    return InviteService(engine, link_tokens.LinkKey(b"k" * 32), "http://claimcam.test", FakeClock())


async def new_invite(invites: InviteService, task_id: str | None = "t1") -> Invite:
    return await invites.create("case-1", world.INSPECTOR, "c1", Method.SMS, task_id)


def filer_on(engine: AsyncEngine, store: LocalObjectStore | S3ObjectStore) -> tuple[CaptureFiler, Announcements]:
    feed = ChangeFeed()
    return CaptureFiler(engine, store, feed, FakeClock()), Announcements(feed)


async def file_picture(filer: CaptureFiler, invite: Invite, *, user_id: str = "u1", thumbnail: bytes | None = THUMB,
                       data: bytes = JPEG) -> Any:
    return await filer.file(invite.id, MediaKind.PICTURE, data, "image/jpeg", "jpg", user_id, "Ines Inspector",
                            width=640, height=480, thumbnail=thumbnail)


async def media_rows(engine: AsyncEngine, invite_id: str) -> int:
    async with engine.connect() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).where(t.media_items.c.invite_id == invite_id))
        ).scalar_one()
    return int(count)


async def test_picture_of_an_invite_with_a_task_is_filed_in_its_multimedia_for_all(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites, "t1")
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    item = await file_picture(filer, invite)
    assert (item.filing, item.visibility, item.task_id) == (Filing.TASK_MULTIMEDIA, Visibility.ALL, "t1")
    assert (item.owner_company, item.captured_by_id, item.captured_by_name) == ("Nordbuild Oy", "u1", "Ines Inspector")
    assert (item.size, item.sha256) == (len(JPEG), hashlib.sha256(JPEG).hexdigest())
    assert (item.width, item.height, item.duration_s, item.captured_at) == (640, 480, None, CAPTURED_AT)
    async with engine.connect() as conn:
        assert await media_store.get(conn, item.id) == item
        assert [m.id for m in await media_store.task_multimedia(conn, "case-1", "t1")] == [item.id]


async def test_video_filed_from_a_file_has_its_hash_and_size(
    engine: AsyncEngine, invites: InviteService, objects: Path, tmp_path: Path
) -> None:
    invite = await new_invite(invites, "t1")
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    content = b"\x1aE\xdf\xa3" + bytes(3_000_000)  # a WebM-looking file of 3 MB
    source = tmp_path / "done.webm"
    source.write_bytes(content)
    item = await filer.file(invite.id, MediaKind.VIDEO, source, "video/webm", "webm", "u1", "Ines Inspector",
                            duration_s=3.0)
    assert (item.size, item.sha256) == (len(content), hashlib.sha256(content).hexdigest())
    assert await filer.store.get(item.object_key) == content


async def test_picture_of_an_invite_without_a_task_goes_to_the_case_documents_as_own(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites, None)
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    item = await file_picture(filer, invite)
    assert (item.filing, item.visibility, item.task_id) == (Filing.CASE_DOCUMENTS, Visibility.OWN, None)
    async with engine.connect() as conn:
        assert [m.id for m in await media_store.case_documents(conn, "case-1")] == [item.id]


async def test_capture_by_an_unknown_user_has_no_owner_company(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    item = await file_picture(filer, await new_invite(invites), user_id="not-in-directory")
    assert (item.owner_company, item.captured_by_id) == ("", "not-in-directory")


async def test_objects_follow_the_layout_and_carry_case_task_invite_time_and_hash(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites, "t1")
    store = LocalObjectStore(objects)
    filer, _ = filer_on(engine, store)
    item = await file_picture(filer, invite)
    folder = f"cases/case-1/invites/{invite.id}"
    assert item.object_key == f"{folder}/pictures/{item.id}.jpg"
    assert item.thumbnail_key == f"{folder}/thumbs/{item.id}.jpg"
    assert (await store.get(item.object_key), await store.get(item.thumbnail_key)) == (JPEG, THUMB)
    common = {"case": "case-1", "task": "t1", "invite": invite.id, "captured-at": "2026-11-21T12:00:00+00:00"}
    assert sidecar(objects, item.object_key) == {
        "content_type": "image/jpeg", "metadata": {**common, "sha256": hashlib.sha256(JPEG).hexdigest()},
    }
    assert sidecar(objects, item.thumbnail_key) == {
        "content_type": "image/jpeg", "metadata": {**common, "sha256": hashlib.sha256(THUMB).hexdigest()},
    }
    assert stored_files(objects) == sorted(
        [item.object_key, item.object_key + ".meta.json", item.thumbnail_key, item.thumbnail_key + ".meta.json",
         f"{folder}/manifest.json", f"{folder}/manifest.json.meta.json"]
    )


async def test_invite_without_a_task_has_an_empty_task_in_the_metadata(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    item = await file_picture(filer, await new_invite(invites, None), thumbnail=None)
    assert item.thumbnail_key == ""
    assert sidecar(objects, item.object_key)["metadata"]["task"] == ""


async def test_screenshot_is_logged_by_its_taker_and_the_chain_verifies(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    item = await file_picture(filer, invite)
    async with engine.connect() as conn:
        events = await event_log.list_for_invite(conn, invite.id)
        assert (await event_log.verify(conn, invite.id)).ok
    last = events[-1]
    assert (last.kind, last.actor.kind, last.actor.id, last.actor.name, last.at) == (
        "screenshot_taken", "user", "u1", "Ines Inspector", CAPTURED_AT
    )
    assert last.data == {"media_id": item.id, "sha256": item.sha256, "size": len(JPEG), "width": 640, "height": 480}


async def test_video_is_stored_under_videos_and_logged_as_recording_stored(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    store = LocalObjectStore(objects)
    filer, announced = filer_on(engine, store)
    item = await filer.file(invite.id, MediaKind.VIDEO, WEBM, "video/webm", ".webm", "u1", "Ines Inspector",
                            duration_s=12.5)
    assert item.object_key == f"cases/case-1/invites/{invite.id}/videos/{item.id}.webm"
    assert (item.kind, item.content_type, item.duration_s, item.width) == (MediaKind.VIDEO, "video/webm", 12.5, None)
    assert await store.get(item.object_key) == WEBM
    async with engine.connect() as conn:
        last = (await event_log.list_for_invite(conn, invite.id))[-1]
        assert (await invites.view_invite(conn, invite.id, "u1"))[1].videos == 1
    assert (last.kind, last.data) == (
        "recording_stored", {"media_id": item.id, "sha256": item.sha256, "size": len(WEBM), "duration_s": 12.5}
    )
    assert announced.changes[0].data["media"]["thumbnail_url"] is None


async def test_new_media_is_announced_on_the_change_feed(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    filer, announced = filer_on(engine, LocalObjectStore(objects))
    item = await file_picture(filer, invite)
    assert announced.changes == [
        Change(MEDIA_ADDED, invite.id, "case-1", {"media": {
            "id": item.id, "kind": "picture", "state": "stored", "content_type": "image/jpeg", "size": len(JPEG),
            "sha256": hashlib.sha256(JPEG).hexdigest(), "width": 640, "height": 480, "duration_s": None,
            "content_url": f"/api/v1/media/{item.id}/content",
            "thumbnail_url": f"/api/v1/media/{item.id}/thumbnail",
        }})
    ]


async def test_manifest_lists_the_invite_its_events_and_every_item_with_its_hash(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    store = LocalObjectStore(objects)
    filer, _ = filer_on(engine, store)
    first = await file_picture(filer, invite)
    second = await filer.file(invite.id, MediaKind.VIDEO, WEBM, "video/webm", "webm", "u1", "Ines Inspector",
                              duration_s=3.0)
    manifest = json.loads(await store.get(f"cases/case-1/invites/{invite.id}/manifest.json"))
    assert manifest["format"] == "claimcam-manifest/1"
    assert manifest["invite"] == {
        "id": invite.id, "case_id": "case-1", "task_id": "t1", "task_name": "Main inspection",
        "contact_name": "Paula", "method": "sms", "status": "INVITED",
        "created_at": invite.created_at.isoformat(), "closed_at": None, "closed_reason": "",
    }
    assert manifest["integrity"] == {"ok": True, "broken_at": None}
    async with engine.connect() as conn:
        events = await event_log.list_for_invite(conn, invite.id)
    assert [(e["seq"], e["kind"], e["hash"]) for e in manifest["events"]] == [(e.seq, e.kind, e.hash) for e in events]
    assert [e["kind"] for e in manifest["events"]] == ["created", "screenshot_taken", "recording_stored"]
    assert manifest["events"][1]["actor"] == {"kind": "user", "id": "u1", "name": "Ines Inspector"}
    by_id = {m["id"]: m for m in manifest["media"]}
    assert set(by_id) == {first.id, second.id}
    assert by_id[first.id] == {
        "id": first.id, "kind": "picture", "key": first.object_key, "thumbnail_key": first.thumbnail_key,
        "content_type": "image/jpeg", "size": len(JPEG), "sha256": hashlib.sha256(JPEG).hexdigest(),
        "width": 640, "height": 480, "duration_s": None, "captured_at": "2026-11-21T12:00:00+00:00",
        "captured_by": {"id": "u1", "name": "Ines Inspector", "company": "Nordbuild Oy"},
        "filing": "task_multimedia", "visibility": "all", "shared_with_customer": False,
    }
    assert (by_id[second.id]["key"], by_id[second.id]["thumbnail_key"]) == (second.object_key, None)
    assert by_id[second.id]["sha256"] == hashlib.sha256(WEBM).hexdigest()
    body = await store.get(f"cases/case-1/invites/{invite.id}/manifest.json")
    meta = sidecar(objects, f"cases/case-1/invites/{invite.id}/manifest.json")
    assert meta["content_type"] == "application/json"
    assert meta["metadata"]["sha256"] == hashlib.sha256(body).hexdigest()


async def test_concurrent_captures_all_end_up_in_the_manifest(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    store = LocalObjectStore(objects)
    filer, _ = filer_on(engine, store)
    items = await asyncio.gather(*(file_picture(filer, invite, data=JPEG + bytes([i])) for i in range(6)))
    manifest = json.loads(await store.get(f"cases/case-1/invites/{invite.id}/manifest.json"))
    assert sorted(m["id"] for m in manifest["media"]) == sorted(i.id for i in items)
    assert manifest["integrity"]["ok"] is True and len(manifest["events"]) == 7


async def test_failed_upload_files_nothing(engine: AsyncEngine, invites: InviteService, objects: Path) -> None:
    invite = await new_invite(invites)
    filer, announced = filer_on(engine, FailingStore(objects, lambda key: True))
    with pytest.raises(OSError, match="no space left"):
        await file_picture(filer, invite)
    assert await media_rows(engine, invite.id) == 0
    async with engine.connect() as conn:
        assert [e.kind for e in await event_log.list_for_invite(conn, invite.id)] == ["created"]
    assert (announced.changes, stored_files(objects)) == ([], [])


async def test_failed_thumbnail_upload_takes_the_stored_picture_back(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    filer, announced = filer_on(engine, FailingStore(objects, lambda key: "/thumbs/" in key))
    with pytest.raises(OSError):
        await file_picture(filer, invite)
    assert (await media_rows(engine, invite.id), announced.changes, stored_files(objects)) == (0, [], [])


async def test_failed_manifest_write_keeps_the_capture_filed_and_is_logged(
    engine: AsyncEngine, invites: InviteService, objects: Path, caplog: pytest.LogCaptureFixture
) -> None:
    invite = await new_invite(invites)
    filer, announced = filer_on(engine, FailingStore(objects, lambda key: key.endswith("manifest.json")))
    with caplog.at_level(logging.ERROR, logger="recorder.filing"):
        item = await file_picture(filer, invite)
    assert await media_rows(engine, invite.id) == 1 and len(announced.changes) == 1
    assert any("manifest" in r.getMessage() and invite.id in r.getMessage() for r in caplog.records)
    assert item.object_key in stored_files(objects)


async def test_extension_outside_the_layout_is_refused_before_storing(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    invite = await new_invite(invites)
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    with pytest.raises(ValueError, match="jpg"):
        await filer.file(invite.id, MediaKind.PICTURE, JPEG, "image/png", "png", "u1", "Ines")
    with pytest.raises(ValueError, match="webm"):
        await filer.file(invite.id, MediaKind.VIDEO, WEBM, "video/x-matroska", "mkv", "u1", "Ines")
    assert (await media_rows(engine, invite.id), stored_files(objects)) == (0, [])


async def test_capture_for_an_unknown_invite_is_not_found_and_stores_nothing(
    engine: AsyncEngine, invites: InviteService, objects: Path
) -> None:
    filer, _ = filer_on(engine, LocalObjectStore(objects))
    with pytest.raises(NotFound):
        await filer.file("no-such-invite", MediaKind.PICTURE, JPEG, "image/jpeg", "jpg", "u1", "Ines")
    assert stored_files(objects) == []


def recomputed_chain(invite_id: str, events: list[dict[str, Any]]) -> list[str]:
    """The event hashes recomputed from the manifest alone, by the recipe the README gives consumers."""
    hashes: list[str] = []
    prev = "0" * 64
    for e in events:
        assert e["prev_hash"] == prev
        body = [prev, invite_id, e["seq"], e["at"], e["kind"], e["actor"]["kind"], e["actor"]["id"],
                e["actor"]["name"], e["data"]]
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prev = hashlib.sha256(text.encode()).hexdigest()
        hashes.append(prev)
    return hashes


async def test_a_consumer_can_work_from_the_bucket_alone(
    engine: AsyncEngine, invites: InviteService, moto_s3: S3Server
) -> None:
    invite = await new_invite(invites)
    bucket = moto_s3.new_bucket_name()
    store = S3ObjectStore(moto_s3.endpoint, bucket, moto_s3.access_key, moto_s3.secret_key)
    try:
        await store.ensure_bucket()
        filer, _ = filer_on(engine, store)
        picture = await file_picture(filer, invite)
        video = await filer.file(invite.id, MediaKind.VIDEO, WEBM, "video/mp4", "mp4", "u1", "Ines Inspector",
                                 duration_s=2.0)
    finally:
        store.close()

    # From here on only what a consumer has: the bucket and a plain S3 client.
    def read_bucket() -> tuple[list[str], dict[str, Any], dict[str, tuple[bytes, dict[str, str]]]]:
        prefix = f"cases/case-1/invites/{invite.id}/"
        with moto_s3.client() as client:
            keys = sorted(str(o.object_name) for o in client.list_objects(bucket, prefix=prefix, recursive=True))
            resp = client.get_object(bucket, prefix + "manifest.json")
            try:
                manifest = json.loads(resp.read())
            finally:
                resp.close()
                resp.release_conn()
            objects: dict[str, tuple[bytes, dict[str, str]]] = {}
            for m in manifest["media"]:
                resp = client.get_object(bucket, m["key"])
                try:
                    headers = client.stat_object(bucket, m["key"]).metadata or {}
                    objects[m["key"]] = (resp.read(), {k.lower(): v for k, v in headers.items()})
                finally:
                    resp.close()
                    resp.release_conn()
        return keys, manifest, objects

    keys, manifest, objects = await asyncio.to_thread(read_bucket)
    folder = f"cases/case-1/invites/{invite.id}"
    assert keys == sorted([f"{folder}/manifest.json", f"{folder}/pictures/{picture.id}.jpg",
                           f"{folder}/thumbs/{picture.id}.jpg", f"{folder}/videos/{video.id}.mp4"])
    assert [e["kind"] for e in manifest["events"]] == ["created", "screenshot_taken", "recording_stored"]
    assert manifest["integrity"]["ok"] is True
    assert recomputed_chain(invite.id, manifest["events"]) == [e["hash"] for e in manifest["events"]]
    for m in manifest["media"]:
        data, meta = objects[m["key"]]
        assert hashlib.sha256(data).hexdigest() == m["sha256"] == meta["x-amz-meta-sha256"]
        assert (meta["x-amz-meta-case"], meta["x-amz-meta-task"], meta["x-amz-meta-invite"]) == (
            "case-1", "t1", invite.id
        )
        assert meta["x-amz-meta-captured-at"] == m["captured_at"] == "2026-11-21T12:00:00+00:00"
