"""The access log names routes without the credentials in them."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest
from aiohttp import web

from tests.support.ports import free_port
from web.access_log import RedactingAccessLogger, redact

TOKEN = "M1E-Thv7JmDbG5Zt83XW4vIqUKMYRRmC"


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (f"/join/{TOKEN}", "/join/***"),
        (f"/api/v1/join/{TOKEN}/ice-servers", "/api/v1/join/***/ice-servers"),
        (f"/api/v1/join/{TOKEN}/code/verify", "/api/v1/join/***/code/verify"),
        ("/api/v1/media/m-1/content?expires=18&signature=abcdef", "/api/v1/media/m-1/content?expires=18&signature=***"),
        ("/cases/case-std/calls", "/cases/case-std/calls"),
        ("/socket.io/?EIO=4&transport=websocket", "/socket.io/?EIO=4&transport=websocket"),
    ],
)
def test_secrets_in_paths_and_queries_are_masked(path: str, shown: str) -> None:
    assert redact(path) == shown


async def test_a_served_request_logs_its_route_but_not_its_token(caplog: pytest.LogCaptureFixture) -> None:
    async def ok(_: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/join/{token}", ok)
    # As `claimcam serve` runs it (web/cli.py passes the same class to run_app).
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as http:
            with caplog.at_level(logging.INFO, logger="aiohttp.access"):
                async with http.get(f"http://127.0.0.1:{port}/join/{TOKEN}?grant=v1.9.secret") as r:
                    assert r.status == 200
                await asyncio.sleep(0.05)  # the access line is written after the response
    finally:
        await runner.cleanup()
    lines = [r.getMessage() for r in caplog.records if r.name == "aiohttp.access"]
    assert any('"GET /join/***?grant=*** HTTP/1.1" 200' in line for line in lines), lines
    assert not any(TOKEN in line or "secret" in line for line in lines)
