"""Bad input to the REST API: every refusal is a 4xx in the one error shape, changes nothing,
and the server keeps serving."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.conftest import MakeApi, database_url
from tests.support.api_tools import add_media, assert_error, case_state, open_invite
from tests.support.world import CASES, CONTACTS, TASKS, USERS, Api

INVITES = "/api/v1/cases/case-std/invites"
VALID_INVITE = {"contact_id": "c-both", "method": "sms", "task_id": "t-main"}
UNKNOWN = "0" * 32


async def assert_still_serving(api: Api) -> None:
    assert await api.call("GET", "/healthz") == (200, {"status": "ok"})


def assert_validation_error(status: int, body: Any) -> None:
    assert_error(status, body, 422, "invalid_request")
    details = body["error"]["details"]
    assert details and all(set(d) == {"loc", "msg"} for d in details), details


# ---- bodies of the wrong shape ----

WRONG_SHAPE = {
    "contact-id-number": {"contact_id": 5, "method": "sms"},
    "contact-id-null": {"contact_id": None, "method": "sms"},
    "contact-id-empty": {"contact_id": "", "method": "sms"},
    "contact-id-too-long": {"contact_id": "c" * 65, "method": "sms"},
    "contact-id-with-space": {"contact_id": "c both", "method": "sms"},
    "contact-id-with-nul": {"contact_id": "c-both\u0000", "method": "sms"},
    "contact-id-list": {"contact_id": ["c-both"], "method": "sms"},
    "contact-missing": {"method": "sms"},
    "method-fax": {"contact_id": "c-both", "method": "fax"},
    "method-upper-case": {"contact_id": "c-both", "method": "SMS"},
    "method-bool": {"contact_id": "c-both", "method": True},
    "method-missing": {"contact_id": "c-both"},
    "task-id-number": {"contact_id": "c-both", "method": "sms", "task_id": 1},
    "extra-field": {"contact_id": "c-both", "method": "sms", "status": "CLOSED"},
    "empty-object": {},
    "array": [VALID_INVITE],
    "string": "c-both",
    "number": 5,
    "null": None,
}


@pytest.mark.parametrize("body", list(WRONG_SHAPE.values()), ids=list(WRONG_SHAPE))
async def test_invite_body_of_the_wrong_shape_is_422_and_changes_nothing(
    api: Api, body: Any
) -> None:
    before = await case_state(api, "case-std")
    status, out = await api.call("POST", INVITES, user="inspector", data=json.dumps(body))
    assert_validation_error(status, out)
    assert await case_state(api, "case-std") == before


NOT_JSON = {
    "text": "not json",
    "truncated": '{"contact_id": "c-both", "method": "sm',
    "trailing-comma": '{"contact_id": "c-both", "method": "sms",}',
    "single-quotes": "{'contact_id': 'c-both', 'method': 'sms'}",
    "nan": "NaN",
    "empty": "",
    "whitespace": "   ",
    "bom-and-garbage": "\ufeff{",
}


@pytest.mark.parametrize("raw", list(NOT_JSON.values()), ids=list(NOT_JSON))
async def test_body_that_is_not_json_is_422(api: Api, raw: str) -> None:
    before = await case_state(api, "case-std")
    status, out = await api.call("POST", INVITES, user="inspector", data=raw)
    assert_error(status, out, 422, "invalid_request")
    assert await case_state(api, "case-std") == before


async def test_body_that_is_not_utf8_is_422(api: Api) -> None:
    status, out = await api.call("POST", INVITES, user="inspector", data=b"\xff\xfe\x00{")
    assert_error(status, out, 422, "invalid_request")


async def test_validation_errors_do_not_echo_the_input(api: Api) -> None:
    secret = "Paula's-private-note-0123456789"
    status, out = await api.call(
        "POST", INVITES, user="inspector", json={"contact_id": "c-both", "method": secret}
    )
    assert_validation_error(status, out)
    assert secret not in json.dumps(out)


@pytest.mark.parametrize("depth", [300, 50_000])
async def test_deeply_nested_json_is_422(api: Api, depth: int) -> None:
    before = await case_state(api, "case-std")
    nested = '{"contact_id": ' * depth + '"c-both"' + "}" * depth
    status, out = await api.call("POST", INVITES, user="inspector", data=nested)
    assert_error(status, out, 422, "invalid_request")
    status, out = await api.call("POST", INVITES, user="inspector", data="[" * depth + "]" * depth)
    assert_error(status, out, 422, "invalid_request")
    assert await case_state(api, "case-std") == before
    await assert_still_serving(api)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/jsonx",
    ],
)
async def test_body_with_another_content_type_is_415(api: Api, content_type: str) -> None:
    before = await case_state(api, "case-std")
    status, out = await api.call(
        "POST",
        INVITES,
        user="inspector",
        data=json.dumps(VALID_INVITE),
        headers={"Content-Type": content_type},
    )
    assert_error(status, out, 415, "unsupported_media_type")
    assert await case_state(api, "case-std") == before


async def test_json_with_a_charset_parameter_is_accepted(api: Api) -> None:
    status, out = await api.call(
        "POST",
        INVITES,
        user="inspector",
        data=json.dumps(VALID_INVITE),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert status == 201, out


async def test_post_without_a_body_is_415(api: Api) -> None:
    status, out = await api.call("POST", INVITES, user="inspector")
    assert_error(status, out, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "body",
    [
        {"filing": "trash"},
        {"visibility": "public"},
        {"shared_with_customer": "yes"},
        {"shared_with_customer": 1},
        {"filing": None, "owner_company": "Buildco"},
        ["all"],
    ],
    ids=["filing", "visibility", "shared-string", "shared-int", "extra-field", "array"],
)
async def test_media_patch_of_the_wrong_shape_is_422_and_changes_nothing(
    api: Api, body: Any
) -> None:
    item = await add_media(api, await open_invite(api))
    before = await case_state(api, "case-std")
    status, out = await api.call("PATCH", f"/api/v1/media/{item.id}", user="handler", json=body)
    assert_validation_error(status, out)
    assert await case_state(api, "case-std") == before


@pytest.mark.parametrize("query", ["kind=sound", "kind=", "kind=picture&admin=1"])
async def test_media_query_of_the_wrong_shape_is_422(api: Api, query: str) -> None:
    status, out = await api.call("GET", f"/api/v1/cases/case-std/media?{query}", user="viewer")
    assert_validation_error(status, out)


# ---- names that do not fit the case ----

UNFIT = {
    "contact-of-no-case": {"contact_id": "c-nobody", "method": "sms"},
    "unknown-task": {"contact_id": "c-both", "method": "sms", "task_id": "t-nope"},
    "sms-to-email-only-contact": {"contact_id": "c-email", "method": "sms"},
    "email-to-phone-only-contact": {"contact_id": "c-phone", "method": "email"},
}


@pytest.mark.parametrize("body", list(UNFIT.values()), ids=list(UNFIT))
async def test_invite_naming_what_the_case_cannot_combine_is_422(
    api: Api, body: dict[str, Any]
) -> None:
    before = await case_state(api, "case-std")
    status, out = await api.call("POST", INVITES, user="inspector", json=body)
    assert_error(status, out, 422, "unprocessable")
    assert await case_state(api, "case-std") == before


async def test_the_fitting_combinations_are_accepted(api: Api) -> None:
    for body in (
        {"contact_id": "c-email", "method": "email"},
        {"contact_id": "c-phone", "method": "sms"},
        {"contact_id": "c-both", "method": "email", "task_id": None},
    ):
        status, out = await api.call("POST", INVITES, user="inspector", json=body)
        assert status == 201, out


UNKNOWN_IDS = [
    ("GET", f"/api/v1/cases/{UNKNOWN}"),
    ("GET", f"/api/v1/cases/{UNKNOWN}/invites"),
    ("POST", f"/api/v1/cases/{UNKNOWN}/invites"),
    ("GET", f"/api/v1/cases/{UNKNOWN}/events"),
    ("GET", f"/api/v1/cases/{UNKNOWN}/media"),
    ("GET", f"/api/v1/cases/{UNKNOWN}/documents"),
    ("GET", f"/api/v1/cases/{UNKNOWN}/tasks/t-main/multimedia"),
    ("GET", "/api/v1/cases/case-std/tasks/t-nope/multimedia"),
    ("GET", f"/api/v1/invites/{UNKNOWN}"),
    ("POST", f"/api/v1/invites/{UNKNOWN}/resend"),
    ("POST", f"/api/v1/invites/{UNKNOWN}/close"),
    ("GET", f"/api/v1/invites/{UNKNOWN}/events"),
    ("GET", f"/api/v1/invites/{UNKNOWN}/media"),
    ("GET", f"/api/v1/media/{UNKNOWN}/content"),
    ("GET", f"/api/v1/media/{UNKNOWN}/thumbnail"),
    ("PATCH", f"/api/v1/media/{UNKNOWN}"),
    ("GET", "/api/v1/invites/inv%20with%20spaces"),
    ("GET", "/api/v1/media/%C3%A4%E2%82%AC/content"),
    ("GET", "/api/v1/nothing-here"),
]


@pytest.mark.parametrize(("method", "path"), UNKNOWN_IDS, ids=[f"{m} {p}" for m, p in UNKNOWN_IDS])
async def test_unknown_id_is_404(api: Api, method: str, path: str) -> None:
    await open_invite(api)
    before = await case_state(api, "case-std")
    body = (
        {"visibility": "all"} if method == "PATCH" else VALID_INVITE if method == "POST" else None
    )
    status, out = await api.call(method, path, user="inspector", json=body)
    assert_error(status, out, 404)
    assert await case_state(api, "case-std") == before


# ---- bodies that are too large ----


async def send_file_like(
    api: Api, method: str, path: str, raw: bytes, token: str
) -> tuple[int, Any]:
    # A file-like body: raw bytes over 1 MiB make the client warn (and warnings are errors here).
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with api.client.request(method, path, data=io.BytesIO(raw), headers=headers) as resp:
        return resp.status, await resp.json()


def padded(body: dict[str, Any], size: int) -> bytes:
    """The JSON of `body`, made exactly `size` bytes long with insignificant whitespace."""
    raw = json.dumps(body)
    assert len(raw) < size
    return (raw[:-1] + " " * (size - len(raw)) + "}").encode()


async def test_body_over_one_mib_is_413_and_changes_nothing(api: Api) -> None:
    before = await case_state(api, "case-std")
    raw = padded(VALID_INVITE, (1 << 20) + 1)
    status, out = await send_file_like(api, "POST", INVITES, raw, api.token("inspector"))
    assert_error(status, out, 413, "payload_too_large")
    assert await case_state(api, "case-std") == before
    await assert_still_serving(api)


async def test_directory_body_over_one_mib_is_413(api: Api) -> None:
    case = {**CASES["case-std"], "title": "x", "address": "y"}
    token = api.token("claims-platform", scope="platform")
    raw = padded(case, 2 << 20)
    status, out = await send_file_like(api, "PUT", "/api/v1/cases/case-new", raw, token)
    assert_error(status, out, 413, "payload_too_large")
    status, out = await api.call("GET", "/api/v1/cases/case-new", user="inspector")
    assert_error(status, out, 404, "not_found")


async def test_body_of_exactly_the_configured_limit_is_accepted(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=2048)
    status, out = await api.call("POST", INVITES, user="inspector", data=padded(VALID_INVITE, 2048))
    assert status == 201, out


async def test_body_one_byte_over_the_configured_limit_is_413(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=2048)
    before = await case_state(api, "case-std")
    status, out = await api.call("POST", INVITES, user="inspector", data=padded(VALID_INVITE, 2049))
    assert_error(status, out, 413, "payload_too_large")
    assert await case_state(api, "case-std") == before


async def test_media_patch_over_the_configured_limit_is_413(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=2048)
    item = await add_media(api, await open_invite(api))
    status, out = await api.call(
        "PATCH",
        f"/api/v1/media/{item.id}",
        user="handler",
        data=padded({"filing": "task_multimedia_extra"}, 4096),
    )
    assert_error(status, out, 413, "payload_too_large")
    status, listed = await api.call(
        "GET", f"/api/v1/invites/{item.invite_id}/media", user="handler"
    )
    assert [i["filing"] for i in listed["items"]] == ["task_multimedia"]


async def test_chunked_body_over_the_configured_limit_is_413(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=2048)

    async def chunks() -> Any:
        for _ in range(8):
            yield b" " * 1024

    headers = {
        "Authorization": f"Bearer {api.token('inspector')}",
        "Content-Type": "application/json",
    }
    async with api.client.request("POST", INVITES, data=chunks(), headers=headers) as resp:
        assert_error(resp.status, await resp.json(), 413, "payload_too_large")
    await assert_still_serving(api)


# ---- directory upserts ----

PORTAL = {"name": "New portal", "insurer_company": "Aurora Insurance"}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/portals/..%2F..",
        "/api/v1/portals/a%20b",
        "/api/v1/portals/%2Fetc%2Fpasswd",
        "/api/v1/portals/-leading-dash",
        "/api/v1/portals/" + "p" * 65,
        "/api/v1/portals/p%C3%A4",
        "/api/v1/users/a%00b",
        "/api/v1/cases/case%3Bdrop",
    ],
    ids=["dotdot", "space", "slashes", "leading-dash", "65-chars", "non-ascii", "nul", "semicolon"],
)
async def test_invalid_id_in_a_put_path_is_refused(api: Api, path: str) -> None:
    body = CASES["case-std"] if "/cases/" in path else USERS["pm"] if "/users/" in path else PORTAL
    status, out = await api.call("PUT", path, user="platform", json=body)
    assert status in (404, 422), out
    assert_error(status, out, status)
    await assert_still_serving(api)


async def test_empty_id_in_a_put_path_is_404(api: Api) -> None:
    status, out = await api.call("PUT", "/api/v1/portals/", user="platform", json=PORTAL)
    assert_error(status, out, 404)


def case_body(**changes: Any) -> dict[str, Any]:
    return {**CASES["case-std"], **changes}


BAD_CASES = {
    "duplicate-contact-ids": case_body(contacts=[*CONTACTS, {"id": "c-both", "name": "Twin"}]),
    "duplicate-task-ids": case_body(tasks=[*TASKS, {"id": "t-main", "name": "Again"}]),
    "duplicate-member": case_body(members=[{"user_id": "pm", "role": "viewer"}] * 2),
    "member-of-unknown-task": case_body(
        members=[{"user_id": "inspector", "role": "inspector", "task_id": "t-nope"}]
    ),
    "unknown-role": case_body(members=[{"user_id": "pm", "role": "owner"}]),
    "unknown-task-kind": case_body(tasks=[{"id": "t-x", "name": "X", "kind": "party"}]),
    "contact-bad-email": case_body(contacts=[{"id": "c-x", "name": "X", "email": "no-at-sign"}]),
    "contact-bad-phone": case_body(contacts=[{"id": "c-x", "name": "X", "phone": "call me"}]),
    "blank-reference": case_body(reference="   "),
    "missing-portal": {k: v for k, v in CASES["case-std"].items() if k != "portal_id"},
    "contacts-not-a-list": case_body(contacts={"id": "c-x", "name": "X"}),
}


@pytest.mark.parametrize("body", list(BAD_CASES.values()), ids=list(BAD_CASES))
async def test_put_case_that_does_not_hold_together_is_422_and_keeps_the_case(
    api: Api, body: dict[str, Any]
) -> None:
    before_case = await api.call("GET", "/api/v1/cases/case-std", user="inspector")
    before = await case_state(api, "case-std")
    status, out = await api.call("PUT", "/api/v1/cases/case-std", user="platform", json=body)
    assert_validation_error(status, out)
    assert await api.call("GET", "/api/v1/cases/case-std", user="inspector") == before_case
    assert await case_state(api, "case-std") == before


async def test_put_case_for_an_unknown_portal_is_422_and_keeps_the_case(api: Api) -> None:
    before_case = await api.call("GET", "/api/v1/cases/case-std", user="inspector")
    status, out = await api.call(
        "PUT", "/api/v1/cases/case-std", user="platform", json=case_body(portal_id="p-nope")
    )
    assert_error(status, out, 422, "unprocessable")
    assert await api.call("GET", "/api/v1/cases/case-std", user="inspector") == before_case


async def test_put_new_case_for_an_unknown_portal_creates_nothing(api: Api) -> None:
    status, out = await api.call(
        "PUT", "/api/v1/cases/case-new", user="platform", json=case_body(portal_id="p-nope")
    )
    assert_error(status, out, 422, "unprocessable")
    status, out = await api.call("GET", "/api/v1/cases/case-new", user="inspector")
    assert_error(status, out, 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "P", "language": "sv"},
        {"name": "P", "invite_link_lifetime_hours": 0},
        {"name": "P", "invite_link_lifetime_hours": "72"},
        {"name": "P", "external_case_handler_rights": ["everything"]},
        {"name": "P", "remote_video_enabled": 1},
    ],
    ids=[
        "empty-name",
        "long-name",
        "language",
        "zero-lifetime",
        "lifetime-string",
        "unknown-right",
        "bool-as-int",
    ],
)
async def test_put_portal_of_the_wrong_shape_is_422_and_keeps_the_portal(
    api: Api, body: dict[str, Any]
) -> None:
    status, out = await api.call("PUT", "/api/v1/portals/p-std", user="platform", json=body)
    assert_validation_error(status, out)
    status, case = await api.call("GET", "/api/v1/cases/case-std", user="ech")
    assert (status, case["access"], case["language"]) == (200, "read", "en")


# ---- the status machine through the API ----


async def test_closing_twice_is_409_the_second_time(api: Api) -> None:
    invite = await open_invite(api)
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert (status, out["status"]) == (200, "CLOSED")
    before = await case_state(api, "case-std")
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="handler")
    assert_error(status, out, 409, "invalid_transition")
    assert await case_state(api, "case-std") == before
    await assert_still_serving(api)


async def test_resending_a_closed_invite_is_409(api: Api) -> None:
    invite = await open_invite(api)
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200, out
    before = await case_state(api, "case-std")
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/resend", user="inspector")
    assert_error(status, out, 409, "invalid_transition")
    assert await case_state(api, "case-std") == before
    await assert_still_serving(api)


async def test_server_keeps_serving_after_a_burst_of_bad_requests(api: Api) -> None:
    for raw in [*NOT_JSON.values(), *(json.dumps(b) for b in WRONG_SHAPE.values())]:
        status, out = await api.call("POST", INVITES, user="inspector", data=raw)
        assert_error(status, out, 422)
    await assert_still_serving(api)
    status, out = await api.call("POST", INVITES, user="inspector", json=VALID_INVITE)
    assert status == 201, out


# ---- input the database itself refuses: the same 4xx on SQLite and PostgreSQL ----


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_api(request: pytest.FixtureRequest, make_api: MakeApi, tmp_path: Path) -> Api:
    return await make_api(database_url=await database_url(request.param, tmp_path, request))


NUL_PATHS = [
    ("GET", "/api/v1/cases/case%00std"),
    ("GET", "/api/v1/cases/case-std/tasks/t%00main/multimedia"),
    ("GET", "/api/v1/invites/a%00b"),
    ("POST", "/api/v1/invites/a%00b/close"),
    ("GET", "/api/v1/media/a%00b/content"),
    ("GET", "/api/v1/join/a%00b"),
]


@pytest.mark.parametrize(("method", "path"), NUL_PATHS, ids=[p for _, p in NUL_PATHS])
async def test_nul_byte_in_a_path_id_is_404(db_api: Api, method: str, path: str) -> None:
    status, out = await db_api.call(method, path, user="inspector")
    assert_error(status, out, 404, "not_found")
    await assert_still_serving(db_api)


async def test_nul_byte_in_the_token_subject_is_401(db_api: Api) -> None:
    token = jwt.encode(
        {"sub": "in\u0000spector", "exp": 2**31}, db_api.settings.jwt_secret, algorithm="HS256"
    )
    status, out = await db_api.call("GET", INVITES, token=token)
    assert_error(status, out, 401, "invalid_token")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/portals/p-new", {"name": "Portal\u0000"}),
        ("/api/v1/users/u-new", {"name": "User", "company": "Nul\u0000Co"}),
        ("/api/v1/cases/case-new", case_body(title="Water\u0000damage")),
    ],
    ids=["portal-name", "user-company", "case-title"],
)
async def test_nul_byte_in_directory_text_is_422(
    db_api: Api, path: str, body: dict[str, Any]
) -> None:
    status, out = await db_api.call("PUT", path, user="platform", json=body)
    assert_validation_error(status, out)


@pytest.mark.parametrize(
    ("path", "body", "longest"),
    [
        ("/api/v1/cases/case-new", case_body(reference="R" * 101), case_body(reference="R" * 100)),
        (
            "/api/v1/users/u-new",
            {"name": "U", "company": "C" * 201},
            {"name": "U", "company": "C" * 200},
        ),
        (
            "/api/v1/users/u-new",
            {"name": "U", "office": "O" * 201},
            {"name": "U", "office": "O" * 200},
        ),
        (
            "/api/v1/portals/p-new",
            {"name": "P", "insurer_company": "I" * 201},
            {"name": "P", "insurer_company": "I" * 200},
        ),
    ],
    ids=["case-reference", "user-company", "user-office", "portal-insurer"],
)
async def test_directory_text_longer_than_stored_is_422(
    db_api: Api, path: str, body: dict[str, Any], longest: dict[str, Any]
) -> None:
    status, out = await db_api.call("PUT", path, user="platform", json=body)
    assert_validation_error(status, out)
    status, out = await db_api.call("PUT", path, user="platform", json=longest)
    assert status == 200, out


async def test_wrong_method_is_405_naming_the_allowed_ones(api: Api) -> None:
    reply = await api.request("DELETE", INVITES, user="inspector")
    assert_error(reply.status, reply.body, 405, "method_not_allowed")
    assert set(reply.headers["Allow"].split(",")) == {"GET", "POST"}
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
