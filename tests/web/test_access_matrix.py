"""Who may do what through the REST API: every staff endpoint against the world's ACCESS table,
invite actions, `own` media visibility, media changes and content, and the claimant link."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rooms.invites import InviteService
from rooms.link_tokens import LinkKey
from rooms.models import Actor, Filing, InviteStatus, MediaItem, MediaKind, Visibility
from tests.support.api_tools import (
    JPEG,
    THUMB,
    add_media,
    assert_error,
    case_state,
    claimant_token,
    open_invite,
    request,
    settle,
)
from tests.support.world import ACCESS, PORTALS, Api, Reply
from web.keys import invites_key

ROWS = [
    (case_id, user, access) for case_id, users in ACCESS.items() for user, access in users.items()
]
ROW_IDS = [f"{case_id}-{user}-{access}" for case_id, user, access in ROWS]
VISIBLE_ROWS = [row for row in ROWS if row[2] != "none"]
VISIBLE_IDS = [f"{c}-{u}-{a}" for c, u, a in VISIBLE_ROWS]

READ_ACTIONS = ["events", "pictures", "videos"]
GHOST_CASE = "case-nope"
GHOST_ID = "0" * 32


@dataclass(frozen=True, slots=True)
class World:
    """What each matrix test starts from: one invite with a task item and a documents item."""

    case_id: str
    access: str
    invite: dict[str, Any]
    task_item: MediaItem
    doc_item: MediaItem

    def ids(self, body: Any) -> set[str]:
        return {i["id"] for i in body["items"]}


Check = Callable[[Reply, World], None]


@dataclass(frozen=True, slots=True)
class Ep:
    name: str
    method: str
    path: str  # with {case}, {invite}, {media}
    check: Check
    changes: bool = False
    body: dict[str, Any] | None = None
    ok: int = 200
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, case: str, invite: str, media: str) -> str:
        return self.path.format(case=case, invite=invite, media=media)


def check_case(r: Reply, w: World) -> None:
    assert r.body["id"] == w.case_id
    assert r.body["access"] == w.access
    assert r.body["can_invite"] is (w.access == "full")


def check_invite_list(r: Reply, w: World) -> None:
    assert r.body["access"] == w.access
    assert [i["id"] for i in r.body["invites"]] == [w.invite["id"]]


def check_created(r: Reply, w: World) -> None:
    assert r.body["case_id"] == w.case_id
    assert r.body["status"] == "INVITED"
    assert r.body["id"] != w.invite["id"]


def check_invite(r: Reply, w: World) -> None:
    assert r.body["id"] == w.invite["id"]
    assert r.body["status"] == "INVITED"


def check_resent(r: Reply, w: World) -> None:
    assert (r.body["id"], r.body["resend_count"]) == (w.invite["id"], 1)


def check_closed(r: Reply, w: World) -> None:
    assert (r.body["id"], r.body["status"], r.body["closed_reason"]) == (
        w.invite["id"],
        "CLOSED",
        "closed",
    )
    assert r.body["actions"] == READ_ACTIONS


def check_invite_events(r: Reply, w: World) -> None:
    assert r.body["invite_id"] == w.invite["id"]
    assert r.body["integrity"]["ok"] is True
    assert r.body["events"][0]["kind"] == "created"


def check_case_events(r: Reply, w: World) -> None:
    assert [g["invite"]["id"] for g in r.body["groups"]] == [w.invite["id"]]


def check_all_media(r: Reply, w: World) -> None:
    assert w.ids(r.body) == {w.task_item.id, w.doc_item.id}


def check_documents(r: Reply, w: World) -> None:
    assert w.ids(r.body) == {w.doc_item.id}


def check_task_multimedia(r: Reply, w: World) -> None:
    assert w.ids(r.body) == {w.task_item.id}


def check_content(r: Reply, w: World) -> None:
    assert r.body == JPEG
    assert r.headers["Content-Type"] == "image/jpeg"


def check_thumbnail(r: Reply, w: World) -> None:
    assert r.body == THUMB


def check_links(r: Reply, w: World) -> None:
    media = f"/api/v1/media/{w.task_item.id}"
    assert r.body["content_url"].startswith(f"{media}/content?expires=")
    assert r.body["thumbnail_url"].startswith(f"{media}/thumbnail?expires=")


def check_patched(r: Reply, w: World) -> None:
    assert (r.body["id"], r.body["filing"]) == (w.task_item.id, "task_multimedia_extra")


INVITE_BODY = {"contact_id": "c-both", "method": "sms", "task_id": "t-main"}

ENDPOINTS = [
    Ep("get-case", "GET", "/api/v1/cases/{case}", check_case),
    Ep("list-invites", "GET", "/api/v1/cases/{case}/invites", check_invite_list),
    Ep(
        "create-invite",
        "POST",
        "/api/v1/cases/{case}/invites",
        check_created,
        changes=True,
        body=INVITE_BODY,
        ok=201,
    ),
    Ep("get-invite", "GET", "/api/v1/invites/{invite}", check_invite),
    Ep("resend", "POST", "/api/v1/invites/{invite}/resend", check_resent, changes=True),
    Ep("close", "POST", "/api/v1/invites/{invite}/close", check_closed, changes=True),
    Ep("invite-events", "GET", "/api/v1/invites/{invite}/events", check_invite_events),
    Ep("case-events", "GET", "/api/v1/cases/{case}/events", check_case_events),
    Ep("invite-media", "GET", "/api/v1/invites/{invite}/media", check_all_media),
    Ep("case-media", "GET", "/api/v1/cases/{case}/media", check_all_media),
    Ep("documents", "GET", "/api/v1/cases/{case}/documents", check_documents),
    Ep(
        "task-multimedia",
        "GET",
        "/api/v1/cases/{case}/tasks/t-main/multimedia",
        check_task_multimedia,
    ),
    Ep("media-links", "GET", "/api/v1/media/{media}/links", check_links),
    Ep("media-content", "GET", "/api/v1/media/{media}/content", check_content),
    Ep("media-thumbnail", "GET", "/api/v1/media/{media}/thumbnail", check_thumbnail),
    Ep(
        "patch-media",
        "PATCH",
        "/api/v1/media/{media}",
        check_patched,
        changes=True,
        body={"filing": "task_multimedia_extra"},
    ),
]


async def world(api: Api, case_id: str, access: str) -> World:
    invite = await open_invite(api, case_id)
    task_item = await add_media(api, invite)
    doc_item = await add_media(api, invite, task_id=None, filing=Filing.CASE_DOCUMENTS)
    return World(case_id, access, invite, task_item, doc_item)


@pytest.mark.parametrize(("case_id", "user", "access"), ROWS, ids=ROW_IDS)
@pytest.mark.parametrize("ep", ENDPOINTS, ids=[e.name for e in ENDPOINTS])
async def test_staff_endpoint_answers_according_to_case_access(
    api: Api, case_id: str, user: str, access: str, ep: Ep
) -> None:
    w = await world(api, case_id, access)
    refused = access == "none" or (access == "read" and ep.changes)
    before = await case_state(api, case_id) if refused else {}
    reply = await request(
        api, ep.method, ep.url(case_id, w.invite["id"], w.task_item.id), user=user, json=ep.body
    )
    if access == "none":
        # Exactly what an id that does not exist gets: no hint that the case is there.
        assert_error(reply.status, reply.body, 404, "not_found")
        ghost = await request(
            api, ep.method, ep.url(GHOST_CASE, GHOST_ID, GHOST_ID), user=user, json=ep.body
        )
        ghost_text = (
            json.dumps(ghost.body)
            .replace(GHOST_CASE, case_id)
            .replace(f"invite {GHOST_ID}", f"invite {w.invite['id']}")
            .replace(f"media item {GHOST_ID}", f"media item {w.task_item.id}")
        )
        assert json.dumps(reply.body) == ghost_text
        assert "CLM-" not in json.dumps(reply.body)
    elif access == "read" and ep.changes:
        assert_error(reply.status, reply.body, 403, "forbidden")
    else:
        assert reply.status == ep.ok, reply.body
        ep.check(reply, w)
    if refused:
        await settle(api)
        assert await case_state(api, case_id) == before


# ---- invite actions ----


@pytest.mark.parametrize(("case_id", "user", "access"), VISIBLE_ROWS, ids=VISIBLE_IDS)
async def test_listed_invite_offers_actions_by_access(
    api: Api, case_id: str, user: str, access: str
) -> None:
    invite = await open_invite(api, case_id)
    status, body = await api.call("GET", f"/api/v1/cases/{case_id}/invites", user=user)
    assert status == 200, body
    expected = READ_ACTIONS + (["close", "resend"] if access == "full" else [])
    assert [i["actions"] for i in body["invites"] if i["id"] == invite["id"]] == [expected]


@pytest.mark.parametrize(("case_id", "user", "access"), VISIBLE_ROWS, ids=VISIBLE_IDS)
async def test_join_is_offered_only_to_full_access_while_in_call(
    api: Api, case_id: str, user: str, access: str
) -> None:
    invite = await open_invite(api, case_id)
    service: InviteService = api.client.app[invites_key]
    await service.transition(
        invite["id"], InviteStatus.IN_CALL, Actor("claimant", "c", "Claimant"), "joined"
    )
    status, body = await api.call("GET", f"/api/v1/cases/{case_id}/invites", user=user)
    assert status == 200, body
    expected = READ_ACTIONS + (["join", "close", "resend"] if access == "full" else [])
    assert [(i["status"], i["actions"]) for i in body["invites"]] == [("IN_CALL", expected)]
    status, single = await api.call("GET", f"/api/v1/invites/{invite['id']}", user=user)
    assert (status, single["actions"]) == (200, expected)


async def test_invite_not_in_call_offers_no_join(api: Api) -> None:
    await open_invite(api)
    status, body = await api.call("GET", "/api/v1/cases/case-std/invites", user="inspector")
    assert status == 200, body
    assert all("join" not in i["actions"] for i in body["invites"])


async def test_closed_invite_offers_only_reading_actions_even_to_full_access(api: Api) -> None:
    invite = await open_invite(api)
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="handler")
    assert status == 200, out
    status, body = await api.call("GET", "/api/v1/cases/case-std/invites", user="inspector")
    assert status == 200, body
    assert [i["actions"] for i in body["invites"]] == [READ_ACTIONS]


# ---- access rules the table rests on ----


async def test_external_case_handler_gets_full_access_once_the_portal_grants_start_inspection(
    api: Api,
) -> None:
    status, body = await api.call("GET", "/api/v1/cases/case-std", user="ech")
    assert (status, body["access"], body["can_invite"]) == (200, "read", False)
    granted = {**PORTALS["p-std"], "external_case_handler_rights": ["start_inspection"]}
    status, out = await api.call("PUT", "/api/v1/portals/p-std", user="platform", json=granted)
    assert status == 200, out
    status, body = await api.call("GET", "/api/v1/cases/case-std", user="ech")
    assert (status, body["access"], body["can_invite"]) == (200, "full", True)
    await api.invite("case-std", user="ech")


async def test_switching_remote_video_off_leaves_the_inspector_read_access(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/cases/case-ech", user="inspector")
    assert (status, body["access"]) == (200, "full")
    off = {**PORTALS["p-ech"], "remote_video_enabled": False}
    status, out = await api.call("PUT", "/api/v1/portals/p-ech", user="platform", json=off)
    assert status == 200, out
    status, body = await api.call("GET", "/api/v1/cases/case-ech", user="inspector")
    assert (status, body["access"], body["can_invite"]) == (200, "read", False)
    status, body = await api.call(
        "POST", "/api/v1/cases/case-ech/invites", user="inspector", json=INVITE_BODY
    )
    assert_error(status, body, 403, "forbidden")


async def test_user_unknown_to_the_directory_sees_no_case(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/cases/case-std", user="stranger")
    assert_error(status, body, 404, "not_found")


# ---- `own` and `all` media ----

# Who sees an `own` item captured by someone of Nordbuild Oy (the inspector's company): the
# insurer's people, the capturer's company, and the external case handler; not Buildco's manager.
OWN_BY_NORDBUILD = {"inspector": True, "handler": True, "viewer": True, "ech": True, "pm": False}
OWN_BY_BUILDCO = {"inspector": False, "handler": True, "viewer": True, "ech": True, "pm": True}


@pytest.mark.parametrize(
    ("owner_company", "user", "visible"),
    [("Nordbuild Oy", u, v) for u, v in OWN_BY_NORDBUILD.items()]
    + [("Buildco", u, v) for u, v in OWN_BY_BUILDCO.items()],
    ids=[f"nordbuild-{u}" for u in OWN_BY_NORDBUILD] + [f"buildco-{u}" for u in OWN_BY_BUILDCO],
)
async def test_own_item_is_seen_by_insurer_capturer_company_and_external_handler_only(
    api: Api, owner_company: str, user: str, visible: bool
) -> None:
    invite = await open_invite(api, task=None)
    item = await add_media(api, invite, visibility=Visibility.OWN, owner_company=owner_company)
    shared = await add_media(api, invite, visibility=Visibility.ALL, owner_company=owner_company)
    for suffix in ("content", "thumbnail"):
        status, body = await api.call("GET", f"/api/v1/media/{item.id}/{suffix}", user=user)
        if visible:
            assert status == 200, body
        else:
            assert_error(status, body, 404, "not_found")
    expected = {item.id, shared.id} if visible else {shared.id}
    for path in (
        f"/api/v1/invites/{invite['id']}/media",
        "/api/v1/cases/case-std/media",
        "/api/v1/cases/case-std/documents",
    ):
        status, body = await api.call("GET", path, user=user)
        assert status == 200, body
        assert {i["id"] for i in body["items"]} == expected, path


async def test_own_item_hidden_from_a_user_is_404_on_patch_not_403(api: Api) -> None:
    invite = await open_invite(api, task=None)
    item = await add_media(api, invite, visibility=Visibility.OWN, owner_company="Nordbuild Oy")
    before = await case_state(api, "case-std")
    status, body = await api.call(
        "PATCH", f"/api/v1/media/{item.id}", user="pm", json={"visibility": "all"}
    )
    assert_error(status, body, 404, "not_found")
    assert body["error"]["message"] == f"media item {item.id} not found"
    assert await case_state(api, "case-std") == before


async def test_own_item_made_visible_to_all_reaches_other_companies(api: Api) -> None:
    invite = await open_invite(api, task=None)
    item = await add_media(api, invite, visibility=Visibility.OWN, owner_company="Nordbuild Oy")
    status, body = await api.call(
        "PATCH", f"/api/v1/media/{item.id}", user="handler", json={"visibility": "all"}
    )
    assert (status, body["visibility"]) == (200, "all")
    status, content = await api.call("GET", f"/api/v1/media/{item.id}/content", user="pm")
    assert (status, content) == (200, JPEG)


@pytest.mark.parametrize(("case_id", "user", "access"), VISIBLE_ROWS, ids=VISIBLE_IDS)
async def test_all_item_is_seen_by_everyone_with_access(
    api: Api, case_id: str, user: str, access: str
) -> None:
    invite = await open_invite(api, case_id, task=None)
    item = await add_media(api, invite, visibility=Visibility.ALL, owner_company="Buildco")
    status, content = await api.call("GET", f"/api/v1/media/{item.id}/content", user=user)
    assert (status, content) == (200, JPEG)
    status, body = await api.call("GET", f"/api/v1/cases/{case_id}/media", user=user)
    assert status == 200, body
    assert [i["id"] for i in body["items"]] == [item.id]


# ---- changing media ----


async def media_events(api: Api, invite_id: str) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/api/v1/invites/{invite_id}/events", user="handler")
    assert status == 200, body
    assert body["integrity"]["ok"] is True
    return [e for e in body["events"] if e["kind"] == "media_updated"]


async def patch(
    api: Api, item: MediaItem, body: dict[str, Any], user: str = "handler"
) -> tuple[int, Any]:
    return await api.call("PATCH", f"/api/v1/media/{item.id}", user=user, json=body)


async def test_task_item_moves_to_the_extra_folder_and_back(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite)
    status, body = await patch(api, item, {"filing": "task_multimedia_extra"})
    assert (status, body["filing"]) == (200, "task_multimedia_extra")
    status, listed = await api.call(
        "GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="viewer"
    )
    assert [(i["id"], i["filing"]) for i in listed["items"]] == [(item.id, "task_multimedia_extra")]
    status, body = await patch(api, item, {"filing": "task_multimedia"})
    assert (status, body["filing"]) == (200, "task_multimedia")
    events = await media_events(api, invite["id"])
    assert [e["data"] for e in events] == [
        {"media_id": item.id, "filing": "task_multimedia_extra"},
        {"media_id": item.id, "filing": "task_multimedia"},
    ]
    assert {e["actor"]["id"] for e in events} == {"handler"}


async def test_item_without_task_cannot_move_into_task_filing(api: Api) -> None:
    invite = await open_invite(api, task=None)
    item = await add_media(api, invite)
    before = await case_state(api, "case-std")
    for filing in ("task_multimedia", "task_multimedia_extra"):
        status, body = await patch(api, item, {"filing": filing})
        assert_error(status, body, 422, "unprocessable")
    assert await case_state(api, "case-std") == before
    assert await media_events(api, invite["id"]) == []


async def test_task_item_cannot_move_to_case_documents(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite)
    status, body = await patch(api, item, {"filing": "case_documents"})
    assert_error(status, body, 422, "unprocessable")
    assert await media_events(api, invite["id"]) == []


async def test_visibility_and_sharing_changes_log_one_media_updated_event(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite, visibility=Visibility.OWN)
    status, body = await patch(api, item, {"visibility": "all", "shared_with_customer": True})
    assert (status, body["visibility"], body["shared_with_customer"]) == (200, "all", True)
    assert [e["data"] for e in await media_events(api, invite["id"])] == [
        {"media_id": item.id, "visibility": "all", "shared_with_customer": "True"}
    ]


async def test_patch_that_changes_nothing_logs_no_event(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite)
    status, body = await patch(api, item, {"filing": "task_multimedia", "visibility": "all"})
    assert (status, body["filing"], body["visibility"]) == (200, "task_multimedia", "all")
    assert await media_events(api, invite["id"]) == []


# ---- media content ----


async def test_content_streams_the_exact_bytes_with_the_stored_content_type(api: Api) -> None:
    invite = await open_invite(api)
    video = secrets.token_bytes(50_000)
    item = await add_media(
        api, invite, kind=MediaKind.VIDEO, data=video, content_type="video/mp4", thumbnail=False
    )
    reply = await request(api, "GET", f"/api/v1/media/{item.id}/content", user="viewer")
    assert (reply.status, reply.body) == (200, video)
    assert reply.headers["Content-Type"] == "video/mp4"
    assert int(reply.headers["Content-Length"]) == len(video)


async def test_content_answers_a_range_request_with_206(api: Api) -> None:
    invite = await open_invite(api)
    video = secrets.token_bytes(50_000)
    item = await add_media(api, invite, kind=MediaKind.VIDEO, data=video, content_type="video/mp4")
    reply = await request(
        api,
        "GET",
        f"/api/v1/media/{item.id}/content",
        user="viewer",
        headers={"Range": "bytes=1000-1999"},
    )
    assert (reply.status, reply.body) == (206, video[1000:2000])
    assert reply.headers["Content-Range"] == f"bytes 1000-1999/{len(video)}"
    assert reply.headers["Content-Type"] == "video/mp4"


async def test_content_answers_an_open_ended_range_request(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite)
    reply = await request(
        api,
        "GET",
        f"/api/v1/media/{item.id}/content",
        user="viewer",
        headers={"Range": "bytes=-10"},
    )
    assert (reply.status, reply.body) == (206, JPEG[-10:])


async def test_unsatisfiable_range_is_416(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite)
    reply = await request(
        api,
        "GET",
        f"/api/v1/media/{item.id}/content",
        user="viewer",
        headers={"Range": f"bytes={len(JPEG) + 10}-{len(JPEG) + 20}"},
    )
    assert reply.status == 416


async def test_item_without_thumbnail_answers_404_on_thumbnail(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite, thumbnail=False)
    status, body = await api.call("GET", f"/api/v1/media/{item.id}/thumbnail", user="viewer")
    assert_error(status, body, 404, "not_found")
    status, listed = await api.call("GET", f"/api/v1/invites/{invite['id']}/media", user="viewer")
    assert [i["thumbnail_url"] for i in listed["items"]] == [None]


async def test_content_missing_from_storage_is_404(api: Api) -> None:
    invite = await open_invite(api)
    item = await add_media(api, invite)
    (Path(api.settings.storage_dir) / item.object_key).unlink()
    status, body = await api.call("GET", f"/api/v1/media/{item.id}/content", user="viewer")
    assert_error(status, body, 404, "not_found")


async def test_media_list_filters_by_kind(api: Api) -> None:
    invite = await open_invite(api)
    picture = await add_media(api, invite)
    video = await add_media(api, invite, kind=MediaKind.VIDEO, content_type="video/mp4")
    for kind, expected in (("picture", picture.id), ("video", video.id)):
        status, body = await api.call(
            "GET", f"/api/v1/cases/case-std/media?kind={kind}", user="viewer"
        )
        assert status == 200, body
        assert [i["id"] for i in body["items"]] == [expected]


# ---- the claimant link ----

LINK_FIELDS = {
    "invite_id",
    "status",
    "case_reference",
    "company",
    "inspector",
    "language",
    "sms_code_required",
}


async def test_claimant_link_opens_its_own_invite_only(api: Api) -> None:
    first = await open_invite(api)
    second = await open_invite(api, method="email", task=None)
    for invite in (first, second):
        status, body = await api.call(
            "GET", f"/api/v1/join/{await claimant_token(api, invite['id'])}"
        )
        assert status == 200, body
        assert set(body) == LINK_FIELDS
        assert (body["invite_id"], body["status"], body["case_reference"]) == (
            invite["id"],
            "INVITED",
            "CLM-1",
        )


async def test_claimant_link_needs_no_staff_token_and_ignores_one(api: Api) -> None:
    invite = await open_invite(api)
    token = await claimant_token(api, invite["id"])
    status, body = await api.call("GET", f"/api/v1/join/{token}", token="garbage")
    assert (status, body["invite_id"]) == (200, invite["id"])


async def test_claimant_link_of_a_closed_invite_is_410(api: Api) -> None:
    invite = await open_invite(api)
    token = await claimant_token(api, invite["id"])
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200, out
    status, body = await api.call("GET", f"/api/v1/join/{token}")
    assert_error(status, body, 410, "invite_closed")


async def test_random_claimant_token_is_404(api: Api) -> None:
    await open_invite(api)
    status, body = await api.call("GET", f"/api/v1/join/{secrets.token_urlsafe(24)}")
    assert_error(status, body, 404, "not_found")


async def test_claimant_token_forged_with_another_secret_is_404(api: Api) -> None:
    invite = await open_invite(api)
    forged = LinkKey(b"not-the-instance-secret").token_for(invite["id"], "0" * 32)
    status, body = await api.call("GET", f"/api/v1/join/{forged}")
    assert_error(status, body, 404, "not_found")


async def test_claimant_token_with_the_right_key_but_a_wrong_salt_is_404(api: Api) -> None:
    invite = await open_invite(api)
    guessed = LinkKey(api.settings.link_secret).token_for(invite["id"], "0" * 32)
    status, body = await api.call("GET", f"/api/v1/join/{guessed}")
    assert_error(status, body, 404, "not_found")


@pytest.mark.parametrize(
    "token",
    [
        "%00",
        "a%20b",
        "%3Cscript%3E",
        "%C3%A4bc",
        "abc%2Fdef",
        "abc.def",
        "'%20OR%201=1--",
        "a" * 65,
    ],
    ids=["nul", "space", "markup", "non-ascii", "slash", "dot", "sql", "65-chars"],
)
async def test_claimant_token_of_the_wrong_shape_is_404(api: Api, token: str) -> None:
    status, body = await api.call("GET", f"/api/v1/join/{token}")
    assert_error(status, body, 404, "not_found")


async def test_claimant_token_of_10_kib_is_404_not_a_server_error(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/join/" + "a" * 10_240)
    assert_error(status, body, 404, "not_found")
    assert (await api.call("GET", "/healthz"))[0] == 200


# ---- the claimant link's endpoints, with and without the SMS security code step ----


@dataclass(frozen=True, slots=True)
class LinkEp:
    name: str
    method: str
    path: str  # with {token}
    # Status without a grant when the portal asks for a security code, and when it does not.
    with_code: int
    without_code: int
    body: dict[str, Any] | None = None


LINK_ENDPOINTS = [
    LinkEp("link-info", "GET", "/api/v1/join/{token}", 200, 200),
    LinkEp("ice-servers", "GET", "/api/v1/join/{token}/ice-servers", 403, 200),
    LinkEp("send-code", "POST", "/api/v1/join/{token}/code", 202, 409),
    LinkEp("verify-code", "POST", "/api/v1/join/{token}/code/verify", 422, 409, {"code": "123456"}),
]
LINK_IDS = [ep.name for ep in LINK_ENDPOINTS]


async def require_sms_code(api: Api, required: bool) -> None:
    status, out = await api.call(
        "PUT", "/api/v1/portals/p-std", user="platform", json={**PORTALS["p-std"], "sms_code_required": required}
    )
    assert status == 200, out


@pytest.mark.parametrize("codes", [True, False], ids=["code-required", "no-code"])
@pytest.mark.parametrize("ep", LINK_ENDPOINTS, ids=LINK_IDS)
async def test_link_endpoint_answers_by_the_portal_s_code_setting_and_ignores_staff_tokens(
    api: Api, ep: LinkEp, codes: bool
) -> None:
    await require_sms_code(api, codes)
    invite = await open_invite(api)
    path = ep.path.format(token=await claimant_token(api, invite["id"]))
    reply = await request(api, ep.method, path, user="inspector", json=ep.body)
    assert reply.status == (ep.with_code if codes else ep.without_code), reply.body
    if ep.name == "link-info":
        assert ("invite_id" in reply.body) is not codes, reply.body  # a staff token is no grant
    elif reply.status >= 400:
        expected = {403: "sms_code_required", 409: "sms_code_not_required", 422: "code_expired"}[reply.status]
        assert reply.body["error"]["code"] == expected, reply.body


@pytest.mark.parametrize("ep", LINK_ENDPOINTS, ids=LINK_IDS)
async def test_link_endpoint_of_a_random_token_is_404(api: Api, ep: LinkEp) -> None:
    await require_sms_code(api, True)
    await open_invite(api)
    reply = await request(api, ep.method, ep.path.format(token=secrets.token_urlsafe(24)), json=ep.body)
    assert_error(reply.status, reply.body, 404, "not_found")


@pytest.mark.parametrize("ep", LINK_ENDPOINTS, ids=LINK_IDS)
async def test_link_endpoint_of_a_closed_invite_is_410_even_with_codes(api: Api, ep: LinkEp) -> None:
    await require_sms_code(api, True)
    invite = await open_invite(api)
    token = await claimant_token(api, invite["id"])
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200, out
    reply = await request(api, ep.method, ep.path.format(token=token), json=ep.body)
    assert_error(reply.status, reply.body, 410, "invite_closed")
