"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import sqlalchemy as sa
from aiohttp import web

from web.keys import calls_key, engine_key, hub_key, metrics_key, object_store_key


async def healthz(_: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.StreamResponse:
    checks: dict[str, bool] = {}
    try:
        async with request.app[engine_key].connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        checks["object_store"] = await request.app[object_store_key].ready()
    except Exception:
        checks["object_store"] = False
    ok = all(checks.values())
    # Reported, not required: while Redis is down every node degrades alike, and taking them all
    # out of the load balancer would turn a degraded service into none.
    checks["signalling"] = request.app[hub_key].healthy
    body = {"status": "ready" if ok else "not_ready", "checks": checks, "node": request.app[calls_key].node_id}
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(body=request.app[metrics_key].render(), content_type="text/plain", charset="utf-8")
