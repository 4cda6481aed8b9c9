"""Where messages go. Each channel raises DeliveryError when the message was not handed over."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Protocol

import aiohttp
import aiosmtplib
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import tables as t
from rooms.delivery.messages import OutgoingMessage
from rooms.errors import DeliveryError
from rooms.models import Method


class Channel(Protocol):
    async def send(self, message: OutgoingMessage) -> None: ...


class OutboxChannel:
    """Development delivery: messages are stored and shown on /dev/outbox instead of sent."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def send(self, message: OutgoingMessage) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                t.outbox.insert().values(
                    invite_id=message.invite_id,
                    method=str(message.method),
                    recipient=message.recipient,
                    subject=message.subject,
                    body=message.body,
                    link=message.link,
                    sent_at=datetime.now(UTC),
                )
            )


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str = ""
    password: str = ""
    starttls: bool = False
    use_tls: bool = False
    timeout_s: float = 15.0


class SmtpChannel:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, message: OutgoingMessage) -> None:
        c = self._config
        try:
            # Inside the try: a header value the email package refuses (a line break in the
            # subject, say) raises ValueError, which must count as a failed delivery too.
            mail = EmailMessage()
            mail["From"] = c.sender
            mail["To"] = message.recipient
            mail["Subject"] = message.subject
            mail.set_content(message.body)
            await aiosmtplib.send(
                mail,
                hostname=c.host,
                port=c.port,
                username=c.username or None,
                password=c.password or None,
                start_tls=c.starttls,
                use_tls=c.use_tls,
                timeout=c.timeout_s,
            )
        except (aiosmtplib.SMTPException, OSError, TimeoutError, ValueError) as e:
            raise DeliveryError(f"SMTP: {type(e).__name__}: {e}") from e


@dataclass(frozen=True, slots=True)
class SmsGatewayConfig:
    """An HTTP gateway taking `POST {url}` with JSON `{"to", "from", "text"}`."""

    url: str
    token: str = ""
    sender: str = "claimcam"
    timeout_s: float = 15.0


class SmsGatewayChannel:
    def __init__(self, config: SmsGatewayConfig, session: aiohttp.ClientSession | None = None) -> None:
        self._config = config
        self._session = session
        self._owns_session = session is None

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def send(self, message: OutgoingMessage) -> None:
        c = self._config
        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {c.token}"} if c.token else {}
        payload = {"to": message.recipient, "from": c.sender, "text": message.body}
        try:
            async with self._session.post(
                c.url, json=payload, headers=headers, timeout=aiohttp.ClientTimeout(total=c.timeout_s)
            ) as resp:
                if resp.status >= 300:
                    # errors="replace": an error page need not be UTF-8, and a decoding error
                    # here would escape as something other than DeliveryError.
                    detail = (await resp.text(errors="replace"))[:200]
                    raise DeliveryError(f"SMS gateway answered {resp.status}: {detail}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise DeliveryError(f"SMS gateway: {type(e).__name__}: {e}") from e


class Channels:
    """Routes a message to the channel of its method."""

    def __init__(self, by_method: Mapping[Method, Channel]) -> None:
        self._by_method = dict(by_method)

    async def send(self, message: OutgoingMessage) -> None:
        await self._by_method[message.method].send(message)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    invite_id: str
    method: Method
    recipient: str
    subject: str
    body: str
    link: str
    sent_at: datetime


async def outbox_entries(engine: AsyncEngine, limit: int = 200) -> list[OutboxEntry]:
    async with engine.connect() as conn:
        rows = await conn.execute(t.outbox.select().order_by(t.outbox.c.id.desc()).limit(limit))
        return [
            OutboxEntry(r.id, r.invite_id, Method(r.method), r.recipient, r.subject, r.body, r.link, r.sent_at)
            for r in rows
        ]
