"""In-process notifications of invite changes, so live views and the call hub can react.

Use cases publish after their transaction commits; the signalling hub subscribes and fans the
change out (across nodes, through its Socket.IO manager).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# Kinds of change.
CREATED = "created"
STATUS = "status"
RESENT = "resent"
CLOSED = "closed"
DELIVERY = "delivery"
LINK_OPENED = "link_opened"
MEDIA_ADDED = "media_added"
MEDIA_UPDATED = "media_updated"


@dataclass(frozen=True, slots=True)
class Change:
    kind: str
    invite_id: str
    case_id: str
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Change], Awaitable[None]]


class ChangeFeed:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, change: Change) -> None:
        # A failing subscriber must not undo or block the change that already committed.
        for subscriber in self._subscribers:
            try:
                await subscriber(change)
            except Exception:
                log.exception("change subscriber failed on %s of invite %s", change.kind, change.invite_id)
