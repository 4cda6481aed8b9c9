"""Screenshots: the claimant's next keyframe, decoded once, as JPEG plus thumbnail.

Decoding starts from a keyframe on a fresh decoder, so the picture is whole: never the grey or
smeared frame a decoder shows when it joins mid-stream. Codec and JPEG work run in a thread.
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from typing import Any, cast

import av
from av.video.codeccontext import VideoCodecContext
from PIL import Image

from media.call_media import CallMedia
from rooms.errors import RoomsError

DECODERS = {"vp8": "libvpx", "h264": "h264"}
THUMBNAIL_PX = 320
JPEG_QUALITY = 90


class ScreenshotFailed(RoomsError):
    code = "screenshot_failed"


@dataclass(frozen=True, slots=True)
class Shot:
    jpeg: bytes
    thumbnail: bytes
    width: int
    height: int


def decode_keyframe(codec: str, packet: av.Packet[Any]) -> Shot | None:
    """Decode one keyframe on a fresh decoder; None when it yields no whole picture."""
    ctx = cast(VideoCodecContext, av.CodecContext.create(DECODERS[codec], "r"))
    try:
        frames = ctx.decode(packet)
    except av.FFmpegError:
        return None
    pictures = [f for f in frames if isinstance(f, av.VideoFrame)]
    if not pictures:
        return None
    image = pictures[0].to_image()  # type: ignore[no-untyped-call]
    full = io.BytesIO()
    image.save(full, "JPEG", quality=JPEG_QUALITY)
    thumb = image.copy()
    thumb.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    small = io.BytesIO()
    thumb.save(small, "JPEG", quality=80)
    return Shot(full.getvalue(), small.getvalue(), image.width, image.height)


async def take(media: CallMedia, timeout_s: float = 5.0) -> Shot:
    """Ask the claimant for a keyframe and turn the first one that decodes into a Shot."""
    queue = media.video.tap()
    deadline = time.monotonic() + timeout_s
    try:
        media.video.request_keyframe()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ScreenshotFailed("no picture arrived from the claimant's camera in time")
            try:
                packet = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                continue
            if not packet.is_keyframe:
                continue
            shot = await asyncio.to_thread(decode_keyframe, media.codec, packet)
            if shot is not None:
                return shot
            media.video.request_keyframe()  # a damaged keyframe: ask for another
    finally:
        media.video.untap(queue)
