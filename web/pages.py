"""Server-rendered pages of the foundation: the index and the demo outbox."""

from __future__ import annotations

from html import escape

from aiohttp import web

from rooms.delivery.channels import outbox_entries
from web import demo
from web.keys import engine_key, settings_key

_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}"
    "table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ccc;padding:.4rem;text-align:left;"
    "vertical-align:top}a{color:#0b57d0}pre{white-space:pre-wrap;margin:0}"
)


def _page(title: str, body: str) -> web.Response:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )
    return web.Response(text=html, content_type="text/html")


async def index(request: web.Request) -> web.StreamResponse:
    body = '<p>Remote video inspections for insurance claims.</p><ul>'
    body += '<li><a href="/api/v1/openapi.json">API (OpenAPI document)</a></li>'
    if request.app[settings_key].demo:
        body += (
            f'<li><a href="/cases/{demo.CASE.id}/calls">Calls management of the demo case</a></li>'
            '<li><a href="/dev/outbox">Outbox: messages sent to claimants</a></li>'
            '<li><a href="/dev/demo">Demo users and their tokens (JSON)</a></li>'
        )
    body += "</ul>"
    return _page("claimcam", body)


async def outbox(request: web.Request) -> web.StreamResponse:
    rows = "".join(
        f"<tr><td>{escape(e.sent_at.strftime('%Y-%m-%d %H:%M:%S'))}</td><td>{escape(str(e.method).upper())}</td>"
        f"<td>{escape(e.recipient)}</td><td><pre>{escape(e.body)}</pre></td>"
        f'<td><a href="{escape(e.link)}">Open link</a></td></tr>'
        for e in await outbox_entries(request.app[engine_key])
    )
    table = (
        "<table><thead><tr><th>Sent</th><th>Method</th><th>To</th><th>Message</th><th>Link</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=5>No messages yet.</td></tr>'}</tbody></table>"
    )
    return _page("Outbox", table)
