"""Delivery of invite links: the SMTP and SMS gateway channels against real local servers, and the
durable queue with its worker on SQLite and PostgreSQL, driven by a fake clock (no sleeps)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import directory, event_log, invite_store
from rooms.delivery import queue
from rooms.delivery.channels import (
    Channel,
    SmsGatewayChannel,
    SmsGatewayConfig,
    SmtpChannel,
    SmtpConfig,
)
from rooms.delivery.messages import OutgoingMessage
from rooms.delivery.worker import DeliveryWorker, RetryPolicy
from rooms.errors import DeliveryError
from rooms.invites import InviteService
from rooms.link_tokens import LinkKey
from rooms.models import (
    Case,
    CaseRole,
    Contact,
    Event,
    Invite,
    InviteStatus,
    Member,
    Method,
    Portal,
    User,
)
from tests.support.ports import free_port
from tests.support.sms_gateway import GatewayState
from tests.support.smtp import SmtpServer

LINK = "http://t/join/abc123"
EMAIL = OutgoingMessage(
    invite_id="inv-1",
    method=Method.EMAIL,
    recipient="paula@example.com",
    subject="Video call about your claim CLM-1",
    body=f"Hello Paula,\n\nOpen this link on your phone:\n\n{LINK}\n",
    link=LINK,
)
SMS = OutgoingMessage(
    invite_id="inv-1",
    method=Method.SMS,
    recipient="+358401234567",
    subject="Video call about your claim CLM-1",
    body=f"Ines invites you to a video call about claim CLM-1: {LINK}",
    link=LINK,
)
SENDER = "claimcam@test.example"
LEASE = timedelta(seconds=60)


# --- channels ------------------------------------------------------------------------------------


def smtp_channel(port: int) -> SmtpChannel:
    return SmtpChannel(SmtpConfig(host="127.0.0.1", port=port, sender=SENDER, timeout_s=5.0))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def gateway_channel(url: str, token: str, session: aiohttp.ClientSession) -> SmsGatewayChannel:
    return SmsGatewayChannel(
        SmsGatewayConfig(url=url, token=token, sender="claimcam", timeout_s=5.0), session
    )


async def test_smtp_channel_delivers_mail_with_link_to_server(smtp_server: SmtpServer) -> None:
    await smtp_channel(smtp_server.port).send(EMAIL)

    [mail] = smtp_server.recorder.messages
    assert mail["To"] == "paula@example.com"
    assert mail["From"] == SENDER
    assert mail["Subject"] == "Video call about your claim CLM-1"
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert LINK in body.decode()


async def test_smtp_channel_raises_delivery_error_on_temporary_rejection(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.recorder.reject_next = 1

    with pytest.raises(DeliveryError, match="451"):
        await smtp_channel(smtp_server.port).send(EMAIL)
    assert smtp_server.recorder.messages == []


async def test_smtp_channel_raises_delivery_error_when_nothing_listens() -> None:
    with pytest.raises(DeliveryError, match="SMTP"):
        await smtp_channel(free_port()).send(EMAIL)


async def test_smtp_channel_raises_delivery_error_for_subject_with_line_break(
    smtp_server: SmtpServer,
) -> None:
    # The platform API accepts a case reference with an inner line break; it ends up in the subject.
    message = dataclasses.replace(EMAIL, subject="Video call about your claim CLM\n1")

    with pytest.raises(DeliveryError, match="linefeed"):
        await smtp_channel(smtp_server.port).send(message)
    assert smtp_server.recorder.messages == []


async def test_sms_channel_posts_to_from_text_with_bearer_token(
    sms_gateway: tuple[str, GatewayState], http: aiohttp.ClientSession
) -> None:
    url, state = sms_gateway

    await gateway_channel(url, state.token, http).send(SMS)

    assert state.received == [{"to": "+358401234567", "from": "claimcam", "text": SMS.body}]


async def test_sms_channel_raises_delivery_error_when_gateway_answers_503(
    sms_gateway: tuple[str, GatewayState], http: aiohttp.ClientSession
) -> None:
    url, state = sms_gateway
    state.fail_next = 1

    with pytest.raises(DeliveryError, match="503"):
        await gateway_channel(url, state.token, http).send(SMS)
    assert state.received == []


async def test_sms_channel_raises_delivery_error_when_token_is_refused(
    sms_gateway: tuple[str, GatewayState], http: aiohttp.ClientSession
) -> None:
    url, state = sms_gateway

    with pytest.raises(DeliveryError, match="401"):
        await gateway_channel(url, "wrong-token", http).send(SMS)
    assert state.received == []


async def test_sms_channel_raises_delivery_error_when_gateway_is_unreachable(
    http: aiohttp.ClientSession,
) -> None:
    url = f"http://127.0.0.1:{free_port()}/messages"

    with pytest.raises(DeliveryError, match="SMS gateway"):
        await gateway_channel(url, "gw-token", http).send(SMS)


@pytest.fixture
async def non_utf8_gateway() -> AsyncIterator[str]:
    """A gateway behind a proxy that answers 502 with a Latin-1 error page and no charset."""

    async def bad_gateway(_: web.Request) -> web.Response:
        page = "<h1>Yhdyskäytävä ei vastaa</h1>".encode("latin-1")
        return web.Response(status=502, body=page, content_type="text/html")

    app = web.Application()
    app.router.add_post("/messages", bad_gateway)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/messages"))
    await server.close()


async def test_sms_channel_raises_delivery_error_for_error_page_that_is_not_utf8(
    non_utf8_gateway: str, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(DeliveryError, match="502"):
        await gateway_channel(non_utf8_gateway, "gw-token", http).send(SMS)


# --- queue and worker ----------------------------------------------------------------------------


class FakeClock:
    """A clock that stands still until the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


