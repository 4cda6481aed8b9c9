"""The media plane as the hub sees it: negotiation, and captures filed in the case."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from media.plane import MediaPlane
from recorder import screenshot
from recorder.captures import Capture, MediaUnavailable
from recorder.filing import CaptureFiler, media_dict
from recorder.recording import AlreadyRecording, NotRecording, Recording, RecordingFailed
from recorder.spool import Sidecar, SpoolFiles, file_finished
from rooms.calls import Participant
from rooms.models import MediaKind

log = logging.getLogger(__name__)


class MediaService:
    def __init__(
        self, plane: MediaPlane, filer: CaptureFiler, recordings_dir: Path, screenshot_timeout_s: float = 5.0
    ) -> None:
        self._plane = plane
        self._filer = filer
        self._recordings_dir = recordings_dir
        self._screenshot_timeout_s = screenshot_timeout_s
        self._recordings: dict[str, Recording] = {}
        # A call whose media closes (last participant gone, invite closed, shutdown) files its recording first.
        plane.on_close_call(self._call_closing)

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
        if invite_id in self._recordings:
            raise AlreadyRecording("this call is being recorded already")
        media = self._plane.call(invite_id)
        if media is None or not media.has_claimant_video:
            raise MediaUnavailable("the claimant's camera is not connected")
        sidecar = Sidecar(invite_id, by.user_id, by.name, media.codec, self._filer.clock().isoformat())
        recording = Recording(media, SpoolFiles(self._recordings_dir, f"{invite_id}-{uuid.uuid4().hex[:12]}"), sidecar)
        self._recordings[invite_id] = recording  # before the first await: a second start sees it
        try:
            await recording.start()
        except BaseException:
            self._recordings.pop(invite_id, None)
            recording.release()
            raise
        media.held = True  # a claimant reconnecting within his grace continues this recording

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None:
        """Finish and file the recording; None when no picture ever came. Filed as by whoever started it."""
        recording = self._recordings.pop(invite_id, None)
        if recording is None:
            raise NotRecording("this call is not being recorded")
        try:
            return await self._finish(recording)
        finally:
            await self._plane.release(invite_id)

    async def is_recording(self, invite_id: str) -> bool:
        return invite_id in self._recordings

    async def _finish(self, recording: Recording) -> Capture | None:
        try:
            finished = await recording.stop()
        except RecordingFailed:
            recording.release()
            raise
        if finished is None:
            await recording.discard()
            return None
        try:
            item = await file_finished(self._filer, recording.sidecar, finished)
        except Exception as e:
            recording.release()
            log.exception("recording %s could not be filed; it is filed at the next start-up", recording.files.name)
            raise RecordingFailed("the recording could not be stored; it is stored when the server restarts") from e
        await recording.discard()
        return Capture(media_dict(item))

    async def _call_closing(self, invite_id: str) -> None:
        recording = self._recordings.pop(invite_id, None)
        if recording is not None:
            await self._finish(recording)

    async def close(self) -> None:
        await self._plane.close()
