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
    async def screenshot(self, invite_id: str, by: Participant) -> Capture: ...

    async def start_recording(self, invite_id: str, by: Participant) -> None: ...

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None: ...

    async def is_recording(self, invite_id: str) -> bool: ...


class NoMediaPlane:
    """Until a media plane is configured, capture commands are refused with a clear reason."""

    async def screenshot(self, invite_id: str, by: Participant) -> Capture:
        raise MediaUnavailable("no media plane is running on this server")

    async def start_recording(self, invite_id: str, by: Participant) -> None:
        raise MediaUnavailable("no media plane is running on this server")

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None:
        raise MediaUnavailable("no media plane is running on this server")

    async def is_recording(self, invite_id: str) -> bool:
        return False
