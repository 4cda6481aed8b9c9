"""Security headers everywhere, no cookies, and no cross-origin access unless configured."""

from __future__ import annotations

import pytest

from tests.support.world import Api

EVIL = "http://evil.example"


@pytest.mark.parametrize(
    ("path", "user"),
    [
        ("/", None),
        ("/cases/case-std/calls", None),
        ("/calls/inv-1", None),
        ("/join/not-a-token", None),
        ("/static/js/call.js", None),
        ("/static/nope.js", None),  # aiohttp's own 404
        ("/api/v1/cases/case-std/invites", "inspector"),
        ("/api/v1/cases/case-std/invites", None),  # 401
        ("/api/v1/join/not-a-token", None),  # 404
        ("/healthz", None),
    ],
)
async def test_every_response_carries_the_headers(api: Api, path: str, user: str | None) -> None:
    reply = await api.request("GET", path, user=user)
    h = reply.headers
    assert h["X-Content-Type-Options"] == "nosniff", path
    assert h["X-Frame-Options"] == "DENY"
    assert h["Referrer-Policy"] == "same-origin"
    assert "camera=(self)" in h["Permissions-Policy"] and "geolocation=()" in h["Permissions-Policy"]
    assert "Set-Cookie" not in h
    assert "Access-Control-Allow-Origin" not in h
    if path.startswith("/api/"):
        assert h["Cache-Control"] == "no-store"


async def test_pages_forbid_framing_and_inline_code_in_their_policy(api: Api) -> None:
    for path in ("/", "/cases/case-std/calls", "/calls/inv-1", "/join/x"):
        csp = (await api.request("GET", path)).headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp


async def test_other_origins_get_no_cors_grant(api: Api) -> None:
    reply = await api.request("GET", "/api/v1/cases/case-std/invites", user="inspector", headers={"Origin": EVIL})
    assert reply.status == 200 and "Access-Control-Allow-Origin" not in reply.headers
    preflight = await api.request("OPTIONS", "/api/v1/cases/case-std/invites", headers={
        "Origin": EVIL, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert "Access-Control-Allow-Origin" not in preflight.headers


async def test_socket_io_refuses_other_origins_and_sets_no_cookie(api: Api) -> None:
    handshake = "/socket.io/?EIO=4&transport=polling"
    foreign = await api.request("GET", handshake, headers={"Origin": EVIL})
    assert foreign.status == 400 and "Access-Control-Allow-Origin" not in foreign.headers
    own = await api.request("GET", handshake)
    assert own.status == 200 and "Set-Cookie" not in own.headers
