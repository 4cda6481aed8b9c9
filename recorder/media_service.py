"""The media plane as the hub sees it: negotiation, and captures filed in the case."""

from __future__ import annotations

from media.plane import MediaPlane
from recorder import screenshot
from recorder.captures import Capture, MediaUnavailable
from recorder.filing import CaptureFiler, media_dict
from rooms.calls import Participant
from rooms.models import MediaKind


class MediaService:
    def __init__(self, plane: MediaPlane, filer: CaptureFiler, screenshot_timeout_s: float = 5.0) -> None:
        self._plane = plane
        self._filer = filer
        self._screenshot_timeout_s = screenshot_timeout_s

    async def negotiate(self, invite_id: str, by: Participant, offer_sdp: object) -> str:
        return await self._plane.negotiate(invite_id, by.sid, by.role, offer_sdp)

    async def drop(self, invite_id: str, sid: str) -> None:
        await self._plane.drop(invite_id, sid)

    async def screenshot(self, invite_id: str, by: Participant) -> Capture:
        media = self._plane.call(invite_id)
        if media is None or not media.has_claimant_video:
            raise MediaUnavailable("the claimant's camera is not connected")
        shot = await screenshot.take(media, self._screenshot_timeout_s)
        item = await self._filer.file(
            invite_id, MediaKind.PICTURE, shot.jpeg, "image/jpeg", "jpg", by.user_id, by.name,
            width=shot.width, height=shot.height, thumbnail=shot.thumbnail,
        )
        return Capture(media_dict(item))

    async def start_recording(self, invite_id: str, by: Participant) -> None:
        raise MediaUnavailable("recording is not available on this server yet")

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None:
        raise MediaUnavailable("recording is not available on this server yet")

    async def is_recording(self, invite_id: str) -> bool:
        return False

    async def close(self) -> None:
        await self._plane.close()