PORTAL = Portal(id="p-1", name="Portal", insurer_company="Aurora Insurance")
INSPECTOR = User(id="u-insp", name="Ines Inspector", company="Nordbuild Oy")
CASE = Case(
    id="case-1",
    portal_id="p-1",
    reference="CLM-1",
    contacts=(Contact(id="c-1", name="Paula Policyholder", phone="+358401234567"),),
    members=(Member(user_id="u-insp", role=CaseRole.INSPECTOR),),
)
# A reference with a line break, as the platform API accepts it: no email subject can carry it.
CASE_NEWLINE = Case(
    id="case-2",
    portal_id="p-1",
    reference="CLM\n2",
    contacts=(Contact(id="c-2", name="Eeva Email", email="eeva@example.com"),),
    members=(Member(user_id="u-insp", role=CaseRole.INSPECTOR),),
)


class ExplodingChannel:
    """A channel with a bug: it raises something other than DeliveryError."""

    async def send(self, message: OutgoingMessage) -> None:
        raise RuntimeError("bug in a channel")


@dataclass
class World:
    engine: AsyncEngine
    clock: FakeClock
    service: InviteService
    gateway: GatewayState
    channel: SmsGatewayChannel

    def worker(self, channel: Channel | None = None, **policy: Any) -> DeliveryWorker:
        return DeliveryWorker(
            self.engine,
            channel or self.channel,
            self.service.render_message,
            self.clock,
            RetryPolicy(**policy),
        )

    async def invite(self) -> Invite:
        return await self.service.create(CASE.id, INSPECTOR, "c-1", Method.SMS, None)

    async def deliveries(self, invite_id: str) -> list[queue.Delivery]:
        async with self.engine.connect() as conn:
            return await queue.for_invite(conn, invite_id)

    async def events(self, invite_id: str) -> list[Event]:
        async with self.engine.connect() as conn:
            return await event_log.list_for_invite(conn, invite_id)

    async def chain_ok(self, invite_id: str) -> bool:
        async with self.engine.connect() as conn:
            return (await event_log.verify(conn, invite_id)).ok

    async def stored(self, invite_id: str) -> Invite:
        async with self.engine.connect() as conn:
            return await invite_store.get(conn, invite_id)

    async def claim(self, lease: timedelta = LEASE) -> list[queue.Delivery]:
        async with self.engine.begin() as conn:
            return await queue.claim_due(conn, self.clock(), lease, 10)


@pytest.fixture
async def world(
    engine: AsyncEngine, sms_gateway: tuple[str, GatewayState], http: aiohttp.ClientSession
) -> World:
    url, state = sms_gateway
    async with engine.begin() as conn:
        await directory.put_portal(conn, PORTAL)
        await directory.put_user(conn, INSPECTOR)
        await directory.put_case(conn, CASE)
        await directory.put_case(conn, CASE_NEWLINE)
    clock = FakeClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    service = InviteService(engine, LinkKey(b"k" * 32), "http://t", clock)
    return World(engine, clock, service, state, gateway_channel(url, state.token, http))


