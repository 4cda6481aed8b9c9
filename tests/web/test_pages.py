"""The HTML pages as the server sends them, the static files, and the text catalogues."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import MakeApi
from tests.support.api_tools import settle
from tests.support.world import Api
from web import i18n
from web.pages import STATIC_DIR, content_security_policy
from web.settings import Settings

PAGE_PATHS = ["/", "/dev/outbox", "/dev/login", "/cases/demo-case/calls", "/calls/inv-1", "/join/some-token"]
JS_DIR = STATIC_DIR / "js"
MARKUP_SINKS = re.compile(r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\(|new Function")
PLACEHOLDER = re.compile(r"{(\w+)}")


def inline_code(html: str) -> list[str]:
    """Inline scripts, style attributes or elements, event handlers and javascript: URLs."""
    found = [m.group(0) for m in re.finditer(r"<script(?![^>]*\bsrc=)[^>]*>", html)]
    found += re.findall(r"<style\b|\sstyle=|\son[a-z]+=|javascript:", html, flags=re.IGNORECASE)
    return found


@pytest.mark.parametrize("path", PAGE_PATHS)
async def test_pages_carry_no_inline_code_and_a_strict_policy(make_api: MakeApi, path: str) -> None:
    demo = await make_api(seed=False, demo=True)
    await demo.invite("demo-case", user="u-inspector", contact="c-holder", task=None)
    await settle(demo)
    reply = await demo.request("GET", path)
    assert reply.status == 200
    html = reply.body.decode()
    assert not inline_code(html), inline_code(html)
    csp = reply.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "style-src 'self';" in csp and "unsafe-inline" not in csp
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert '<link rel="stylesheet" href="/static/css/app.css">' in html


def test_the_policy_lets_pictures_come_from_the_s3_server() -> None:
    s3 = Settings(object_store="s3", s3_endpoint="minio.example.com:9000", s3_access_key="a", s3_secret_key="b")
    assert "img-src 'self' blob: data: https://minio.example.com:9000;" in content_security_policy(s3)
    plain = Settings(object_store="s3", s3_endpoint="http://127.0.0.1:9000", s3_access_key="a", s3_secret_key="b")
    assert "media-src 'self' blob: data: http://127.0.0.1:9000;" in content_security_policy(plain)
    assert "minio" not in content_security_policy(Settings())


def test_scripts_build_the_page_without_markup_strings() -> None:
    for path in JS_DIR.glob("*.js"):
        text = path.read_text()
        assert not MARKUP_SINKS.search(text), path


async def test_outbox_and_login_escape_what_they_show(make_api: MakeApi) -> None:
    demo = await make_api(seed=False, demo=True)
    status, _ = await demo.call("PUT", "/api/v1/users/u-inspector", user="platform",
                                json={"name": "Ines <script>alert(1)</script>", "company": "A&B \"Oy\""})
    assert status == 200
    await demo.invite("demo-case", user="u-inspector", contact="c-holder", task=None)
    await settle(demo)
    _, page = await demo.call("GET", "/dev/outbox")
    html = page.decode()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "A&amp;B &quot;Oy&quot;" in html


async def test_calls_shell_reflects_the_case_id_escaped_and_refuses_odd_ids(api: Api) -> None:
    reply = await api.request("GET", "/cases/case-std/calls")
    assert reply.status == 200 and b'data-case-id="case-std"' in reply.body
    assert b'data-demo="false"' in reply.body
    assert b"/static/js/calls.js" in reply.body and b"/static/vendor/socket.io.min.js" in reply.body
    for odd in ("%3Cb%3E", "a%22b", "x" * 80):
        assert (await api.request("GET", f"/cases/{odd}/calls")).status == 404


async def test_call_tab_shell_names_its_invite_and_refuses_odd_ids(api: Api) -> None:
    reply = await api.request("GET", "/calls/inv-123")
    assert reply.status == 200 and b'data-invite-id="inv-123"' in reply.body
    assert b"/static/js/call.js" in reply.body and b"/static/vendor/socket.io.min.js" in reply.body
    assert reply.headers["Cache-Control"] == "no-store"
    for odd in ("%3Cb%3E", "a%22b", "x" * 80):
        assert (await api.request("GET", f"/calls/{odd}")).status == 404


async def test_demo_login_lists_the_users_and_hands_over_working_tokens(make_api: MakeApi) -> None:
    demo = await make_api(seed=False, demo=True)
    _, page = await demo.call("GET", "/dev/login")
    html = page.decode()
    tokens = re.findall(r'href="/cases/demo-case/calls#token=([^"]+)"', html)
    assert len(tokens) == 4
    assert "Vera Viewer" in html and "Read-only" in html and "Full access" in html
    status, listing = await demo.call("GET", "/api/v1/cases/demo-case/invites", token=tokens[0])
    assert (status, listing["can_invite"]) == (200, True)


async def test_demo_pages_exist_only_in_demo_mode(api: Api) -> None:
    for path in ("/dev/login", "/dev/outbox"):
        assert (await api.request("GET", path)).status == 404
    _, index = await api.call("GET", "/")
    assert b"/dev/login" not in index and b"openapi.json" in index


async def test_index_in_demo_mode_links_the_demo_case(make_api: MakeApi) -> None:
    demo = await make_api(seed=False, demo=True)
    _, index = await demo.call("GET", "/")
    assert b'href="/cases/demo-case/calls"' in index and b'href="/dev/login"' in index


async def test_pages_speak_the_browser_s_language(make_api: MakeApi) -> None:
    demo = await make_api(seed=False, demo=True)
    reply = await demo.request("GET", "/dev/outbox", headers={"Accept-Language": "fi-FI,fi;q=0.9,en;q=0.5"})
    html = reply.body.decode()
    assert '<html lang="fi">' in html and "Lähtevät viestit" in html


async def test_static_files_and_the_socket_io_client_are_served(api: Api) -> None:
    reply = await api.request("GET", "/static/vendor/socket.io.min.js")
    assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/javascript")
    assert b"Socket.IO v4" in reply.body[:200]
    for path, kind in (("/static/js/calls.js", "javascript"), ("/static/css/app.css", "text/css"),
                       ("/static/i18n/fi.json", "application/json")):
        reply = await api.request("GET", path)
        assert reply.status == 200 and kind in reply.headers["Content-Type"], path
    for escape in ("/static/../app.py", "/static/%2e%2e/app.py", "/static/js/../../app.py", "/static/js/%2e%2e/dom.js"):
        assert (await api.request("GET", escape)).status in (403, 404), escape
    app_css = await api.request("GET", "/static/css/app.css")
    etag = app_css.headers["Etag"]  # the header names as the test client keeps them
    again = await api.request("GET", "/static/css/app.css", headers={"If-None-Match": etag})
    assert again.status == 304 and again.body == b""  # revalidated, not sent again


# ---- the catalogues ----


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    en, fi = i18n.catalogue("en"), i18n.catalogue("fi")
    assert set(en) == set(fi)
    for key in en:
        assert set(PLACEHOLDER.findall(en[key])) == set(PLACEHOLDER.findall(fi[key])), key
        assert fi[key].strip(), key


def _literal_keys() -> set[str]:
    keys: set[str] = set()
    for path in JS_DIR.glob("*.js"):
        keys |= set(re.findall(r"\bt\('([a-z][\w.]*)'", path.read_text()))
        keys |= set(re.findall(r"rowButton\('\w+', '([\w.]+)'", path.read_text()))
    for path in (Path(i18n.__file__).parent / "pages.py",):
        keys |= set(re.findall(r'\bt\(lang, "([a-z][\w.]*\w)"', path.read_text()))
    return keys


def test_every_key_the_pages_use_is_in_the_catalogue() -> None:
    en = i18n.catalogue("en")
    keys = _literal_keys()
    assert len(keys) > 80
    assert not keys - set(en), keys - set(en)
    # Keys built at run time, by family.
    families = {
        "status.{}.label": ["INVITED", "IN_CALL", "ACTIVE", "CLOSED"],
        "status.{}.description": ["INVITED", "IN_CALL", "ACTIVE", "CLOSED"],
        "tab.{}": ["invites", "log", "pictures", "videos"],
        "live.{}": ["connecting", "live", "reconnecting", "refused", "unavailable"],
        "method.{}": ["sms", "email"],
        "invite.only_{}": ["sms", "email"],
        "invites.col.{}": ["status", "receiver", "contact", "sender", "created", "actions"],
        "role.{}": ["case_handler", "inspector", "project_manager", "external_case_handler", "viewer"],
        "access.{}": ["full", "read", "none"],
        "contact_role.{}": ["policy_holder", "contact_person"],
        "count.{}": [f"{n}_{p}" for n in ("events", "pictures", "videos") for p in ("one", "other")],
        "invite.resent_{}": ["one", "other"],
        "{}.empty": ["pictures", "videos"],
        "event.actor_{}": ["user", "claimant"],
        "facing.{}": ["user", "environment"],
        "call.facing.{}": ["user", "environment"],
        "call.status.{}": ["connecting", "live", "waiting", "reconnecting", "failed"],
        "call.switch.{}": ["pending", "accepted", "declined", "expired", "failed"],
    }
    missing = [f.format(v) for f, values in families.items() for v in values if f.format(v) not in en]
    assert not missing, missing


def test_every_logged_event_kind_has_a_text() -> None:
    en = i18n.catalogue("en")
    kinds = ["created", "sent", "delivery_failed", "resent", "closed", "expired", "media_updated", "link_opened",
             "joined", "left", "call_started", "call_ended", "end_call", "chat", "cursor_shown", "cursor_hidden",
             "muted", "unmuted", "camera_switch_requested", "camera_switch_accepted", "camera_switch_declined",
             "camera_switch_expired", "camera_switched", "screenshot_taken", "recording_stored",
             "claimant_disconnected", "claimant_reconnected"]
    assert not [k for k in kinds if f"event.{k}" not in en]


@pytest.mark.parametrize(
    ("header", "language"),
    [(None, "en"), ("", "en"), ("fi", "fi"), ("fi-FI,fi;q=0.9,en-US;q=0.8", "fi"), ("sv-SE,fi;q=0.5", "fi"),
     ("en;q=0.4,fi;q=0.8", "fi"), ("fi;q=0,en", "en"), ("de,sv", "en"), ("fi;q=abc", "en")],
)
def test_accept_language_picks_a_catalogue(header: str | None, language: str) -> None:
    assert i18n.negotiate(header) == language


def test_translate_fills_placeholders_and_falls_back_to_english() -> None:
    assert i18n.translate("fi", "login.as", name="Ines") == "Kirjaudu käyttäjänä Ines"
    assert i18n.translate("en", "index.calls_hint", reference="R") == "R: {title}"
    with pytest.raises(KeyError):
        i18n.translate("en", "no.such.key")
    json.dumps(i18n.catalogue("fi"), ensure_ascii=False)
