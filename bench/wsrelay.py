"""A bare aiohttp websocket relay: the limit the Socket.IO hub is measured against.

`GET /ws/{room}` upgrades to a websocket that joins the room; every text message is forwarded as it
is to the room's other members. No parsing, validation, rate limits, acknowledgements or logging:
whatever the hub costs beyond this is the price of its protocol and its checks.

Run it as its own process: `python -m bench.wsrelay --port 9000`.
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web

MAX_MESSAGE_BYTES = 64 * 1024  # the hub's limit too

Room = set[web.WebSocketResponse]
rooms_key = web.AppKey("rooms", dict[str, Room])


async def relay(request: web.Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES)
    await ws.prepare(request)
    rooms = request.app[rooms_key]
    name = request.match_info["room"]
    members = rooms.setdefault(name, set())
    members.add(ws)
    try:
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                for other in list(members):
                    if other is not ws and not other.closed:
                        await other.send_str(msg.data)
    finally:
        members.discard(ws)
        if not members:
            rooms.pop(name, None)
    return ws


async def healthz(_: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


def create_app() -> web.Application:
    app = web.Application()
    app[rooms_key] = {}
    app.router.add_get("/ws/{room}", relay)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wsrelay", description="raw websocket relay, one room per call")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    web.run_app(create_app(), host=args.host, port=args.port, shutdown_timeout=2, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
