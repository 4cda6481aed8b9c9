"""The claimant's SMS security code, and the grant a correct code earns.

When the invite's portal asks for it, the link alone no longer opens the call: the claimant's page
asks for a 6-digit code sent by SMS to the contact's phone, and a correct code earns a grant that
the page presents along with the link. Only the newest code of an invite counts.

Like link tokens, codes are derived, not stored: HMAC(instance secret, invite id + a random nonce
made with `secrets`). The row keeps only the nonce, so the durable delivery queue can render the SMS
again on a retry, yet a leaked database yields no code. A grant is `v1.<expiry>.<HMAC(secret,
invite id + link salt + expiry)>`: it needs no row, stays valid across re-sends (they keep the salt),
and dies with the invite because link resolution refuses closed invites.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rooms import directory, event_log
from rooms import tables as t
from rooms.clock import Clock
from rooms.delivery import queue
from rooms.delivery.messages import OutgoingMessage, render_code
from rooms.errors import (
    CodeNotRequired,
    CodeRejected,
    CodeUnusable,
    GrantRequired,
    NoPhoneNumber,
    RoomsError,
    TooManyRequests,
    Unprocessable,
)
from rooms.link_tokens import LinkKey
from rooms.models import Actor, Case, Invite, Method, Portal

CODE_DIGITS = 6
CODE_TTL = timedelta(minutes=10)
RESEND_GAP = timedelta(seconds=60)
SEND_WINDOW = timedelta(hours=1)
SENDS_PER_WINDOW = 5
MAX_WRONG = 5
GRANT_TTL = timedelta(hours=12)
MAX_GRANT_CHARS = 128

LIVE, USED, DEAD = "live", "used", "dead"

_GRANT_VERSION = "v1"
_CODE = re.compile(rf"[0-9]{{{CODE_DIGITS}}}")


@dataclass(frozen=True, slots=True)
class CodeSent:
    resend_after_s: int
    expires_in_s: int
    phone_hint: str


@dataclass(frozen=True, slots=True)
class Grant:
    value: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class _Code:
    id: int
    nonce: str
    state: str
    wrong_attempts: int
    expires_at: datetime


def derive_code(key: LinkKey, invite_id: str, nonce: str) -> str:
    mac = hmac.new(key.secret, f"sms-code:{invite_id}:{nonce}".encode(), hashlib.sha256).digest()
    # 64 bits reduced modulo 10^6: the bias is below 10^-13.
    return f"{int.from_bytes(mac[:8], 'big') % 10**CODE_DIGITS:0{CODE_DIGITS}d}"


def _grant_mac(key: LinkKey, invite_id: str, salt: str, expires: int) -> bytes:
    mac = hmac.new(key.secret, f"sms-grant:{invite_id}:{salt}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=")


def grant_for(key: LinkKey, invite_id: str, salt: str, expires_at: datetime) -> Grant:
    expires = int(expires_at.timestamp())
    mac = _grant_mac(key, invite_id, salt, expires).decode()
    return Grant(f"{_GRANT_VERSION}.{expires}.{mac}", datetime.fromtimestamp(expires, UTC))


def grant_valid(key: LinkKey, invite_id: str, salt: str, grant: str, now: datetime) -> bool:
    """Whether `grant` was issued for this invite and link and has not expired; never raises."""
    if not grant or len(grant) > MAX_GRANT_CHARS:
        return False
    version, _, rest = grant.partition(".")
    expiry, _, mac = rest.partition(".")
    if version != _GRANT_VERSION or not (expiry.isascii() and expiry.isdigit()) or len(expiry) > 12:
        return False
    if int(expiry) <= now.timestamp():
        return False
    return hmac.compare_digest(_grant_mac(key, invite_id, salt, int(expiry)), mac.encode())


def phone_hint(phone: str) -> str:
    """The last two digits, enough for the claimant to recognise his number: "•••• 67"."""
    digits = "".join(c for c in phone if c.isascii() and c.isdigit())
    return f"•••• {digits[-2:]}" if digits else ""


def phone_of(invite: Invite, case: Case) -> str:
    """The number an SMS invite went to; for an email invite, the case contact's phone now."""
    if invite.method is Method.SMS:
        return invite.destination
    contact = case.contact(invite.contact_id)
    return contact.phone if contact else ""


