"""Demo-mode helpers: the outbox of messages that would have been sent, and the demo users."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from rooms.delivery.channels import outbox_entries
from web import demo
from web.api.endpoint import Endpoint, json_out
from web.keys import engine_key, settings_key
from web.schemas import Outbox, OutboxMessage


async def outbox(request: web.Request) -> web.StreamResponse:
    entries = await outbox_entries(request.app[engine_key])
    return json_out(
        Outbox(
            messages=[
                OutboxMessage(
                    id=e.id, invite_id=e.invite_id, method=e.method, recipient=e.recipient,
                    subject=e.subject, body=e.body, link=e.link, sent_at=e.sent_at,
                )
                for e in entries
            ]
        )
    )


async def demo_info(request: web.Request) -> web.StreamResponse:
    settings = request.app[settings_key]
    body: dict[str, Any] = {
        "case_id": demo.CASE.id,
        "calls_url": f"{settings.public_url}/cases/{demo.CASE.id}/calls",
        "contacts": [
            {"id": c.id, "name": c.name, "phone": c.phone, "email": c.email} for c in demo.CASE.contacts
        ],
        "tasks": [{"id": t.id, "name": t.name} for t in demo.CASE.tasks],
        "users": [dataclasses.asdict(u) for u in demo.demo_users(settings.jwt_secret)],
        "platform_token": demo.platform_token(settings.jwt_secret),
    }
    return web.json_response(body)


ENDPOINTS = [
    Endpoint("GET", "/dev/outbox", outbox, "Messages the dev outbox kept instead of sending (demo mode)", "dev",
             auth="none", response=Outbox, demo_only=True),
]
