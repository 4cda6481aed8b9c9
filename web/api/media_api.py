"""Pictures and videos: lists per invite and case, content, thumbnails, filing and visibility.

Signed links: a page cannot put an Authorization header on a new window, an `<img>` or a `<video>`,
so `GET /media/{id}/links` (bearer, after the usual visibility check) hands out URLs of the content
and thumbnail that carry `expires` and an HMAC `signature` instead, valid `presign_expiry_s`.
They name one item and one part (content or thumbnail) and are refused once expired or altered.
Browsers then stream and seek videos, and S3 answers with its own presigned redirect as usual.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlencode

from aiohttp import web

from rooms import media_access, media_store
from rooms.changes import MEDIA_UPDATED, Change
from rooms.errors import NotFound
from rooms.invites import view_case
from rooms.models import MediaItem, MediaState
from rooms.staff_auth import Unauthorized
from web.api.endpoint import Endpoint, json_out, read_body, read_query, staff_user
from web.api.views import API, media_out
from web.errors import ApiError
from web.keys import clock_key, engine_key, feed_key, invites_key, object_store_key, settings_key
from web.schemas import MediaLinks, MediaList, MediaOut, MediaPatch, MediaQuery, SignedQuery

Part = Literal["content", "thumbnail"]
MEDIA_PENDING = "media_pending"
_PENDING_ERROR = (409, f"`{MEDIA_PENDING}`: the capture waits for the object store (its state is `pending`)")


def _signature(secret: str, media_id: str, part: Part, expires: int) -> str:
    key = hashlib.sha256(f"media-links:{secret}".encode()).digest()
    return hmac.new(key, f"{media_id}\n{part}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(secret: str, media_id: str, part: Part, expires: int) -> str:
    query = urlencode({"expires": expires, "signature": _signature(secret, media_id, part, expires)})
    return f"{API}/media/{media_id}/{part}?{query}"


async def _signed_item(request: web.Request, part: Part) -> MediaItem | None:
    """The item a signed link names, or None when the request carries no signature (bearer then)."""
    if "signature" not in request.query and "expires" not in request.query:
        return None
    q = read_query(request, SignedQuery)
    media_id = request.match_info["media_id"]
    secret = request.app[settings_key].secret
    if q.expires is None or q.signature is None or not hmac.compare_digest(
        q.signature.encode(), _signature(secret, media_id, part, q.expires).encode()
    ):
        raise Unauthorized("invalid_token", "the link's signature does not match")
    if q.expires < request.app[clock_key]().timestamp():
        raise Unauthorized("token_expired", "the link has expired; open the item again from the page")
    async with request.app[engine_key].connect() as conn:
        try:
            return await media_store.get(conn, media_id)
        except NotFound:
            raise NotFound(f"media item {media_id} not found") from None


async def invite_media(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    q = read_query(request, MediaQuery)
    async with request.app[engine_key].connect() as conn:
        view, invite = await request.app[invites_key].view_invite(conn, request.match_info["invite_id"], user.id)
        items = await media_store.for_invite(conn, invite.id, q.kind)
    return json_out(MediaList(items=[media_out(i) for i in media_access.only_visible(user, view, items)]))


async def case_media(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    q = read_query(request, MediaQuery)
    async with request.app[engine_key].connect() as conn:
        view = await view_case(conn, request.match_info["case_id"], user.id)
        items = await media_store.for_case(conn, view.case.id, q.kind)
    return json_out(MediaList(items=[media_out(i) for i in media_access.only_visible(user, view, items)]))


async def case_documents(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        view = await view_case(conn, request.match_info["case_id"], user.id)
        items = await media_store.case_documents(conn, view.case.id)
    return json_out(MediaList(items=[media_out(i) for i in media_access.only_visible(user, view, items)]))


async def task_multimedia(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        view = await view_case(conn, request.match_info["case_id"], user.id)
        task_id = request.match_info["task_id"]
        if view.case.task(task_id) is None:
            raise ApiError(404, "not_found", f"task {task_id} not found")
        items = await media_store.task_multimedia(conn, view.case.id, task_id)
    return json_out(MediaList(items=[media_out(i) for i in media_access.only_visible(user, view, items)]))


async def _serve(request: web.Request, key: str) -> web.StreamResponse:
    location = await request.app[object_store_key].locate(key, request.app[settings_key].presign_expiry_s)
    if location.url is not None:
        raise web.HTTPFound(location.url)
    assert location.path is not None
    # FileResponse answers Range requests, so browsers can seek in videos.
    resp = web.FileResponse(location.path, headers={"Content-Type": location.content_type})
    resp.headers["Cache-Control"] = "private, max-age=300"
    resp.headers["Referrer-Policy"] = "no-referrer"  # a signed link must not leak onwards
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


async def _item(request: web.Request, part: Part) -> MediaItem:
    item = await _signed_item(request, part)
    if item is None:
        user = await staff_user(request)
        async with request.app[engine_key].connect() as conn:
            _, item = await media_access.visible_item(conn, user, request.match_info["media_id"])
    if item.state is MediaState.PENDING:
        raise ApiError(409, MEDIA_PENDING, "the capture is kept on the server until the object store answers again; "
                       "it can be opened once it is uploaded")
    return item


async def media_links(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        _, item = await media_access.visible_item(conn, user, request.match_info["media_id"])
    settings = request.app[settings_key]
    expires = int(request.app[clock_key]().timestamp()) + settings.presign_expiry_s
    return json_out(
        MediaLinks(
            content_url=signed_url(settings.secret, item.id, "content", expires),
            thumbnail_url=signed_url(settings.secret, item.id, "thumbnail", expires) if item.thumbnail_key else None,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )
    )


async def media_content(request: web.Request) -> web.StreamResponse:
    item = await _item(request, "content")
    return await _serve(request, item.object_key)


async def media_thumbnail(request: web.Request) -> web.StreamResponse:
    item = await _item(request, "thumbnail")
    if not item.thumbnail_key:
        raise ApiError(404, "not_found", "this item has no thumbnail")
    return await _serve(request, item.thumbnail_key)


async def patch_media(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    body = await read_body(request, MediaPatch)
    async with request.app[engine_key].begin() as conn:
        item = await media_access.change(
            conn,
            user,
            request.match_info["media_id"],
            request.app[clock_key],
            filing=body.filing,
            visibility=body.visibility,
            shared_with_customer=body.shared_with_customer,
        )
    await request.app[feed_key].publish(Change(MEDIA_UPDATED, item.invite_id, item.case_id, {"media_id": item.id}))
    return json_out(media_out(item))


ENDPOINTS = [
    Endpoint("GET", "/invites/{invite_id}/media", invite_media, "Pictures or videos of one invite", "media",
             query=MediaQuery, response=MediaList),
    Endpoint("GET", "/cases/{case_id}/media", case_media, "Pictures or videos of every invite in the case", "media",
             query=MediaQuery, response=MediaList),
    Endpoint("GET", "/cases/{case_id}/documents", case_documents, "Captures filed in the case documents", "media",
             response=MediaList),
    Endpoint("GET", "/cases/{case_id}/tasks/{task_id}/multimedia", task_multimedia,
             "Captures filed in a task's multimedia (main and extra folders)", "media", response=MediaList),
    Endpoint("GET", "/media/{media_id}/links", media_links,
             "Short-lived signed URLs of the content and thumbnail, for windows, <img> and <video>", "media",
             response=MediaLinks),
    Endpoint("GET", "/media/{media_id}/content", media_content,
             "The picture or video: streamed, or a redirect to a short-lived URL; bearer token or signed link",
             "media", query=SignedQuery, produces="*/*", errors=(_PENDING_ERROR,)),
    Endpoint("GET", "/media/{media_id}/thumbnail", media_thumbnail,
             "A picture's thumbnail; bearer token or signed link", "media", query=SignedQuery,
             produces="image/jpeg", errors=(_PENDING_ERROR,)),
    Endpoint("PATCH", "/media/{media_id}", patch_media,
             "Move between main and extra folders, change visibility, share with the customer", "media",
             body=MediaPatch, response=MediaOut),
]
