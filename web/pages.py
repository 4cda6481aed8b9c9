"""The HTML pages: server-rendered index, demo outbox and demo login, and the calls-management shell.

Text comes from the catalogues in web/static/i18n (see web/i18n.py); everything interpolated is
escaped. Pages carry no inline script, style or event handler, so their Content-Security-Policy
allows scripts and styles from this origin only. The calls-management page is a shell: its
script reads the staff token, fetches the data from the API and renders it.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from recorder.object_store import parse_endpoint
from rooms.delivery.channels import outbox_entries
from web import demo, i18n
from web.keys import engine_key, settings_key
from web.settings import Settings
from web.static_files import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
SOCKET_IO_CLIENT = Path(__file__).parent / "node_modules" / "socket.io-client" / "dist" / "socket.io.min.js"


def content_security_policy(settings: Settings) -> str:
    """Scripts and styles from this origin only; pictures and videos may come from the S3 server."""
    media = "'self' blob: data:"
    if settings.object_store == "s3" and settings.s3_endpoint:
        endpoint = parse_endpoint(settings.s3_endpoint, settings.s3_secure)
        media += f" {'https' if endpoint.secure else 'http'}://{endpoint.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src {media}; media-src {media}; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )


def _html(request: web.Request, body: str, *, status: int = 200) -> web.Response:
    resp = web.Response(text=body, status=status, content_type="text/html")
    # nosniff, framing and referrer headers come from web/security.py, for every response alike.
    resp.headers["Content-Security-Policy"] = content_security_policy(request.app[settings_key])
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _language(request: web.Request) -> str:
    return i18n.negotiate(request.headers.get("Accept-Language"))


def _document(
    lang: str, title: str, main: str, *, scripts: tuple[str, ...] = (), modules: tuple[str, ...] = (),
    body_attrs: str = "",
) -> str:
    """The common layout. Classic `scripts` are deferred, so they run before the `modules`, in order."""
    t = i18n.translate
    script_tags = "".join(f'<script src="{escape(s)}" defer></script>' for s in scripts)
    script_tags += "".join(f'<script type="module" src="{escape(s)}"></script>' for s in modules)
    return (
        f'<!doctype html><html lang="{escape(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title>"
        '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/static/css/app.css">'
        f"{script_tags}</head><body{body_attrs}>"
        f'<a class="skip-link" href="#main" data-i18n="common.skip_to_content">'
        f'{escape(t(lang, "common.skip_to_content"))}</a>'
        '<header class="topbar"><a class="brand" href="/">'
        '<span class="brand-mark" aria-hidden="true"></span>'
        f'<span class="brand-name">{escape(t(lang, "app.name"))}</span></a>'
        f'<span class="brand-tagline" data-i18n="app.tagline">{escape(t(lang, "app.tagline"))}</span></header>'
        f'<main id="main" class="page" tabindex="-1">{main}</main></body></html>'
    )


async def index(request: web.Request) -> web.StreamResponse:
    lang = _language(request)
    t = i18n.translate
    links = [("/api/v1/openapi.json", t(lang, "index.api"), t(lang, "index.api_hint"))]
    if request.app[settings_key].demo:
        case = demo.CASE
        links = [
            (f"/cases/{quote(case.id)}/calls", t(lang, "index.calls"),
             t(lang, "index.calls_hint", reference=case.reference, title=case.title)),
            ("/dev/login", t(lang, "index.login"), t(lang, "index.login_hint")),
            ("/dev/outbox", t(lang, "index.outbox"), t(lang, "index.outbox_hint")),
            ("/dev/demo", t(lang, "index.demo_json"), t(lang, "index.demo_json_hint")),
            *links,
        ]
    cards = "".join(
        f'<li class="link-card"><a href="{escape(href)}">{escape(label)}</a><p>{escape(hint)}</p></li>'
        for href, label, hint in links
    )
    main = (
        f'<h1>{escape(t(lang, "app.name"))}</h1><p class="lead">{escape(t(lang, "index.intro"))}</p>'
        f'<ul class="link-cards">{cards}</ul>'
    )
    return _html(request, _document(lang, t(lang, "app.name"), main))


async def outbox(request: web.Request) -> web.StreamResponse:
    lang = _language(request)
    t = i18n.translate
    entries = await outbox_entries(request.app[engine_key])
    headers = ("outbox.sent", "outbox.method", "outbox.to", "outbox.message", "outbox.link")
    head = "".join(f'<th scope="col">{escape(t(lang, h))}</th>' for h in headers)

    def cell(header: str, content: str) -> str:
        # One wrapper per cell: on phones each row is a card of label/content pairs.
        return f'<td data-label="{escape(t(lang, header))}"><div class="cell-body">{content}</div></td>'

    rows = "".join(
        "<tr>"
        + cell(headers[0], f'<time datetime="{escape(e.sent_at.isoformat())}">'
               f'{escape(e.sent_at.strftime("%Y-%m-%d %H:%M:%S"))}</time>')
        + cell(headers[1], f'<span class="tag">{escape(t(lang, "method." + str(e.method)))}</span>')
        + cell(headers[2], escape(e.recipient))
        + cell(headers[3], (f'<p class="subject">{escape(e.subject)}</p>' if e.subject else "")
               + f'<pre class="message">{escape(e.body)}</pre>')
        + cell(headers[4], f'<a class="button button-secondary" href="{escape(e.link)}" target="_blank" '
               f'rel="noopener">{escape(t(lang, "outbox.open_link"))}</a>')
        + "</tr>"
        for e in entries
    )
    if rows:
        content = f'<div class="table-wrap"><table class="cards-on-mobile"><thead><tr>{head}</tr></thead>' \
                  f"<tbody>{rows}</tbody></table></div>"
    else:
        content = f'<p class="empty">{escape(t(lang, "outbox.empty"))}</p>'
    main = (
        f'<h1>{escape(t(lang, "outbox.title"))}</h1><p class="lead">{escape(t(lang, "outbox.intro"))}</p>{content}'
    )
    return _html(request, _document(lang, t(lang, "outbox.title"), main))


async def login(request: web.Request) -> web.StreamResponse:
    """Demo mode: pick a demo user. The link hands the token over exactly as the platform does."""
    lang = _language(request)
    t = i18n.translate
    settings = request.app[settings_key]
    calls = f"/cases/{quote(demo.CASE.id)}/calls"
    items = "".join(
        '<li class="user-card">'
        f'<div><p class="user-name">{escape(u.name)}</p>'
        f'<p class="user-meta">{escape(t(lang, "role." + u.role))}</p>'
        f'<p class="user-meta"><span class="tag tag-{escape(u.access)}">{escape(t(lang, "access." + u.access))}'
        "</span></p></div>"
        f'<a class="button button-primary" href="{escape(calls)}#token={quote(u.token)}">'
        f'{escape(t(lang, "login.as", name=u.name))}</a></li>'
        for u in demo.demo_users(settings.jwt_secret)
    )
    main = (
        f'<h1>{escape(t(lang, "login.title"))}</h1><p class="lead">{escape(t(lang, "login.intro"))}</p>'
        f'<ul class="user-cards">{items}</ul>'
    )
    return _html(request, _document(lang, t(lang, "login.title"), main))


def _shell(request: web.Request, title_key: str, module: str, body_attrs: str) -> web.Response:
    """A page its ES module builds: "Loading…" until it runs, a notice when scripts are off."""
    lang = _language(request)
    t = i18n.translate
    main = (
        f'<p class="loading" id="boot-status" role="status">{escape(t(lang, "common.loading"))}</p>'
        f'<noscript><p class="notice notice-error">{escape(t(lang, "common.needs_javascript"))}</p></noscript>'
    )
    document = _document(
        lang, t(lang, title_key), main,
        scripts=("/static/vendor/socket.io.min.js",), modules=(module,), body_attrs=body_attrs,
    )
    return _html(request, document)


async def calls(request: web.Request) -> web.StreamResponse:
    """The calls-management shell; the case's data comes from the API with the staff token."""
    case_id = request.match_info["case_id"]
    demo_flag = "true" if request.app[settings_key].demo else "false"
    return _shell(request, "calls.heading", "/static/js/calls.js",
                  f' data-page="calls" data-case-id="{escape(case_id)}" data-demo="{demo_flag}"')


async def join(request: web.Request) -> web.StreamResponse:
    """The claimant's page: a shell; the script reads the link token from the path and asks the API."""
    return _shell(request, "join.title", "/static/js/join.js", ' data-page="join" class="fill-body"')


async def call_tab(request: web.Request) -> web.StreamResponse:
    """The inspector's call tab: a shell; the script reads the staff token and the invite from the API."""
    invite_id = request.match_info["invite_id"]
    return _shell(request, "call.title", "/static/js/call.js",
                  f' data-page="call" data-invite-id="{escape(invite_id)}" class="fill-body"')


def add_routes(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/cases/{case_id}/calls", calls)
    app.router.add_get("/join/{token}", join)
    app.router.add_get("/calls/{invite_id}", call_tab)
    # The Socket.IO browser client comes straight from node_modules (installed by `make setup`).
    static = StaticFiles(STATIC_DIR, {"vendor/socket.io.min.js": SOCKET_IO_CLIENT})
    app.router.add_get("/static/{path:.+}", static.handle)
    if settings.demo:
        app.router.add_get("/dev/outbox", outbox)
        app.router.add_get("/dev/login", login)