def seconds_until_send(sent: list[datetime], now: datetime) -> int:
    """How long until another code may be sent, given the send times of the last hour (oldest first)."""
    waits = [timedelta(0)]
    if sent:
        waits.append(sent[-1] + RESEND_GAP - now)
    if len(sent) >= SENDS_PER_WINDOW:
        waits.append(sent[-SENDS_PER_WINDOW] + SEND_WINDOW - now)
    return max(0, math.ceil(max(waits).total_seconds()))


def _claimant(invite: Invite) -> Actor:
    return Actor("claimant", invite.contact_id, invite.contact_name)


async def _lock_invite(conn: AsyncConnection, invite_id: str) -> None:
    # A write that changes nothing but takes the invite row's write lock (PostgreSQL row lock,
    # SQLite database lock) first, so concurrent sends and guesses of one invite queue up
    # instead of both passing a rate or attempt check.
    await conn.execute(
        t.invites.update().where(t.invites.c.id == invite_id).values(event_seq=t.invites.c.event_seq)
    )


async def _portal_of(conn: AsyncConnection, invite: Invite) -> Portal:
    portal_id = (await conn.execute(sa.select(t.cases.c.portal_id).where(t.cases.c.id == invite.case_id))).scalar_one()
    return await directory.get_portal(conn, str(portal_id))


async def _newest(conn: AsyncConnection, invite_id: str) -> _Code | None:
    c = t.link_codes.c
    row = (
        await conn.execute(
            sa.select(c.id, c.nonce, c.state, c.wrong_attempts, c.expires_at)
            .where(c.invite_id == invite_id)
            .order_by(c.id.desc())
            .limit(1)
        )
    ).first()
    return None if row is None else _Code(row.id, row.nonce, row.state, row.wrong_attempts, row.expires_at)


async def _sent_since(conn: AsyncConnection, invite_id: str, since: datetime) -> list[datetime]:
    c = t.link_codes.c
    rows = await conn.execute(
        sa.select(c.created_at).where(c.invite_id == invite_id, c.created_at > since).order_by(c.id)
    )
    return [r[0] for r in rows]


async def _salt(conn: AsyncConnection, invite_id: str) -> str:
    row = (await conn.execute(sa.select(t.invites.c.token_salt).where(t.invites.c.id == invite_id))).first()
    return "" if row is None else str(row[0])


