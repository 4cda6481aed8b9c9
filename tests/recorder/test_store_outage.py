"""The object store down during an upload, with a real S3 server: nanio, which keeps its bucket in a folder,
is stopped in the middle of a call and started again on the same port over the same folder. Screenshots
and recordings taken meanwhile are acknowledged as pending, listed as pending, refused as content with
409 `media_pending`, and stored with their bytes once it is back; an app restarted meanwhile uploads
what the earlier run kept."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from recorder import layout
from recorder.filing import CaptureFiler
from rooms.models import MediaKind
from tests.conftest import MakeApi
from tests.signalling.conftest import token_of
from tests.support.api_tools import JPEG, THUMB
from tests.support.rtc_bots import Bot, claimant_bot, inspector_bot
from tests.support.s3_servers import NanioServer, S3Server, running
from tests.support.sio_peer import Peer
from tests.support.world import Api
from web.keys import filer_key

BACK_WITHIN_S = 20.0  # retry pauses double from 0.2 s while the store is down for a few seconds
# A capture command waits for the S3 client's own retries of the refused connection (~1.2 s) on top
# of the capture itself; a loaded machine needs more than the peers' usual 5 s.
CAPTURE_ACK_S = 20.0


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    """A server of this test's own, as the test stops it."""
    with running(NanioServer(tmp_path / "nanio")) as server:
        yield server


def s3_settings(server: S3Server, **more: Any) -> dict[str, Any]:
    return {
        "object_store": "s3",
        "s3_endpoint": server.endpoint,
        "s3_bucket": "claimcam",
        "s3_region": "us-east-1",
        "s3_access_key": server.access_key,
        "s3_secret_key": server.secret_key,
        "upload_retry_s": 0.2,
        **more,
    }


class Call:
    """A claimant and an inspector in a call over the real hub, with aiortc peers for their browsers."""

    def __init__(self, api: Api, invite_id: str) -> None:
        self.api = api
        self.invite_id = invite_id
        self.claimant, self.inspector = Peer("/call"), Peer("/call")
        self.bots: list[Bot] = [claimant_bot(), inspector_bot()]

    async def start(self) -> None:
        url = str(self.api.client.make_url("/"))
        await self.claimant.connect(url, {"token": await token_of(self.api, self.invite_id)})
        await self.inspector.connect(url, {"jwt": self.api.token("inspector"), "invite_id": self.invite_id})
        for peer, bot in zip((self.claimant, self.inspector), self.bots, strict=True):
            assert (await peer.call("join"))["ok"]
            await bot.connect(functools.partial(self._offer, peer))
        await self.bots[1].wait_for("video", 10)

    @staticmethod
    async def _offer(peer: Peer, sdp: str) -> str:
        ack = await peer.call("rtc_offer", {"type": "offer", "sdp": sdp})
        assert ack["ok"], ack
        return str(ack["answer"]["sdp"])

    async def close(self) -> None:
        for bot in self.bots:
            await bot.close()
        for peer in (self.claimant, self.inspector):
            await peer.close()


@pytest.fixture
async def call(make_api: MakeApi, s3: S3Server) -> AsyncIterator[Call]:
    api = await make_api(ice_host_addresses="127.0.0.1", **s3_settings(s3))
    invite = await api.invite(task="t-main")
    c = Call(api, invite["id"])
    try:
        await c.start()
        yield c
    finally:
        await c.close()


async def listed(api: Api, invite_id: str) -> dict[str, dict[str, Any]]:
    status, body = await api.call("GET", f"/api/v1/invites/{invite_id}/media", user="inspector")
    assert status == 200
    return {m["id"]: m for m in body["items"]}


