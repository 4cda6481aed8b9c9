"""Staff JWTs on the REST API: every bad token is a 401 in the one error shape, never a 500."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import MakeApi
from tests.support.api_tools import assert_error, claimant_token, open_invite, request
from tests.support.world import Api, Reply

STAFF_PATH = "/api/v1/cases/case-std/invites"
PORTAL = {"name": "Token test portal", "insurer_company": "Aurora Insurance"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def handmade_token(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A JWT built byte by byte, for what PyJWT refuses to produce (alg none, PEM as HMAC key)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    if key is None:
        return signing_input + "."
    mac = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def claims(sub: str = "inspector", ttl_s: int = 3600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl_s, **extra}


@functools.cache
def rsa_key(n: int) -> rsa.RSAPrivateKey:
    del n  # only tells the cached keys apart
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def rs256(key: rsa.RSAPrivateKey, body: dict[str, Any]) -> str:
    return jwt.encode(body, private_pem(key), algorithm="RS256")


def assert_unauthorized(reply: Reply, code: str | None = None) -> None:
    assert_error(reply.status, reply.body, 401, code)
    assert reply.headers.get("WWW-Authenticate", "").startswith("Bearer"), reply.headers


async def staff_get(api: Api, authorization: str | None) -> Reply:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await request(api, "GET", STAFF_PATH, headers=headers)


# ---- HS256 (the default) ----


async def test_valid_token_is_accepted(api: Api) -> None:
    reply = await staff_get(api, f"Bearer {api.token('inspector')}")
    assert reply.status == 200, reply.body
    assert reply.body["case_id"] == "case-std"


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    reply = await staff_get(api, f"bearer {api.token('inspector')}")
    assert reply.status == 200, reply.body


async def test_missing_authorization_header_is_401_missing_token(api: Api) -> None:
    assert_unauthorized(await staff_get(api, None), "missing_token")


async def test_empty_authorization_header_is_401_missing_token(api: Api) -> None:
    assert_unauthorized(await staff_get(api, ""), "missing_token")


async def test_basic_scheme_is_401(api: Api) -> None:
    reply = await staff_get(api, "Basic " + base64.b64encode(b"inspector:secret").decode())
    assert_unauthorized(reply, "invalid_token")


async def test_token_without_scheme_is_401(api: Api) -> None:
    assert_unauthorized(await staff_get(api, api.token("inspector")), "invalid_token")


async def test_bearer_without_token_is_401(api: Api) -> None:
    assert_unauthorized(await staff_get(api, "Bearer    "), "invalid_token")


async def test_garbage_token_is_401_invalid_token(api: Api) -> None:
    assert_unauthorized(await staff_get(api, "Bearer not.a.jwt"), "invalid_token")


async def test_token_signed_with_another_secret_is_401(api: Api) -> None:
    forged = jwt.encode(claims(), "some-other-secret-of-32-bytes-or-more!", algorithm="HS256")
    assert_unauthorized(await staff_get(api, f"Bearer {forged}"), "invalid_token")


async def test_token_with_tampered_claims_is_401(api: Api) -> None:
    header, _, signature = api.token("viewer").split(".")
    tampered = f"{header}.{b64url(json.dumps(claims('handler')).encode())}.{signature}"
    assert_unauthorized(await staff_get(api, f"Bearer {tampered}"), "invalid_token")


async def test_expired_token_is_401_token_expired(api: Api) -> None:
    expired = api.token("inspector", ttl_s=-120)
    assert_unauthorized(await staff_get(api, f"Bearer {expired}"), "token_expired")


async def test_token_expired_within_the_leeway_is_accepted(api: Api) -> None:
    just_expired = api.token("inspector", ttl_s=-5)
    reply = await staff_get(api, f"Bearer {just_expired}")
    assert reply.status == 200, reply.body


async def test_alg_none_token_is_401(api: Api) -> None:
    unsigned = handmade_token({"alg": "none", "typ": "JWT"}, claims(), None)
    assert_unauthorized(await staff_get(api, f"Bearer {unsigned}"), "invalid_token")


async def test_alg_none_token_with_a_valid_signature_part_is_401(api: Api) -> None:
    # The HS256 signature of the same bytes: only the header claims "none".
    token = handmade_token(
        {"alg": "none", "typ": "JWT"}, claims(), api.settings.jwt_secret.encode()
    )
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_token_without_exp_is_401(api: Api) -> None:
    body = claims()
    del body["exp"]
    token = jwt.encode(body, api.settings.jwt_secret, algorithm="HS256")
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_token_without_sub_is_401(api: Api) -> None:
    body = claims()
    del body["sub"]
    token = jwt.encode(body, api.settings.jwt_secret, algorithm="HS256")
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_token_with_empty_sub_is_401(api: Api) -> None:
    token = jwt.encode(claims(sub=""), api.settings.jwt_secret, algorithm="HS256")
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_token_with_non_string_sub_is_401(api: Api) -> None:
    token = handmade_token(
        {"alg": "HS256", "typ": "JWT"}, {**claims(), "sub": 42}, api.settings.jwt_secret.encode()
    )
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_token_with_overlong_sub_is_401(api: Api) -> None:
    token = jwt.encode(claims(sub="u" * 65), api.settings.jwt_secret, algorithm="HS256")
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_token_of_8000_chars_is_401(api: Api) -> None:
    assert_unauthorized(await staff_get(api, "Bearer " + "a" * 8000), "invalid_token")


async def test_token_over_8_kib_is_401_not_a_server_error(api: Api) -> None:
    reply = await staff_get(api, "Bearer " + "a" * 9000)
    assert_unauthorized(reply, "invalid_token")


async def test_validly_signed_token_over_8_kib_is_401(api: Api) -> None:
    token = jwt.encode(claims(pad="p" * 9000), api.settings.jwt_secret, algorithm="HS256")
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_authorization_header_beyond_the_server_limit_is_a_client_error(api: Api) -> None:
    reply = await staff_get(api, "Bearer " + "a" * 40_000)
    assert 400 <= reply.status < 500, reply.status
    assert (await api.call("GET", "/healthz"))[0] == 200


async def test_rs256_token_is_401_when_the_server_uses_hs256(api: Api) -> None:
    token = rs256(rsa_key(1), claims())
    assert_unauthorized(await staff_get(api, f"Bearer {token}"), "invalid_token")


async def test_claimant_link_token_as_bearer_is_401(api: Api) -> None:
    invite = await open_invite(api)
    link_token = await claimant_token(api, invite["id"])
    assert_unauthorized(await staff_get(api, f"Bearer {link_token}"), "invalid_token")


async def test_unauthorized_request_changes_nothing(api: Api) -> None:
    before = await api.call("GET", STAFF_PATH, user="inspector")
    reply = await request(
        api, "POST", STAFF_PATH, token="garbage", json={"contact_id": "c-both", "method": "sms"}
    )
    assert_unauthorized(reply, "invalid_token")
    assert await api.call("GET", STAFF_PATH, user="inspector") == before


# ---- platform scope ----


async def test_platform_endpoint_without_platform_scope_is_403(api: Api) -> None:
    reply = await request(api, "PUT", "/api/v1/portals/x", token=api.token("handler"), json=PORTAL)
    assert_error(reply.status, reply.body, 403, "forbidden")


async def test_platform_endpoint_with_a_lookalike_scope_is_403(api: Api) -> None:
    token = api.token("handler", scope="platformx admin")
    reply = await request(api, "PUT", "/api/v1/portals/x", token=token, json=PORTAL)
    assert_error(reply.status, reply.body, 403, "forbidden")


async def test_platform_scope_among_other_scopes_is_accepted(api: Api) -> None:
    token = api.token("claims-platform", scope="read platform write")
    reply = await request(api, "PUT", "/api/v1/portals/x", token=token, json=PORTAL)
    assert reply.status == 200, reply.body


async def test_platform_endpoint_without_token_is_401(api: Api) -> None:
    assert_unauthorized(
        await request(api, "PUT", "/api/v1/portals/x", json=PORTAL), "missing_token"
    )


async def test_platform_endpoint_with_expired_platform_token_is_401(api: Api) -> None:
    token = api.token("claims-platform", scope="platform", ttl_s=-120)
    reply = await request(api, "PUT", "/api/v1/portals/x", token=token, json=PORTAL)
    assert_unauthorized(reply, "token_expired")


async def test_platform_endpoint_refuses_claimant_link_token(api: Api) -> None:
    invite = await open_invite(api)
    link_token = await claimant_token(api, invite["id"])
    reply = await request(api, "PUT", "/api/v1/portals/x", token=link_token, json=PORTAL)
    assert_unauthorized(reply, "invalid_token")


# ---- RS256 ----


async def test_rs256_token_signed_with_the_private_key_is_accepted(make_api: MakeApi) -> None:
    key = rsa_key(1)
    api = await make_api(jwt_public_key=public_pem(key), seed=False)
    token = rs256(key, claims(sub="claims-platform", scope="platform"))
    reply = await request(api, "PUT", "/api/v1/portals/p-rs", token=token, json=PORTAL)
    assert (reply.status, reply.body) == (200, {"id": "p-rs"})


async def test_rs256_user_token_reaches_the_handler(make_api: MakeApi) -> None:
    key = rsa_key(1)
    api = await make_api(jwt_public_key=public_pem(key), seed=False)
    reply = await request(api, "GET", "/api/v1/cases/nope", token=rs256(key, claims()))
    assert_error(reply.status, reply.body, 404, "not_found")


async def test_rs256_mode_refuses_hs256_signed_with_the_public_key(make_api: MakeApi) -> None:
    key = rsa_key(1)
    pem = public_pem(key)
    api = await make_api(jwt_public_key=pem, seed=False)
    confused = handmade_token(
        {"alg": "HS256", "typ": "JWT"},
        claims(sub="claims-platform", scope="platform"),
        pem.encode(),
    )
    reply = await request(api, "PUT", "/api/v1/portals/p-rs", token=confused, json=PORTAL)
    assert_unauthorized(reply, "invalid_token")


async def test_rs256_mode_refuses_hs256_signed_with_the_jwt_secret(make_api: MakeApi) -> None:
    api = await make_api(jwt_public_key=public_pem(rsa_key(1)), seed=False)
    reply = await request(
        api,
        "PUT",
        "/api/v1/portals/p-rs",
        token=api.token("claims-platform", scope="platform"),
        json=PORTAL,
    )
    assert_unauthorized(reply, "invalid_token")


async def test_rs256_mode_refuses_token_signed_by_another_key(make_api: MakeApi) -> None:
    api = await make_api(jwt_public_key=public_pem(rsa_key(1)), seed=False)
    token = rs256(rsa_key(2), claims(sub="claims-platform", scope="platform"))
    reply = await request(api, "PUT", "/api/v1/portals/p-rs", token=token, json=PORTAL)
    assert_unauthorized(reply, "invalid_token")


async def test_rs256_mode_refuses_alg_none(make_api: MakeApi) -> None:
    api = await make_api(jwt_public_key=public_pem(rsa_key(1)), seed=False)
    token = handmade_token(
        {"alg": "none", "typ": "JWT"}, claims(sub="claims-platform", scope="platform"), None
    )
    reply = await request(api, "PUT", "/api/v1/portals/p-rs", token=token, json=PORTAL)
    assert_unauthorized(reply, "invalid_token")


async def test_rs256_mode_reports_expired_tokens(make_api: MakeApi) -> None:
    key = rsa_key(1)
    api = await make_api(jwt_public_key=public_pem(key), seed=False)
    reply = await request(api, "GET", "/api/v1/cases/nope", token=rs256(key, claims(ttl_s=-120)))
    assert_unauthorized(reply, "token_expired")


# ---- audience and issuer ----

AUD = "claimcam-api"
ISS = "https://platform.example"


async def audience_api(make_api: MakeApi) -> Api:
    return await make_api(jwt_audience=AUD, jwt_issuer=ISS, seed=False)


async def get_unknown_case(api: Api, body: dict[str, Any]) -> Reply:
    token = jwt.encode(body, api.settings.jwt_secret, algorithm="HS256")
    return await request(api, "GET", "/api/v1/cases/nope", token=token)


async def test_token_with_configured_audience_and_issuer_is_accepted(make_api: MakeApi) -> None:
    api = await audience_api(make_api)
    reply = await get_unknown_case(api, claims(aud=AUD, iss=ISS))
    assert_error(reply.status, reply.body, 404, "not_found")


async def test_token_with_one_of_several_audiences_is_accepted(make_api: MakeApi) -> None:
    api = await audience_api(make_api)
    reply = await get_unknown_case(api, claims(aud=["other", AUD], iss=ISS))
    assert_error(reply.status, reply.body, 404, "not_found")


async def test_token_with_wrong_audience_is_401(make_api: MakeApi) -> None:
    api = await audience_api(make_api)
    assert_unauthorized(
        await get_unknown_case(api, claims(aud="other-api", iss=ISS)), "invalid_token"
    )


async def test_token_without_audience_is_401_when_one_is_required(make_api: MakeApi) -> None:
    api = await audience_api(make_api)
    assert_unauthorized(await get_unknown_case(api, claims(iss=ISS)), "invalid_token")


async def test_token_with_wrong_issuer_is_401(make_api: MakeApi) -> None:
    api = await audience_api(make_api)
    reply = await get_unknown_case(api, claims(aud=AUD, iss="https://evil.example"))
    assert_unauthorized(reply, "invalid_token")


async def test_token_without_issuer_is_401_when_one_is_required(make_api: MakeApi) -> None:
    api = await audience_api(make_api)
    assert_unauthorized(await get_unknown_case(api, claims(aud=AUD)), "invalid_token")
