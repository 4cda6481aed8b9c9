"""Security headers on every response, pages, API, static files and errors alike.

Pages add their own Content-Security-Policy (web/pages.py); these headers hold everywhere: no
sniffing of types, no framing (clickjacking of the consent dialog or the calls list), referrers only
to this origin (a claimant's page has its link token in the address), the camera and microphone
only for this origin's own pages, and API answers kept out of caches since they carry personal data.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from web.api.views import API
from web.errors import error_response
from web.keys import link_guard_key

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin-allow-popups",
}


def secure(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # a websocket or a stream already sent its headers
        return
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.path.startswith(f"{API}/") and "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as e:  # aiohttp's own 404/405 answers are responses too
        secure(request, e)
        raise
    secure(request, response)
    return response


LINK_API = f"{API}/join/"


@web.middleware
async def link_guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown link tokens cost the client: after too many, its link requests get 429 for a while."""
    if not request.path.startswith(LINK_API):
        return await handler(request)
    guard = request.app[link_guard_key]
    client = request.remote or ""
    if guard.blocked(client):
        wait = guard.retry_after_s(client)
        resp = error_response(429, "too_many_attempts", "too many unknown links from this address; wait a minute",
                              retry_after_s=wait)
        resp.headers["Retry-After"] = str(wait)
        return resp
    response = await handler(request)
    if response.status == 404:
        guard.failed(client)
    return response
