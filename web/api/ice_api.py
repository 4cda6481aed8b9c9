"""ICE servers for the browsers: the TURN servers with short-lived credentials of the caller.

Staff authenticate with their bearer JWT; the claimant's link token is his credential, so a closed
or expired link gets no TURN credentials either, nor does a link whose portal asks for the SMS
security code until the grant of a correct code comes with it. Without TURN the list is empty: browsers then use
host candidates only, and no public STUN server is ever handed out.
"""

from __future__ import annotations

from aiohttp import web

from media.ice import browser_ice_servers
from web.api.endpoint import Endpoint, json_out, principal
from web.api.invites_api import GRANT_HEADERS, grant_of
from web.keys import clock_key, ice_key, invites_key
from web.schemas import IceServerOut, IceServers


def _answer(request: web.Request, user: str) -> web.Response:
    ice = request.app[ice_key]
    now = request.app[clock_key]().timestamp()
    servers = [IceServerOut.model_validate(s) for s in browser_ice_servers(ice, user, now)]
    return json_out(IceServers(ice_servers=servers, ttl_s=ice.turn_ttl_s))


async def staff_ice_servers(request: web.Request) -> web.StreamResponse:
    return _answer(request, principal(request).user_id)


async def claimant_ice_servers(request: web.Request) -> web.StreamResponse:
    invite = await request.app[invites_key].resolve_claimant(request.match_info["token"], grant_of(request))
    return _answer(request, f"claimant-{invite.id}")


ENDPOINTS = [
    Endpoint("GET", "/ice-servers", staff_ice_servers,
             "ICE servers (TURN with short-lived credentials) for a staff member's browser", "ice",
             auth="signed_in", response=IceServers),
    Endpoint("GET", "/join/{token}/ice-servers", claimant_ice_servers,
             "ICE servers (TURN with short-lived credentials) for the claimant's browser", "claimant",
             auth="link", response=IceServers, headers=GRANT_HEADERS,
             errors=((403, "The portal asks for the SMS security code and no valid grant came"),)),
]
