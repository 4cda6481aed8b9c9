"""Invite delivery end to end: the HTTP API, the app's own background worker, and real local
SMTP and SMS gateway servers. Outcomes are polled for within a bound, never by fixed sleeps."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from email.message import Message
from typing import Any, TypeVar

import pytest

from tests.conftest import MakeApi
from tests.support.sms_gateway import GatewayState
from tests.support.smtp import SmtpServer
from tests.support.world import Api

T = TypeVar("T")

JOIN_LINK = re.compile(r"https?://\S+/join/([A-Za-z0-9_-]+)")


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, timeout_s: float = 5.0
) -> T:
    """Poll `probe` every 20 ms until it returns something other than None or timeout_s passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await probe()
        if value is not None:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def mail_body(mail: Message) -> str:
    payload = mail.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def token_in(text: str) -> str:
    match = JOIN_LINK.search(text)
    assert match is not None, text
    return match.group(1)


async def mails(smtp: SmtpServer, count: int) -> list[Message]:
    async def probe() -> list[Message] | None:
        got = list(smtp.recorder.messages)
        return got if len(got) >= count else None

    return await eventually(probe, f"{count} mail(s) at the SMTP server")


async def texts(state: GatewayState, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        got = list(state.received)
        return got if len(got) >= count else None

    return await eventually(probe, f"{count} SMS at the gateway")


async def events_until(api: Api, invite_id: str, kind: str) -> dict[str, Any]:
    """The invite's event log once an event of `kind` is in it."""

    async def probe() -> dict[str, Any] | None:
        status, body = await api.call(
            "GET", f"/api/v1/invites/{invite_id}/events", user="inspector"
        )
        assert status == 200, body
        return dict(body) if any(e["kind"] == kind for e in body["events"]) else None

    return await eventually(probe, f"a {kind!r} event on invite {invite_id}")


@pytest.fixture
async def delivering_api(
    make_api: MakeApi, smtp_server: SmtpServer, sms_gateway: tuple[str, GatewayState]
) -> Api:
    url, state = sms_gateway
    return await make_api(
        email_delivery="smtp",
        smtp_host="127.0.0.1",
        smtp_port=smtp_server.port,
        sms_delivery="gateway",
        sms_gateway_url=url,
        sms_gateway_token=state.token,
    )


async def test_email_invite_arrives_at_smtp_server_with_join_link(
    delivering_api: Api, smtp_server: SmtpServer
) -> None:
    invite = await delivering_api.invite(contact="c-email", method="email")

    [mail] = await mails(smtp_server, 1)

    assert mail["To"] == "eeva@example.com"
    assert mail["From"] == delivering_api.settings.smtp_sender
    assert "CLM-1" in mail["Subject"]
    assert f"{delivering_api.settings.public_url}/join/" in mail_body(mail)
    await events_until(delivering_api, invite["id"], "sent")


async def test_join_link_from_delivered_email_opens_the_invite(
    delivering_api: Api, smtp_server: SmtpServer
) -> None:
    invite = await delivering_api.invite(contact="c-email", method="email")
    [mail] = await mails(smtp_server, 1)

    status, body = await delivering_api.call("GET", f"/api/v1/join/{token_in(mail_body(mail))}")

    assert status == 200, body
    assert body["invite_id"] == invite["id"]
    assert body["case_reference"] == "CLM-1"


async def test_sms_invite_arrives_at_gateway_with_join_link(
    delivering_api: Api, sms_gateway: tuple[str, GatewayState]
) -> None:
    _, state = sms_gateway
    invite = await delivering_api.invite(contact="c-phone", method="sms")

    [sms] = await texts(state, 1)

    assert sms["to"] == "+358407654321"
    assert sms["from"] == delivering_api.settings.sms_sender
    status, body = await delivering_api.call("GET", f"/api/v1/join/{token_in(sms['text'])}")
    assert (status, body["invite_id"]) == (200, invite["id"])


async def test_gateway_outage_logs_two_failures_then_sent_and_invite_stays_listed(
    delivering_api: Api, sms_gateway: tuple[str, GatewayState]
) -> None:
    _, state = sms_gateway
    state.fail_next = 2
    invite = await delivering_api.invite(contact="c-both", method="sms")

    log = await events_until(delivering_api, invite["id"], "sent")

    kinds = [e["kind"] for e in log["events"]]
    assert kinds == ["created", "delivery_failed", "delivery_failed", "sent"]
    failed = [e["data"] for e in log["events"] if e["kind"] == "delivery_failed"]
    assert [(f["attempt"], f["final"]) for f in failed] == [(1, False), (2, False)]
    assert all(f["retry_in_s"] > 0 for f in failed)
    assert log["integrity"] == {"ok": True, "broken_at": None}
    assert len(state.received) == 1
    status, listing = await delivering_api.call(
        "GET", "/api/v1/cases/case-std/invites", user="inspector"
    )
    assert status == 200, listing
    [listed] = [i for i in listing["invites"] if i["id"] == invite["id"]]
    assert listed["status"] == "INVITED"


async def test_smtp_rejection_is_retried_until_mail_is_accepted(
    delivering_api: Api, smtp_server: SmtpServer
) -> None:
    smtp_server.recorder.reject_next = 1
    invite = await delivering_api.invite(contact="c-email", method="email")

    log = await events_until(delivering_api, invite["id"], "sent")

    assert [e["kind"] for e in log["events"]] == ["created", "delivery_failed", "sent"]
    assert "451" in log["events"][1]["data"]["error"]
    assert len(smtp_server.recorder.messages) == 1


async def test_resend_delivers_the_same_email_link_again(
    delivering_api: Api, smtp_server: SmtpServer
) -> None:
    invite = await delivering_api.invite(contact="c-email", method="email")
    [first] = await mails(smtp_server, 1)

    status, body = await delivering_api.call(
        "POST", f"/api/v1/invites/{invite['id']}/resend", user="inspector"
    )
    assert status == 200, body
    _, second = await mails(smtp_server, 2)

    assert token_in(mail_body(second)) == token_in(mail_body(first))
    assert body["resend_count"] == 1


async def test_resend_delivers_the_same_sms_link_again(
    delivering_api: Api, sms_gateway: tuple[str, GatewayState]
) -> None:
    _, state = sms_gateway
    invite = await delivering_api.invite(contact="c-both", method="sms")
    [first] = await texts(state, 1)

    status, body = await delivering_api.call(
        "POST", f"/api/v1/invites/{invite['id']}/resend", user="inspector"
    )
    assert status == 200, body
    _, second = await texts(state, 2)

    assert token_in(second["text"]) == token_in(first["text"])
    log = await events_until(delivering_api, invite["id"], "resent")
    assert [e["kind"] for e in log["events"]][:3] == ["created", "sent", "resent"]


async def test_outbox_records_delivered_messages_in_demo_mode(make_api: MakeApi) -> None:
    api = await make_api(demo=True)
    invite = await api.invite(contact="c-both", method="email")

    async def probe() -> list[dict[str, Any]] | None:
        status, body = await api.call("GET", "/api/v1/dev/outbox")
        assert status == 200, body
        found = [m for m in body["messages"] if m["invite_id"] == invite["id"]]
        return found or None

    [message] = await eventually(probe, "the invite in the dev outbox")

    assert (message["method"], message["recipient"]) == ("email", "paula@example.com")
    assert message["link"] in message["body"]
    status, body = await api.call("GET", f"/api/v1/join/{token_in(message['link'])}")
    assert (status, body["invite_id"]) == (200, invite["id"])


async def test_outbox_api_is_not_served_outside_demo_mode(make_api: MakeApi) -> None:
    api = await make_api()
    invite = await api.invite(contact="c-both", method="sms")
    await events_until(api, invite["id"], "sent")

    status, _ = await api.call("GET", "/api/v1/dev/outbox")

    assert status == 404
