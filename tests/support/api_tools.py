"""Helpers for API tests: replies with headers, invites in any case, media, claimant tokens."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from recorder.object_store import ObjectStore
from rooms import invite_store, link_tokens, media_store
from rooms import tables as t
from rooms.delivery import queue
from rooms.models import Filing, MediaItem, MediaKind, Visibility
from tests.support.world import ACCESS, CASES, PORTALS, USERS, Api, Reply
from web.keys import engine_key, object_store_key

INVITE_TASK = "<the invite's task>"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"
THUMB = b"\xff\xd8\xff\xe0thumbnail\xff\xd9"


async def request(api: Api, method: str, path: str, **kw: Any) -> Reply:
    """Like Api.call, but the reply keeps its headers."""
    return await api.request(method, path, **kw)


def assert_error(status: int, body: Any, expected_status: int, code: str | None = None) -> None:
    """The one error shape: {"error": {"code": str, "message": str, ...}}."""
    assert status == expected_status, body
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    assert set(error) <= {"code", "message", "details"}, body
    if code is not None:
        assert error["code"] == code, body


def engine_of(api: Api) -> AsyncEngine:
    engine: AsyncEngine = api.client.app[engine_key]
    return engine


async def settle(api: Api, timeout_s: float = 5.0) -> None:
    """Wait until the delivery worker has sent everything queued, so no event arrives later."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    d = t.deliveries.c
    while True:
        async with engine_of(api).connect() as conn:
            busy = (
                await conn.execute(
                    sa.select(sa.func.count()).where(d.state.in_([queue.PENDING, queue.SENDING]))
                )
            ).scalar_one()
        if busy == 0:
            return
        assert loop.time() < deadline, "the delivery worker did not finish"
        await asyncio.sleep(0.01)


def full_user(case_id: str) -> str | None:
    return next((u for u, a in ACCESS[case_id].items() if a == "full"), None)


async def open_invite(
    api: Api, case_id: str = "case-std", *, task: str | None = "t-main", method: str = "sms"
) -> dict[str, Any]:
    """A fresh INVITED invite in any case, even one where nobody may invite (portal switched off):
    there the portal is switched on through the platform API for a moment."""
    sender = full_user(case_id)
    if sender is not None:
        invite = await api.invite(case_id, user=sender, task=task, method=method)
    else:
        portal_id = str(CASES[case_id]["portal_id"])
        portal = PORTALS[portal_id]
        status, out = await api.call(
            "PUT",
            f"/api/v1/portals/{portal_id}",
            user="platform",
            json={**portal, "remote_video_enabled": True},
        )
        assert status == 200, out
        invite = await api.invite(case_id, user="inspector", task=task, method=method)
        status, out = await api.call(
            "PUT", f"/api/v1/portals/{portal_id}", user="platform", json=portal
        )
        assert status == 200, out
    await settle(api)
    return invite


async def add_media(
    api: Api,
    invite: dict[str, Any],
    *,
    visibility: Visibility = Visibility.ALL,
    owner_company: str = "Nordbuild Oy",
    task_id: str | None = INVITE_TASK,
    filing: Filing | None = None,
    kind: MediaKind = MediaKind.PICTURE,
    data: bytes = JPEG,
    content_type: str = "image/jpeg",
    thumbnail: bool = True,
) -> MediaItem:
    """A captured item of the invite, stored as the recorder would store it; by default it
    belongs to the invite's task and is filed as captures of that invite are filed."""
    media_id = uuid.uuid4().hex
    task: str | None = invite["task_id"] if task_id == INVITE_TASK else task_id
    if filing is None:
        filing = Filing.TASK_MULTIMEDIA if task else Filing.CASE_DOCUMENTS
    capturer = next((uid for uid, u in USERS.items() if u["company"] == owner_company), "inspector")
    item = MediaItem(
        id=media_id,
        kind=kind,
        invite_id=invite["id"],
        case_id=invite["case_id"],
        task_id=task,
        object_key=f"media/{invite['case_id']}/{media_id}",
        thumbnail_key=f"media/{invite['case_id']}/{media_id}.thumb" if thumbnail else "",
        content_type=content_type,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        captured_at=datetime.now(UTC),
        captured_by_id=capturer,
        captured_by_name=str(USERS[capturer]["name"]),
        owner_company=owner_company,
        filing=filing,
        visibility=visibility,
        width=640 if kind is MediaKind.PICTURE else None,
        height=480 if kind is MediaKind.PICTURE else None,
        duration_s=12.5 if kind is MediaKind.VIDEO else None,
    )
    store: ObjectStore = api.client.app[object_store_key]
    await store.put(item.object_key, data, content_type, {})
    if thumbnail:
        await store.put(item.thumbnail_key, THUMB, "image/jpeg", {})
    async with engine_of(api).begin() as conn:
        await media_store.insert(conn, item)
    return item


async def claimant_token(api: Api, invite_id: str) -> str:
    """The token of the invite's link, derived exactly as the delivered message derives it."""
    async with engine_of(api).connect() as conn:
        salt = await invite_store.token_salt(conn, invite_id)
    return link_tokens.LinkKey(api.settings.link_secret).token_for(invite_id, salt)


async def case_state(api: Api, case_id: str, user: str = "inspector") -> dict[str, Any]:
    """Everything a change could touch in a case, as one user with access reads it."""
    state: dict[str, Any] = {}
    for part in ("invites", "events", "media"):
        status, body = await api.call("GET", f"/api/v1/cases/{case_id}/{part}", user=user)
        assert status == 200, body
        state[part] = body
    return state