def failures(events: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.kind == "delivery_failed"]


async def test_worker_sends_queued_invite_with_its_link(world: World) -> None:
    invite = await world.invite()

    assert await world.worker().drain_once() == 1

    [sms] = world.gateway.received
    assert sms["to"] == "+358401234567"
    async with world.engine.connect() as conn:
        _, message = await world.service.render_message(conn, invite.id)
    assert message.link.startswith("http://t/join/")
    assert message.link in sms["text"]
    assert [d.state for d in await world.deliveries(invite.id)] == [queue.SENT]
    assert [e.kind for e in await world.events(invite.id)] == ["created", "sent"]


async def test_worker_waits_out_backoff_before_retrying(world: World) -> None:
    invite = await world.invite()
    world.gateway.fail_next = 1
    worker = world.worker(first_delay_s=10.0, factor=3.0)

    assert await worker.drain_once() == 1
    world.clock.advance(9.9)
    assert await worker.drain_once() == 0
    world.clock.advance(0.1)
    assert await worker.drain_once() == 1

    assert len(world.gateway.received) == 1
    [delivery] = await world.deliveries(invite.id)
    assert (delivery.state, delivery.attempts) == (queue.SENT, 2)


async def test_worker_logs_each_failure_with_attempt_and_backoff_then_sent(world: World) -> None:
    invite = await world.invite()
    world.gateway.fail_next = 2
    worker = world.worker(first_delay_s=10.0, factor=3.0, max_attempts=6)

    await worker.drain_once()
    world.clock.advance(10)
    await worker.drain_once()
    world.clock.advance(30)
    await worker.drain_once()

    events = await world.events(invite.id)
    assert [e.kind for e in events] == ["created", "delivery_failed", "delivery_failed", "sent"]
    assert [(f["attempt"], f["retry_in_s"], f["final"]) for f in failures(events)] == [
        (1, 10.0, False),
        (2, 30.0, False),
    ]
    assert all("503" in f["error"] for f in failures(events))
    assert events[-1].data["attempt"] == 3
    assert len(world.gateway.received) == 1


async def test_worker_gives_up_after_max_attempts_and_keeps_invite(world: World) -> None:
    invite = await world.invite()
    world.gateway.fail_next = 100
    worker = world.worker(first_delay_s=10.0, factor=3.0, max_attempts=3)

    for _ in range(3):
        assert await worker.drain_once() == 1
        world.clock.advance(1000)
    assert await worker.drain_once() == 0

    [delivery] = await world.deliveries(invite.id)
    assert (delivery.state, delivery.attempts) == (queue.FAILED, 3)
    assert "503" in delivery.last_error
    events = await world.events(invite.id)
    assert [(f["attempt"], f["final"]) for f in failures(events)] == [
        (1, False),
        (2, False),
        (3, True),
    ]
    assert events[-1].data["final"] is True
    assert events[-1].data["retry_in_s"] is None
    assert await world.stored(invite.id) == invite
    assert world.gateway.received == []


async def test_reference_with_line_break_is_mailed_with_one_line_subject(
    world: World, smtp_server: SmtpServer
) -> None:
    invite = await world.service.create(CASE_NEWLINE.id, INSPECTOR, "c-2", Method.EMAIL, None)

    assert await world.worker(smtp_channel(smtp_server.port)).drain_once() == 1

    [mail] = smtp_server.recorder.messages
    assert mail["Subject"] == "Video call about your claim CLM 2"
    assert [d.state for d in await world.deliveries(invite.id)] == [queue.SENT]


async def test_channel_bug_ends_as_logged_final_failure(world: World) -> None:
    invite = await world.invite()
    worker = world.worker(ExplodingChannel(), first_delay_s=10.0, max_attempts=2)

    assert await worker.drain_once() == 1
    world.clock.advance(10)
    assert await worker.drain_once() == 1
    assert await worker.drain_once() == 0

    [delivery] = await world.deliveries(invite.id)
    assert (delivery.state, delivery.attempts) == (queue.FAILED, 2)
    events = await world.events(invite.id)
    assert [(f["attempt"], f["final"]) for f in failures(events)] == [(1, False), (2, True)]
    assert failures(events)[0]["error"] == "internal error: RuntimeError"
    assert await world.chain_ok(invite.id)


