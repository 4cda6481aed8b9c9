"""What the hub asks of the media plane (recorder.media_service implements it; tests use a fake)."""

from __future__ import annotations

from typing import Protocol

from recorder.captures import Capture, MediaUnavailable

__all__ = ["Capture", "MediaPort", "MediaUnavailable"]
from rooms.calls import Participant


class MediaPort(Protocol):
    async def negotiate(self, invite_id: str, by: Participant, offer_sdp: object) -> str: ...

    async def drop(self, invite_id: str, sid: str) -> None: ...

    async def screenshot(self, invite_id: str, by: Participant) -> Capture: ...

    async def start_recording(self, invite_id: str, by: Participant) -> None: ...

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None: ...

    async def is_recording(self, invite_id: str) -> bool: ...
