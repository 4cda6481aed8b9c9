"""The claimant's SMS security code step end to end over SQLite: the link endpoints, the SMS at the
local gateway or in the outbox, the grant on the API and on /call, and every refusal's code."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from rooms.delivery.channels import outbox_entries
from tests.conftest import MakeApi
from tests.support.api_tools import claimant_token, engine_of, request, settle
from tests.support.sio_peer import Peer, Refused
from tests.support.sms_gateway import GatewayState
from tests.support.world import PORTALS, Api
from web import i18n

T = TypeVar("T")
CODE = re.compile(r"security code is (\d{6})\.")
GRANT = "X-Claimcam-Grant"
LINK_FIELDS = {"invite_id", "status", "case_reference", "company", "inspector", "language", "sms_code_required"}


async def eventually(probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 5.0) -> T:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while (value := await probe()) is None:
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)
    return value


def assert_refused(status: int, body: Any, expected: int, code: str, **extra: int) -> None:
    """The one error shape, with the extra fields a code step refusal carries."""
    assert status == expected, body
    error = body["error"]
    assert set(body) == {"error"} and set(error) == {"code", "message", *extra}, body
    assert error["code"] == code and error["message"], body
    for name, value in extra.items():
        assert error[name] == value, body


async def require_codes(api: Api, required: bool = True) -> None:
    status, out = await api.call(
        "PUT", "/api/v1/portals/p-std", user="platform", json={**PORTALS["p-std"], "sms_code_required": required}
    )
    assert status == 200, out


async def code_invite(api: Api, **kw: Any) -> tuple[dict[str, Any], str]:
    await require_codes(api)
    invite = await api.invite(**kw)
    await settle(api)
    return invite, await claimant_token(api, invite["id"])


async def outbox_code(api: Api, invite_id: str, nth: int = 1) -> str:
    """The code of the invite's nth security code SMS in the dev outbox."""

    async def probe() -> str | None:
        codes = [m.group(1) for e in reversed(await outbox_entries(engine_of(api)))
                 if e.invite_id == invite_id and (m := CODE.search(e.body))]
        return codes[nth - 1] if len(codes) >= nth else None

    return await eventually(probe, f"security code SMS #{nth} in the outbox")


async def send(api: Api, token: str) -> tuple[int, dict[str, str], Any]:
    reply = await request(api, "POST", f"/api/v1/join/{token}/code")
    return reply.status, reply.headers, reply.body


async def verify(api: Api, token: str, code: Any) -> tuple[int, dict[str, str], Any]:
    reply = await request(api, "POST", f"/api/v1/join/{token}/code/verify", json={"code": code})
    return reply.status, reply.headers, reply.body


async def granted(api: Api, token: str, invite_id: str) -> str:
    status, _, out = await send(api, token)
    assert status == 202, out
    status, _, out = await verify(api, token, await outbox_code(api, invite_id))
    assert status == 200, out
    return str(out["grant"])


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def events(api: Api, invite_id: str) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/api/v1/invites/{invite_id}/events", user="inspector")
    assert status == 200, body
    return list(body["events"])


# ---- the link before and after the code ----


async def test_link_reveals_only_how_to_ask_for_the_code_until_a_grant_comes(api: Api) -> None:
    invite, token = await code_invite(api)
    status, body = await api.call("GET", f"/api/v1/join/{token}")
    assert status == 200, body
    assert body == {"sms_code_required": True, "company": "Nordbuild Oy", "language": "en", "phone_hint": "•••• 67"}

    grant = await granted(api, token, invite["id"])
    status, body = await api.call("GET", f"/api/v1/join/{token}", headers={GRANT: grant})
    assert status == 200, body
    assert set(body) == LINK_FIELDS
    assert (body["invite_id"], body["case_reference"], body["sms_code_required"]) == (invite["id"], "CLM-1", True)


@pytest.mark.parametrize("grant", ["", "garbage", "v1.9999999999.AAAA", "x" * 10_000], ids=["empty", "garbage",
                                                                                            "forged", "10-kib"])
async def test_link_with_a_bad_grant_stays_locked(api: Api, grant: str) -> None:
    _, token = await code_invite(api)
    status, body = await api.call("GET", f"/api/v1/join/{token}", headers={GRANT: grant})
    assert (status, set(body)) == (200, {"sms_code_required", "company", "language", "phone_hint"}), body


async def test_link_of_a_portal_without_codes_is_unchanged(api: Api) -> None:
    invite = await api.invite()
    status, body = await api.call("GET", f"/api/v1/join/{await claimant_token(api, invite['id'])}")
    assert (status, set(body), body["sms_code_required"]) == (200, LINK_FIELDS, False)


# ---- sending and checking the code ----


