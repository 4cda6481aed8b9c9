"""A small local HTTP SMS gateway: the one part mocked, since no real SMS provider runs here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class GatewayState:
    token: str = "gw-token"
    received: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0  # answer that many requests with 503


def gateway_app(state: GatewayState) -> web.Application:
    async def send(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {state.token}":
            return web.json_response({"error": "unauthorised"}, status=401)
        if state.fail_next > 0:
            state.fail_next -= 1
            return web.json_response({"error": "upstream unavailable"}, status=503)
        body = json.loads(await request.read())
        state.received.append(body)
        return web.json_response({"id": len(state.received), "status": "queued"}, status=202)

    app = web.Application()
    app.router.add_post("/messages", send)
    return app


async def start_gateway(state: GatewayState) -> TestServer:
    server = TestServer(gateway_app(state), host="127.0.0.1")
    await server.start_server()
    return server
