"""What the hub asks of the media plane. The media issue implements it; tests use a fake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from rooms.calls import Participant
from rooms.errors import RoomsError


class MediaUnavailable(RoomsError):
    code = "media_unavailable"


@dataclass(frozen=True, slots=True)
class Capture:
    """A stored capture, as announced to the call and the staff page."""

    media: dict[str, Any]


class MediaPort(Protocol):
    async def negotiate(self, invite_id: str, by: Participant, offer_sdp: object) -> str: ...

    async def drop(self, invite_id: str, sid: str) -> None: ...

    async def screenshot(self, invite_id: str, by: Participant) -> Capture: ...

    async def start_recording(self, invite_id: str, by: Participant) -> None: ...

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None: ...

    async def is_recording(self, invite_id: str) -> bool: ...
