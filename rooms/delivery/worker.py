"""Sends queued messages; a failure is logged on the invite and retried with exponential backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rooms import event_log
from rooms.changes import DELIVERY, Change, ChangeFeed
from rooms.clock import Clock
from rooms.delivery import queue
from rooms.delivery.channels import Channel
from rooms.delivery.messages import OutgoingMessage
from rooms.errors import DeliveryError
from rooms.models import Actor, Invite, InviteStatus
from rooms.stopping import StopSignal

log = logging.getLogger(__name__)

# (connection, invite id, purpose) -> the invite and its message, rendered at send time.
Renderer = Callable[[AsyncConnection, str, str], Awaitable[tuple[Invite, OutgoingMessage]]]

# The event a handed-over message logs, by purpose; invites and re-sends log "sent".
_SENT_EVENT = {queue.SMS_CODE: "sms_code_sent"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 6
    first_delay_s: float = 5.0
    factor: float = 3.0
    max_delay_s: float = 900.0
    lease_s: float = 120.0
    poll_s: float = 5.0

    def delay_after(self, attempt: int) -> float:
        return min(self.first_delay_s * self.factor ** (attempt - 1), self.max_delay_s)


class DeliveryWorker:
    def __init__(
        self,
        engine: AsyncEngine,
        channel: Channel,
        render: Renderer,
        clock: Clock,
        policy: RetryPolicy,
        feed: ChangeFeed | None = None,
        on_outcome: Callable[[str], None] = lambda _outcome: None,
    ) -> None:
        self._feed = feed or ChangeFeed()
        self._engine = engine
        self._channel = channel
        self._render = render
        self._clock = clock
        self._policy = policy
        self._on_outcome = on_outcome
        self._wake = asyncio.Event()
        self._stop = StopSignal()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Finish the pass in progress, then end `run`."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stop.stopped:
            try:
                await self.drain_once()
                timeout = await self._seconds_to_next()
            except asyncio.CancelledError:
                raise
            except Exception:
                # A database hiccup must not kill delivery for good; try again after a pause.
                log.exception("delivery pass failed")
                timeout = self._policy.poll_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()

    async def _seconds_to_next(self) -> float:
        async with self._engine.connect() as conn:
            due = await queue.next_due_at(conn)
        if due is None:
            return self._policy.poll_s
        wait = (due - self._clock()).total_seconds()
        return min(max(wait, 0.01), self._policy.poll_s)

    async def drain_once(self, batch: int = 20) -> int:
        """Send everything due now; returns how many deliveries were attempted."""
        lease = timedelta(seconds=self._policy.lease_s)
        async with self._engine.begin() as conn:
            claimed = await queue.claim_due(conn, self._clock(), lease, batch)
        await asyncio.gather(*(self._attempt(d) for d in claimed))
        return len(claimed)

    async def _attempt(self, d: queue.Delivery) -> None:
        try:
            async with self._engine.connect() as conn:
                invite, message = await self._render(conn, d.invite_id, d.purpose)
        except queue.Obsolete as e:
            await self._cancel(d, str(e))
            return
        if invite.status is InviteStatus.CLOSED:
            await self._cancel(d, "invite closed before delivery")
            return
        try:
            await self._channel.send(message)
        except DeliveryError as e:
            await self._failed(d, message, message.redact(e.message))
            await self._feed.publish(Change(DELIVERY, invite.id, invite.case_id, {"outcome": "failed"}))
            return
        except Exception as e:
            # A channel bug must still end in a logged, retried, finally failed delivery;
            # escaping here would strand the row in `sending` and retry it forever.
            log.exception("delivery %d: unexpected channel error", d.id)
            await self._failed(d, message, f"internal error: {type(e).__name__}")
            await self._feed.publish(Change(DELIVERY, invite.id, invite.case_id, {"outcome": "failed"}))
            return
        async with self._engine.begin() as conn:
            await queue.finish(conn, d.id, queue.SENT)
            await event_log.append(
                conn,
                d.invite_id,
                _SENT_EVENT.get(d.purpose, "sent"),
                Actor.system(),
                self._clock(),
                {"method": str(message.method), "to": message.recipient, "purpose": d.purpose, "attempt": d.attempts},
            )
        self._on_outcome("sent")
        await self._feed.publish(Change(DELIVERY, invite.id, invite.case_id, {"outcome": "sent"}))

    async def _cancel(self, d: queue.Delivery, reason: str) -> None:
        async with self._engine.begin() as conn:
            await queue.finish(conn, d.id, queue.CANCELLED, reason)
        self._on_outcome("cancelled")

    async def _failed(self, d: queue.Delivery, message: OutgoingMessage, error: str) -> None:
        now = self._clock()
        final = d.attempts >= self._policy.max_attempts
        retry_in = None if final else self._policy.delay_after(d.attempts)
        log.warning("delivery %d of invite %s failed (attempt %d): %s", d.id, d.invite_id, d.attempts, error)
        async with self._engine.begin() as conn:
            if retry_in is None:
                await queue.finish(conn, d.id, queue.FAILED, error)
            else:
                await queue.retry_later(conn, d.id, now + timedelta(seconds=retry_in), error)
            await event_log.append(
                conn,
                d.invite_id,
                "delivery_failed",
                Actor.system(),
                now,
                {
                    "method": str(message.method),
                    "purpose": d.purpose,
                    "attempt": d.attempts,
                    "error": error[:300],
                    "retry_in_s": retry_in,
                    "final": final,
                },
            )
        self._on_outcome("failed")