async def until_stored(api: Api, invite_id: str, ids: set[str]) -> dict[str, dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + BACK_WITHIN_S
    while True:
        items = await listed(api, invite_id)
        if all(items[i]["state"] == "stored" for i in ids):
            return items
        assert asyncio.get_running_loop().time() < deadline, f"still pending: {items}"
        await asyncio.sleep(0.1)


def in_bucket(server: S3Server, key: str) -> tuple[str, dict[str, str]]:
    """SHA-256 of the object's bytes and its metadata, read as a consumer of the bucket would."""
    with server.client() as client:
        resp = client.get_object("claimcam", key)
        try:
            digest = hashlib.sha256(resp.read()).hexdigest()
        finally:
            resp.close()
            resp.release_conn()
        stat = client.stat_object("claimcam", key)
    meta = {k.lower().removeprefix("x-amz-meta-"): v for k, v in (stat.metadata or {}).items()}
    return digest, meta


async def ask(peer: Peer, event: str) -> Any:
    return await peer.sio.call(event, namespace=peer.namespace, timeout=CAPTURE_ACK_S)


def stored_announcement(media_id: str) -> Callable[[Any], bool]:
    return lambda d: bool(d["media"]["id"] == media_id and d["media"]["state"] == "stored")


def spooled(api: Api) -> list[str]:
    folder = Path(api.settings.pending_uploads_dir)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_captures_while_the_store_is_down_are_pending_and_stored_when_it_is_back(
    call: Call, s3: S3Server
) -> None:
    api, inspector = call.api, call.inspector
    assert (await inspector.call("record_start"))["ok"]
    await asyncio.sleep(1.5)
    s3.stop()

    shot = await ask(inspector, "screenshot")
    assert shot["ok"] and shot["media"]["state"] == "pending"  # the inspector is told at once
    stopped = await ask(inspector, "record_stop")  # the recording is filed while the store is down
    assert stopped["ok"] and stopped["media"]["state"] == "pending"
    picture, video = shot["media"], stopped["media"]
    ids = {picture["id"], video["id"]}
    announced = await inspector.wait_for("capture", lambda d: d["media"]["id"] == picture["id"])
    assert announced["media"]["state"] == "pending"

    items = await listed(api, call.invite_id)
    assert {i: items[i]["state"] for i in ids} == {i: "pending" for i in ids}
    assert sorted(spooled(api)) == sorted(ids)
    for part in ("content", "thumbnail"):
        status, body = await api.call("GET", f"/api/v1/media/{picture['id']}/{part}", user="inspector")
        assert (status, body["error"]["code"]) == (409, "media_pending")

    s3.start()  # same port, same folder: the bucket is as it was
    items = await until_stored(api, call.invite_id, ids)
    for media_id in ids:  # announced again in the call, now stored
        again = await inspector.wait_for("capture", stored_announcement(media_id), 10)
        assert again["media"]["sha256"] == items[media_id]["sha256"]
    invite_key = layout.invite_prefix("case-std", call.invite_id)
    picture_digest, picture_meta = in_bucket(s3, f"{invite_key}pictures/{picture['id']}.jpg")
    video_digest, video_meta = in_bucket(s3, f"{invite_key}videos/{video['id']}.webm")
    assert picture_digest == picture_meta["sha256"] == items[picture["id"]]["sha256"]
    assert video_digest == video_meta["sha256"] == items[video["id"]]["sha256"]
    assert video_meta["invite"] == call.invite_id and items[video["id"]]["duration_s"] >= 1.0
    status, _ = await api.call("GET", f"/api/v1/media/{picture['id']}/content", user="inspector")
    assert status == 200  # followed to the presigned URL
    with s3.client() as client:
        resp = client.get_object("claimcam", f"{invite_key}manifest.json")
        manifest = json.loads(resp.read())
        resp.close()
        resp.release_conn()
    assert {m["id"] for m in manifest["media"]} == ids
    assert spooled(api) == []


async def test_app_restarted_while_captures_are_pending_uploads_them(make_api: MakeApi, s3: S3Server) -> None:
    first = await make_api(**s3_settings(s3))
    invite = await first.invite(task="t-main")
    s3.stop()
    filer: CaptureFiler = first.client.app[filer_key]
    item = await filer.file(
        invite["id"],
        MediaKind.PICTURE,
        JPEG,
        "image/jpeg",
        "jpg",
        "inspector",
        "Ines Inspector",
        width=640,
        height=480,
        thumbnail=THUMB,
    )
    assert item.state == "pending"
    await first.client.close()  # stopped while the store is still down: the capture stays spooled
    assert spooled(first) == [item.id]

    s3.start()
    second = await make_api(
        seed=False,
        database_url=first.settings.database_url,
        pending_uploads_dir=first.settings.pending_uploads_dir,
        **s3_settings(s3),
    )
    items = await until_stored(second, invite["id"], {item.id})
    digest, meta = in_bucket(s3, item.object_key)
    assert digest == meta["sha256"] == items[item.id]["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert in_bucket(s3, item.thumbnail_key)[0] == hashlib.sha256(THUMB).hexdigest()
    assert spooled(second) == []