async def test_code_reaches_the_sms_gateway_and_earns_a_grant(make_api: MakeApi,
                                                              sms_gateway: tuple[str, GatewayState]) -> None:
    url, gateway = sms_gateway
    api = await make_api(sms_delivery="gateway", sms_gateway_url=url, sms_gateway_token=gateway.token)
    invite, token = await code_invite(api)

    status, _, out = await send(api, token)
    assert (status, out) == (202, {"resend_after_s": 60, "expires_in_s": 600, "phone_hint": "•••• 67"})

    async def code_sms() -> dict[str, Any] | None:
        return next((m for m in gateway.received if CODE.search(m["text"])), None)

    sms = await eventually(code_sms, "the code SMS at the gateway")
    assert sms["to"] == "+358401234567"
    assert sms["text"].endswith("It is valid for 10 minutes.")
    match = CODE.search(sms["text"])
    assert match is not None
    code = match.group(1)

    status, _, out = await verify(api, token, code)
    assert status == 200, out
    assert set(out) == {"grant", "expires_at"} and out["grant"].startswith("v1.")

    await settle(api)
    log = await events(api, invite["id"])
    kinds = [e["kind"] for e in log if e["kind"].startswith("sms_code")]
    assert kinds == ["sms_code_sent", "sms_code_verified"]
    assert all(code not in repr(e["data"]) for e in log)


async def test_code_sms_in_the_portal_language_lands_in_the_outbox(api: Api) -> None:
    await require_codes(api)
    status, out = await api.call("PUT", "/api/v1/portals/p-std", user="platform",
                                 json={**PORTALS["p-std"], "sms_code_required": True, "language": "fi"})
    assert status == 200, out
    invite = await api.invite(contact="c-phone")
    token = await claimant_token(api, invite["id"])
    assert (await send(api, token))[0] == 202

    async def finnish() -> str | None:
        return next((e.body for e in await outbox_entries(engine_of(api))
                     if e.invite_id == invite["id"] and "turvakoodisi" in e.body), None)

    body = await eventually(finnish, "the Finnish code SMS")
    assert re.fullmatch(r"claimcam-turvakoodisi on \d{6}\. Se on voimassa 10 minuuttia\.", body), body


async def test_asking_again_within_a_minute_is_429_with_retry_after(api: Api) -> None:
    _, token = await code_invite(api)
    assert (await send(api, token))[0] == 202
    status, headers, body = await send(api, token)
    retry = int(headers["Retry-After"])
    assert 55 <= retry <= 60
    assert_refused(status, body, 429, "code_too_soon", retry_after_s=retry)


async def test_wrong_codes_count_down_then_429_until_a_new_code(api: Api) -> None:
    invite, token = await code_invite(api)
    assert (await send(api, token))[0] == 202
    code = await outbox_code(api, invite["id"])
    for left in (4, 3, 2, 1):
        status, _, body = await verify(api, token, wrong(code))
        assert_refused(status, body, 422, "code_wrong", attempts_left=left)
    status, headers, body = await verify(api, token, wrong(code))
    assert_refused(status, body, 429, "code_attempts_exhausted", retry_after_s=int(headers["Retry-After"]))
    status, _, body = await verify(api, token, code)
    assert (status, body["error"]["code"]) == (429, "code_attempts_exhausted")
    failed = [e for e in await events(api, invite["id"]) if e["kind"] == "sms_code_failed"]
    assert [e["data"]["attempts_left"] for e in failed] == [4, 3, 2, 1, 0]


async def test_verifying_before_any_code_is_422_code_expired(api: Api) -> None:
    _, token = await code_invite(api)
    status, _, body = await verify(api, token, "123456")
    assert_refused(status, body, 422, "code_expired")


@pytest.mark.parametrize(
    "raw",
    [
        '{"code": "12a456"}',
        '{"code": "1234567"}',
        '{"code": "12345"}',
        '{"code": ""}',
        '{"code": 123456}',
        '{"code": null}',
        "{}",
        '{"code": "123456", "extra": 1}',
        '{"code": "\\uff11\\uff12\\uff13\\uff14\\uff15\\uff16"}',
        '{"code": "123456\\n"}',
        "[]",
        "not json",
        '{"code": "' + "1" * 100_000 + '"}',
    ],
    ids=["letters", "too-long", "too-short", "empty", "number", "null", "missing", "extra-field", "fullwidth",
         "newline", "array", "not-json", "100-kb"],
)
async def test_malformed_code_is_422_and_costs_no_attempt(api: Api, raw: str) -> None:
    invite, token = await code_invite(api)
    assert (await send(api, token))[0] == 202
    status, out = await api.call("POST", f"/api/v1/join/{token}/code/verify", data=raw)
    assert (status, out["error"]["code"]) == (422, "invalid_request"), out
    status, _, out = await verify(api, token, await outbox_code(api, invite["id"]))
    assert status == 200, out


async def test_oversized_or_mistyped_bodies_are_refused_cleanly(make_api: MakeApi) -> None:
    api = await make_api(max_body_bytes=2048)
    invite, token = await code_invite(api)
    assert (await send(api, token))[0] == 202
    path = f"/api/v1/join/{token}/code/verify"
    status, out = await api.call("POST", path, data='{"code": "123456"' + " " * 2048 + "}")
    assert (status, out["error"]["code"]) == (413, "payload_too_large")
    status, out = await api.call("POST", path, data='{"code": "123456"}', headers={"Content-Type": "text/plain"})
    assert (status, out["error"]["code"]) == (415, "unsupported_media_type")
    status, _, out = await verify(api, token, await outbox_code(api, invite["id"]))
    assert status == 200, out  # no attempt was spent