async def test_worker_cancels_delivery_of_invite_closed_before_sending(world: World) -> None:
    invite = await world.invite()
    await world.service.close(invite.id, INSPECTOR)

    assert await world.worker().drain_once() == 1

    assert world.gateway.received == []
    [delivery] = await world.deliveries(invite.id)
    assert delivery.state == queue.CANCELLED
    assert "sent" not in [e.kind for e in await world.events(invite.id)]


async def test_second_claim_of_a_claimed_row_gets_nothing(world: World) -> None:
    invite = await world.invite()

    first = await world.claim()
    second = await world.claim()

    assert [(d.invite_id, d.state, d.attempts) for d in first] == [(invite.id, queue.SENDING, 1)]
    assert second == []


async def test_concurrent_claims_of_one_due_row_give_it_to_one_claimer(world: World) -> None:
    invite = await world.invite()

    results = await asyncio.gather(world.claim(), world.claim())

    claimed = [d for r in results for d in r]
    assert [d.invite_id for d in claimed] == [invite.id]
    assert sorted(len(r) for r in results) == [0, 1]


async def test_live_lease_keeps_row_from_other_claimers(world: World) -> None:
    await world.invite()
    await world.claim(LEASE)

    world.clock.advance(LEASE.total_seconds() - 1)

    assert await world.claim() == []


async def test_expired_lease_is_taken_over_by_next_claim(world: World) -> None:
    invite = await world.invite()
    [dead] = await world.claim(LEASE)  # this claimer dies without finishing

    world.clock.advance(LEASE.total_seconds())
    [taken] = await world.claim()

    assert (taken.id, taken.invite_id, taken.state) == (dead.id, invite.id, queue.SENDING)
    assert taken.attempts == 2


async def test_worker_sends_row_whose_lease_ran_out(world: World) -> None:
    invite = await world.invite()
    await world.claim(LEASE)  # a worker that died mid-send
    world.clock.advance(LEASE.total_seconds() + 1)

    assert await world.worker().drain_once() == 1

    assert len(world.gateway.received) == 1
    [delivery] = await world.deliveries(invite.id)
    assert delivery.state == queue.SENT


async def test_event_chain_stays_valid_after_failures_sends_resend_and_close(world: World) -> None:
    invite = await world.invite()
    world.gateway.fail_next = 2
    worker = world.worker(first_delay_s=10.0, max_attempts=6)
    for _ in range(3):
        await worker.drain_once()
        world.clock.advance(100)
    await world.service.resend(invite.id, INSPECTOR)
    await worker.drain_once()
    await world.service.close(invite.id, INSPECTOR)

    kinds = [e.kind for e in await world.events(invite.id)]
    assert kinds == [
        "created",
        "delivery_failed",
        "delivery_failed",
        "sent",
        "resent",
        "sent",
        "closed",
    ]
    assert await world.chain_ok(invite.id)


async def test_event_chain_stays_valid_after_final_failure_and_cancel(world: World) -> None:
    failing = await world.invite()
    cancelled = await world.invite()
    await world.service.close(cancelled.id, INSPECTOR)
    world.gateway.fail_next = 100
    worker = world.worker(first_delay_s=10.0, max_attempts=2)

    await worker.drain_once()
    world.clock.advance(100)
    await worker.drain_once()

    assert await world.chain_ok(failing.id)
    assert await world.chain_ok(cancelled.id)
    assert [d.state for d in await world.deliveries(failing.id)] == [queue.FAILED]


async def test_resent_invite_delivers_the_same_link_again(world: World) -> None:
    invite = await world.invite()
    worker = world.worker()
    await worker.drain_once()

    await world.service.resend(invite.id, INSPECTOR)
    assert await worker.drain_once() == 1

    first, second = world.gateway.received
    assert first["text"] == second["text"]
    assert [d.purpose for d in await world.deliveries(invite.id)] == ["invite", "resend"]
    assert (await world.stored(invite.id)).status is InviteStatus.INVITED



async def test_stopped_worker_ends_between_passes_without_being_cancelled(world: World) -> None:
    await world.invite()
    worker = world.worker()
    task = asyncio.create_task(worker.run())
    for _ in range(100):
        if world.gateway.received:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await asyncio.wait_for(task, 5)
    assert not task.cancelled() and task.exception() is None
    assert len(world.gateway.received) == 1
