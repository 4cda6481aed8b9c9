"""The claimant's SMS security code and its grant, on SQLite and PostgreSQL, driven by a fake clock."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import directory, event_log, invite_store, link_codes
from rooms import tables as t
from rooms.delivery import queue
from rooms.delivery.messages import OutgoingMessage
from rooms.delivery.worker import DeliveryWorker, RetryPolicy
from rooms.errors import (
    CodeNotRequired,
    CodeRejected,
    CodeUnusable,
    DeliveryError,
    GrantRequired,
    LinkUnusable,
    NoPhoneNumber,
    TooManyRequests,
    Unprocessable,
)
from rooms.invites import InviteService
from rooms.link_tokens import LinkKey
from rooms.models import Contact, Event, Invite, Method
from tests.rooms import world

KEY = LinkKey(b"k" * 32)
FULLWIDTH_DIGITS = "\uff11\uff12\uff13\uff14\uff15\uff16"  # isdigit() is true for these
PORTAL = dataclasses.replace(world.PORTAL, sms_code_required=True, invite_link_lifetime_hours=72)
CASE = dataclasses.replace(
    world.CASE, contacts=(*world.CASE.contacts, Contact("c3", "Eeva", email="eeva@example.com"))
)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CapturingChannel:
    """Keeps what it is asked to send; `failure` makes it refuse, echoing the text as a gateway might."""

    def __init__(self) -> None:
        self.sent: list[OutgoingMessage] = []
        self.failure = False

    async def send(self, message: OutgoingMessage) -> None:
        if self.failure:
            raise DeliveryError(f"gateway answered 400: cannot deliver {message.body!r}")
        self.sent.append(message)


@dataclass
class World:
    engine: AsyncEngine
    clock: FakeClock
    service: InviteService
    channel: CapturingChannel

    @property
    def codes(self) -> link_codes.LinkCodes:
        return self.service.codes

    def worker(self) -> DeliveryWorker:
        return DeliveryWorker(self.engine, self.channel, self.service.render_message, self.clock, RetryPolicy())

    async def invite(self, contact: str = "c1", method: Method = Method.SMS) -> Invite:
        return await self.service.create(CASE.id, world.INSPECTOR, contact, method, None)

    async def deliver(self) -> list[OutgoingMessage]:
        """Run the worker once; the code SMS it handed over."""
        before = len(self.channel.sent)
        await self.worker().drain_once()
        return [m for m in self.channel.sent[before:] if "security code" in m.body or "turvakoodi" in m.body]

    async def sent_code(self, invite: Invite) -> str:
        await self.codes.send(invite)
        [sms] = await self.deliver()
        return sms.body.split(" is ")[1][:6]

    async def salt(self, invite: Invite) -> str:
        async with self.engine.connect() as conn:
            return await invite_store.token_salt(conn, invite.id)

    async def token(self, invite: Invite) -> str:
        return KEY.token_for(invite.id, await self.salt(invite))

    async def events(self, invite: Invite) -> list[Event]:
        async with self.engine.connect() as conn:
            return await event_log.list_for_invite(conn, invite.id)

    async def set_portal(self, **changes: object) -> None:
        async with self.engine.begin() as conn:
            await directory.put_portal(conn, dataclasses.replace(PORTAL, **changes))  # type: ignore[arg-type]


@pytest.fixture
async def w(engine: AsyncEngine) -> World:
    await world.seed(engine)
    async with engine.begin() as conn:
        await directory.put_portal(conn, PORTAL)
        await directory.put_case(conn, CASE)
    clock = FakeClock()
    return World(engine, clock, InviteService(engine, KEY, "http://claimcam.test", clock), CapturingChannel())


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# ---- codes ----


def test_code_is_six_digits_derived_from_the_secret_and_the_nonce() -> None:
    code = link_codes.derive_code(KEY, "inv", "n1")
    assert len(code) == 6 and code.isdigit()
    assert link_codes.derive_code(KEY, "inv", "n1") == code
    others = {link_codes.derive_code(KEY, "inv", f"n{i}") for i in range(2, 40)}
    assert len(others) > 30  # spread, not one value
    other_key = LinkKey(b"other" * 8)
    nonces = [f"n{i}" for i in range(10)]
    assert [link_codes.derive_code(other_key, "inv", n) for n in nonces] != [
        link_codes.derive_code(KEY, "inv", n) for n in nonces
    ]


async def test_database_keeps_a_random_nonce_and_never_the_code(w: World) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    async with w.engine.connect() as conn:
        rows = [dict(r._mapping) for r in await conn.execute(t.link_codes.select())]
        deliveries = [dict(r._mapping) for r in await conn.execute(t.deliveries.select())]
    [row] = rows
    assert len(row["nonce"]) == 32 and row["state"] == link_codes.LIVE
    assert code not in repr(rows) and code not in repr(deliveries)
    assert link_codes.derive_code(KEY, invite.id, row["nonce"]) == code


async def test_code_sms_goes_to_the_invites_phone_in_the_portal_language(w: World) -> None:
    invite = await w.invite()
    sent = await w.codes.send(invite)
    assert (sent.resend_after_s, sent.expires_in_s, sent.phone_hint) == (60, 600, "•••• 67")
    [sms] = await w.deliver()
    assert sms.method is Method.SMS and sms.recipient == "+358401234567"
    assert sms.body.startswith("Your claimcam security code is ") and "valid for 10 minutes" in sms.body
    assert sms.link == f"http://claimcam.test/join/{await w.token(invite)}"

    await w.set_portal(language="fi")
    w.clock.advance(60)
    await w.codes.send(invite)
    [fi] = await w.deliver()
    assert fi.body.startswith("claimcam-turvakoodisi on ") and "voimassa 10 minuuttia" in fi.body


async def test_code_of_an_email_invite_goes_to_the_contacts_phone(w: World) -> None:
    invite = await w.invite(method=Method.EMAIL)
    assert invite.destination == "p@example.com"
    await w.codes.send(invite)
    [sms] = await w.deliver()
    assert sms.recipient == "+358401234567"


async def test_invite_to_a_contact_without_phone_is_refused_when_the_portal_asks_for_codes(w: World) -> None:
    with pytest.raises(NoPhoneNumber) as refused:
        await w.invite("c3", Method.EMAIL)
    assert refused.value.code == "no_phone_number" and "no phone number" in refused.value.message
    await w.set_portal(sms_code_required=False)
    assert (await w.invite("c3", Method.EMAIL)).destination == "eeva@example.com"


async def test_no_code_is_sent_when_the_portal_asks_for_none(w: World) -> None:
    invite = await w.invite()
    await w.set_portal(sms_code_required=False)
    with pytest.raises(CodeNotRequired):
        await w.codes.send(invite)
    with pytest.raises(CodeNotRequired):
        await w.codes.verify(invite, "123456")


async def test_code_is_refused_when_the_contact_lost_his_phone(w: World) -> None:
    invite = await w.invite(method=Method.EMAIL)
    without_phone = dataclasses.replace(CASE, contacts=(Contact("c1", "Paula", email="p@example.com"),))
    async with w.engine.begin() as conn:
        await directory.put_case(conn, without_phone)
    with pytest.raises(NoPhoneNumber):
        await w.codes.send(invite)


# ---- sending limits ----


async def test_a_new_code_waits_60_s_after_the_last_one(w: World) -> None:
    invite = await w.invite()
    await w.codes.send(invite)
    w.clock.advance(20.5)
    with pytest.raises(TooManyRequests) as refused:
        await w.codes.send(invite)
    assert (refused.value.code, refused.value.retry_after_s) == ("code_too_soon", 40)
    w.clock.advance(39.5)
    await w.codes.send(invite)


async def test_at_most_five_codes_an_hour(w: World) -> None:
    invite = await w.invite()
    for _ in range(5):
        await w.codes.send(invite)
        w.clock.advance(60)
    with pytest.raises(TooManyRequests) as refused:
        await w.codes.send(invite)
    assert refused.value.retry_after_s == 3600 - 5 * 60
    w.clock.advance(3600 - 5 * 60 - 1)
    with pytest.raises(TooManyRequests):
        await w.codes.send(invite)
    w.clock.advance(1)
    await w.codes.send(invite)


async def test_limits_are_per_invite(w: World) -> None:
    first, second = await w.invite(), await w.invite()
    await w.codes.send(first)
    await w.codes.send(second)


async def test_concurrent_sends_let_one_through(w: World) -> None:
    invite = await w.invite()
    results = await asyncio.gather(*(w.codes.send(invite) for _ in range(4)), return_exceptions=True)
    assert sum(isinstance(r, link_codes.CodeSent) for r in results) == 1
    assert all(isinstance(r, (link_codes.CodeSent, TooManyRequests)) for r in results), results


def test_seconds_until_send_follows_both_limits() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    ago = [now - timedelta(seconds=s) for s in (3000, 2000, 1000, 500, 100)]
    assert link_codes.seconds_until_send([], now) == 0
    assert link_codes.seconds_until_send([now - timedelta(seconds=59.2)], now) == 1
    assert link_codes.seconds_until_send(ago[1:], now) == 0
    assert link_codes.seconds_until_send(ago, now) == 600


# ---- checking codes ----


async def test_correct_code_earns_a_grant_of_12_hours_for_this_invite(w: World) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    grant = await w.codes.verify(invite, code)
    assert grant.expires_at == w.clock.now + timedelta(hours=12)
    assert grant.value.startswith(f"v1.{int(grant.expires_at.timestamp())}.")
    assert await w.service.resolve_claimant(await w.token(invite), grant.value) == invite


async def test_code_is_used_up_by_a_correct_guess(w: World) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    await w.codes.verify(invite, code)
    with pytest.raises(CodeUnusable):
        await w.codes.verify(invite, code)


async def test_code_expires_after_10_minutes(w: World) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    w.clock.advance(599)
    snapshot = w.clock.now
    w.clock.advance(1)
    with pytest.raises(CodeUnusable) as refused:
        await w.codes.verify(invite, code)
    assert refused.value.code == "code_expired"
    w.clock.now = snapshot
    await w.codes.verify(invite, code)


async def test_no_code_sent_yet_is_unusable(w: World) -> None:
    invite = await w.invite()
    with pytest.raises(CodeUnusable):
        await w.codes.verify(invite, "123456")


async def test_wrong_codes_count_down_and_the_fifth_kills_the_code(w: World) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    for left in (4, 3, 2, 1):
        with pytest.raises(CodeRejected) as refused:
            await w.codes.verify(invite, wrong(code))
        assert (refused.value.code, refused.value.attempts_left) == ("code_wrong", left)
    w.clock.advance(15)
    with pytest.raises(TooManyRequests) as dead:
        await w.codes.verify(invite, wrong(code))
    assert (dead.value.code, dead.value.retry_after_s) == ("code_attempts_exhausted", 45)
    with pytest.raises(TooManyRequests):
        await w.codes.verify(invite, code)  # dead, even when right
    w.clock.advance(45)
    fresh = await w.sent_code(invite)
    await w.codes.verify(invite, fresh)


async def test_a_new_code_replaces_the_previous_one(w: World) -> None:
    invite = await w.invite()
    old = await w.sent_code(invite)
    w.clock.advance(60)
    new = await w.sent_code(invite)
    if old != new:
        with pytest.raises(CodeRejected):
            await w.codes.verify(invite, old)
    await w.codes.verify(invite, new)


@pytest.mark.parametrize("guess", ["12345", "1234567", "12a456", "", FULLWIDTH_DIGITS, "123456\n"])
async def test_malformed_guess_is_refused_without_counting(w: World, guess: str) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    with pytest.raises(Unprocessable):
        await w.codes.verify(invite, guess)
    async with w.engine.connect() as conn:
        assert (await conn.execute(sa.select(t.link_codes.c.wrong_attempts))).scalar_one() == 0
    await w.codes.verify(invite, code)


async def test_events_record_the_step_without_the_code(w: World) -> None:
    invite = await w.invite()
    code = await w.sent_code(invite)
    with pytest.raises(CodeRejected):
        await w.codes.verify(invite, wrong(code))
    await w.codes.verify(invite, code)
    events = await w.events(invite)
    kinds = [e.kind for e in events if e.kind.startswith("sms_code")]
    assert kinds == ["sms_code_sent", "sms_code_failed", "sms_code_verified"]
    sent, failed, verified = (e for e in events if e.kind.startswith("sms_code"))
    assert sent.data["to"] == "+358401234567" and sent.data["purpose"] == "sms_code"
    assert failed.data == {"attempts_left": 4} and failed.actor.kind == "claimant"
    assert verified.actor.name == "Paula"
    assert all(code not in repr(e.data) and wrong(code) not in repr(e.data) for e in events)
    async with w.engine.connect() as conn:
        assert (await event_log.verify(conn, invite.id)).ok


# ---- delivery of the code ----


async def test_code_sms_not_sent_before_expiry_is_cancelled(w: World) -> None:
    invite = await w.invite()
    await w.worker().drain_once()  # the invite itself
    await w.codes.send(invite)
    w.clock.advance(600)
    assert await w.deliver() == []
    async with w.engine.connect() as conn:
        states = [(d.purpose, d.state) for d in await queue.for_invite(conn, invite.id)]
    assert states == [("invite", queue.SENT), ("sms_code", queue.CANCELLED)]


async def test_pending_sms_of_a_replaced_code_is_cancelled(w: World) -> None:
    invite = await w.invite()
    await w.codes.send(invite)
    w.clock.advance(60)
    await w.codes.send(invite)
    sms = await w.deliver()
    assert len(sms) == 1
    async with w.engine.connect() as conn:
        states = [d.state for d in await queue.for_invite(conn, invite.id) if d.purpose == "sms_code"]
    assert states == [queue.CANCELLED, queue.SENT]


async def test_failed_delivery_logs_no_code_even_when_the_gateway_echoes_it(w: World) -> None:
    invite = await w.invite()
    await w.worker().drain_once()
    await w.codes.send(invite)
    w.channel.failure = True
    await w.worker().drain_once()
    w.channel.failure = False
    [failed] = [e for e in await w.events(invite) if e.kind == "delivery_failed"]
    assert "[redacted]" in failed.data["error"] and failed.data["purpose"] == "sms_code"
    w.clock.advance(10)
    code = (await w.deliver())[0].body.split(" is ")[1][:6]
    assert code not in failed.data["error"]


# ---- grants ----


async def test_grant_forged_expired_or_of_another_invite_is_refused(w: World) -> None:
    invite, other = await w.invite(), await w.invite()
    grant = await w.codes.verify(invite, await w.sent_code(invite))
    token, salt = await w.token(invite), await w.salt(invite)
    expires = int(grant.expires_at.timestamp())
    forged = link_codes.grant_for(LinkKey(b"not-the-secret" * 3), invite.id, salt, grant.expires_at).value
    longer = grant.value.replace(f".{expires}.", f".{expires + 3600}.")
    mac = grant.value.rsplit(".", 1)[1]
    for bad in (forged, longer, grant.value[:-1], grant.value + "A", "v2" + grant.value[2:], "", "v1..", "x" * 5000,
                f"v1.{'9' * 40}.{mac}", f"v1.{FULLWIDTH_DIGITS}.{mac}"):
        with pytest.raises(GrantRequired) as refused:
            await w.service.resolve_claimant(token, bad)
        assert refused.value.code == "sms_code_required"
    with pytest.raises(GrantRequired):
        await w.service.resolve_claimant(await w.token(other), grant.value)  # bound to its invite
    with pytest.raises(GrantRequired):
        await w.service.resolve_claimant(token, None)
    assert not link_codes.grant_valid(KEY, invite.id, "another-salt", grant.value, w.clock.now)

    w.clock.advance(12 * 3600 - 1)
    await w.service.resolve_claimant(token, grant.value)
    w.clock.advance(1)
    with pytest.raises(GrantRequired):
        await w.service.resolve_claimant(token, grant.value)


async def test_grant_survives_a_resend_and_dies_with_the_closed_invite(w: World) -> None:
    invite = await w.invite()
    grant = await w.codes.verify(invite, await w.sent_code(invite))
    token = await w.token(invite)
    await w.service.resend(invite.id, world.INSPECTOR)
    assert await w.token(invite) == token
    await w.service.resolve_claimant(token, grant.value)
    await w.service.close(invite.id, world.INSPECTOR)
    with pytest.raises(LinkUnusable):
        await w.service.resolve_claimant(token, grant.value)


async def test_link_without_code_step_needs_no_grant(w: World) -> None:
    invite = await w.invite()
    await w.set_portal(sms_code_required=False)
    assert await w.service.resolve_claimant(await w.token(invite), None) == invite
    assert await w.service.resolve_claimant(await w.token(invite), "garbage") == invite


def test_phone_hint_shows_the_last_two_digits_only() -> None:
    assert link_codes.phone_hint("+358 40 123 4567") == "•••• 67"
    assert link_codes.phone_hint("") == ""