async def test_code_endpoints_refuse_unknown_and_closed_links(api: Api) -> None:
    invite, token = await code_invite(api)
    for path in ("/code", "/code/verify"):
        status, out = await api.call("POST", f"/api/v1/join/{'a' * 32}{path}", json={"code": "123456"})
        assert (status, out["error"]["code"]) == (404, "not_found")
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200, out
    for path in ("/code", "/code/verify"):
        status, out = await api.call("POST", f"/api/v1/join/{token}{path}", json={"code": "123456"})
        assert (status, out["error"]["code"]) == (410, "invite_closed")


async def test_code_endpoints_of_a_portal_without_codes_are_409(api: Api) -> None:
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    status, _, out = await send(api, token)
    assert_refused(status, out, 409, "sms_code_not_required")
    status, _, out = await verify(api, token, "123456")
    assert_refused(status, out, 409, "sms_code_not_required")


async def test_inviting_a_contact_without_phone_is_refused_when_codes_are_required(api: Api) -> None:
    await require_codes(api)
    status, out = await api.call("POST", "/api/v1/cases/case-std/invites", user="inspector",
                                 json={"contact_id": "c-email", "method": "email"})
    assert_refused(status, out, 422, "no_phone_number")
    status, out = await api.call("GET", "/api/v1/cases/case-std/invites", user="inspector")
    assert out["invites"] == []


async def test_email_invite_sends_the_code_to_the_contacts_phone(api: Api) -> None:
    invite, token = await code_invite(api, method="email")
    status, _, out = await send(api, token)
    assert (status, out["phone_hint"]) == (202, "•••• 67")
    await outbox_code(api, invite["id"])
    [entry] = [e for e in await outbox_entries(engine_of(api)) if CODE.search(e.body)]
    assert entry.recipient == "+358401234567"


# ---- the grant elsewhere ----


async def test_ice_servers_need_the_grant(api: Api) -> None:
    invite, token = await code_invite(api)
    other, other_token = await code_invite(api)
    path = f"/api/v1/join/{token}/ice-servers"
    status, out = await api.call("GET", path)
    assert_refused(status, out, 403, "sms_code_required")
    status, out = await api.call("GET", path, headers={GRANT: "v1.1.abc"})
    assert_refused(status, out, 403, "sms_code_required")
    other_grant = await granted(api, other_token, other["id"])
    status, out = await api.call("GET", path, headers={GRANT: other_grant})
    assert_refused(status, out, 403, "sms_code_required")
    status, out = await api.call("GET", path, token=api.token("inspector"))
    assert_refused(status, out, 403, "sms_code_required")  # a staff token is no grant
    grant = await granted(api, token, invite["id"])
    status, out = await api.call("GET", path, headers={GRANT: grant})
    assert status == 200 and "ice_servers" in out, out


async def test_call_connect_needs_the_grant(api: Api) -> None:
    invite, token = await code_invite(api)
    url = str(api.client.make_url("/"))
    for auth in ({"token": token}, {"token": token, "grant": None}, {"token": token, "grant": "v1.2.forged"}):
        peer = Peer("/call")
        with pytest.raises(Refused) as refused:
            await peer.connect(url, auth)
        assert refused.value.code == "sms_code_required" and "security code" in str(refused.value)
        await peer.close()
    peer = Peer("/call")
    with pytest.raises(Refused) as too_long:
        await peer.connect(url, {"token": token, "grant": "x" * 300})
    assert too_long.value.code == "invalid_payload"
    await peer.close()

    grant = await granted(api, token, invite["id"])
    peer = Peer("/call")
    try:
        await peer.connect(url, {"token": token, "grant": grant})
        ack = await peer.call("join")
        assert ack["ok"] and ack["you"]["role"] == "claimant", ack
    finally:
        await peer.close()


async def test_openapi_documents_the_code_step(api: Api) -> None:
    _, doc = await api.call("GET", "/api/v1/openapi.json")
    send_op = doc["paths"]["/api/v1/join/{token}/code"]["post"]
    verify_op = doc["paths"]["/api/v1/join/{token}/code/verify"]["post"]
    assert {"202", "404", "409", "410", "422", "429"} <= set(send_op["responses"])
    assert {"200", "404", "410", "413", "422", "429"} <= set(verify_op["responses"])
    ice = doc["paths"]["/api/v1/join/{token}/ice-servers"]["get"]
    assert "403" in ice["responses"] and any(p["name"] == GRANT and p["in"] == "header" for p in ice["parameters"])
    assert {"JoinInfo", "LockedLinkInfo", "CodeIn", "GrantOut", "CodeSentOut"} <= set(doc["components"]["schemas"])


def test_code_events_have_texts_in_both_catalogues() -> None:
    for language in ("en", "fi"):
        catalogue = i18n.catalogue(language)
        assert all(f"event.{k}" in catalogue for k in ("sms_code_sent", "sms_code_failed", "sms_code_verified"))