class LinkCodes:
    """Sending and checking the codes of claimant links, and checking the grants they earn."""

    def __init__(self, engine: AsyncEngine, key: LinkKey, clock: Clock, on_queued: Callable[[], None]) -> None:
        self._engine = engine
        self._key = key
        self._clock = clock
        self._on_queued = on_queued

    async def send(self, invite: Invite) -> CodeSent:
        """Make a new code, replacing the previous one, and queue its SMS."""
        now = self._clock()
        async with self._engine.begin() as conn:
            await _lock_invite(conn, invite.id)
            case = await directory.get_case(conn, invite.case_id)
            portal = await directory.get_portal(conn, case.portal_id)
            if not portal.sms_code_required:
                raise CodeNotRequired("this link needs no security code")
            phone = phone_of(invite, case)
            if not phone:
                raise NoPhoneNumber("no phone number is known for this invite, so no security code can be sent")
            wait = seconds_until_send(await _sent_since(conn, invite.id, now - SEND_WINDOW), now)
            if wait > 0:
                raise TooManyRequests(f"a new code can be sent in {wait} s", wait, "code_too_soon")
            await conn.execute(
                t.link_codes.insert().values(
                    invite_id=invite.id, nonce=secrets.token_hex(16), state=LIVE, wrong_attempts=0,
                    created_at=now, expires_at=now + CODE_TTL,
                )
            )
            # An SMS of the replaced code still waiting for a retry would only confuse.
            await queue.cancel_pending(conn, invite.id, queue.SMS_CODE, "replaced by a newer code")
            await queue.enqueue(conn, invite.id, queue.SMS_CODE, now)
        self._on_queued()
        return CodeSent(
            int(RESEND_GAP.total_seconds()), int(CODE_TTL.total_seconds()), phone_hint(phone)
        )

    async def verify(self, invite: Invite, code: str) -> Grant:
        """Check a guess of the newest code; a correct one uses the code up and earns a grant."""
        if not _CODE.fullmatch(code):
            raise Unprocessable(f"the security code is {CODE_DIGITS} digits")
        now = self._clock()
        async with self._engine.begin() as conn:
            await _lock_invite(conn, invite.id)
            if not (await _portal_of(conn, invite)).sms_code_required:
                raise CodeNotRequired("this link needs no security code")
            outcome = await self._check(conn, invite, code, now)
        # Raised only now, so the attempt counted and its event stay committed.
        if isinstance(outcome, RoomsError):
            raise outcome
        return outcome

    async def _check(self, conn: AsyncConnection, invite: Invite, code: str, now: datetime) -> Grant | RoomsError:
        newest = await _newest(conn, invite.id)
        if newest is None or newest.state == USED or newest.expires_at <= now:
            return CodeUnusable("there is no valid security code (it expired or was used); ask for a new one")
        if newest.state == DEAD:
            return await self._exhausted(conn, invite, now)
        expected = derive_code(self._key, invite.id, newest.nonce)
        if hmac.compare_digest(expected.encode(), code.encode()):
            await conn.execute(t.link_codes.update().where(t.link_codes.c.id == newest.id).values(state=USED))
            grant = grant_for(self._key, invite.id, await _salt(conn, invite.id), now + GRANT_TTL)
            await event_log.append(
                conn, invite.id, "sms_code_verified", _claimant(invite), now,
                {"grant_expires_at": grant.expires_at.isoformat()},
            )
            return grant
        wrong = newest.wrong_attempts + 1
        left = max(0, MAX_WRONG - wrong)
        await conn.execute(
            t.link_codes.update()
            .where(t.link_codes.c.id == newest.id)
            .values(wrong_attempts=wrong, state=LIVE if left else DEAD)
        )
        await event_log.append(conn, invite.id, "sms_code_failed", _claimant(invite), now, {"attempts_left": left})
        if not left:
            return await self._exhausted(conn, invite, now)
        return CodeRejected(f"the security code is not correct; {left} attempt(s) left", left)

    async def _exhausted(self, conn: AsyncConnection, invite: Invite, now: datetime) -> TooManyRequests:
        wait = seconds_until_send(await _sent_since(conn, invite.id, now - SEND_WINDOW), now)
        return TooManyRequests(
            f"too many wrong codes: this code no longer works; ask for a new one (possible in {wait} s)",
            wait,
            "code_attempts_exhausted",
        )

    async def granted(self, conn: AsyncConnection, invite: Invite, grant: str | None) -> bool:
        if not grant:
            return False
        return grant_valid(self._key, invite.id, await _salt(conn, invite.id), grant, self._clock())

    async def require_grant(self, invite: Invite, grant: str | None) -> None:
        """Pass when the portal asks for no code or `grant` is valid; raise GrantRequired otherwise."""
        async with self._engine.connect() as conn:
            if not (await _portal_of(conn, invite)).sms_code_required:
                return
            if await self.granted(conn, invite, grant):
                return
        if grant:
            raise GrantRequired("the security code grant is not valid or has expired; enter a new security code")
        raise GrantRequired("this link needs the security code sent by SMS first")

    async def message(
        self, conn: AsyncConnection, invite: Invite, case: Case, portal: Portal, link: str
    ) -> OutgoingMessage:
        """The SMS of the invite's newest code, rendered at send time; Obsolete once it cannot be used."""
        newest = await _newest(conn, invite.id)
        if newest is None or newest.state != LIVE or newest.expires_at <= self._clock():
            raise queue.Obsolete("the security code expired or was used before it could be sent")
        phone = phone_of(invite, case)
        if not phone:
            raise queue.Obsolete("the contact no longer has a phone number")
        code = derive_code(self._key, invite.id, newest.nonce)
        minutes = int(CODE_TTL.total_seconds()) // 60
        return render_code(invite, portal, phone, code, minutes, link)

