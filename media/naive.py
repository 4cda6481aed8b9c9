"""The naive relay: the claimant's media decoded once per call and encoded again for every inspector.

This is what a plain aiortc server does with `MediaRelay`: every inspector's sender gets decoded
frames, so aiortc encodes them for him. claimcam forwards encoded packets instead (media/fanout.py);
this mode exists so that `claimcam bench calls` can measure what that saves, with the same server,
peers and machine (setting `media_relay = "naive"`). It reads one subscription of the call's
encoded publisher, so screenshots and recordings take the same path in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import av
from aiortc.codecs import get_decoder
from aiortc.codecs.base import Decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from av.frame import Frame

from media.fanout import ForwardTrack, Publisher, QueuedTrack

QUEUE_FRAMES = 30  # ~1 s of video; an inspector whose encoder falls further behind loses frames, not the others

CLOCK_RATES = {"vp8": 90_000, "h264": 90_000, "opus": 48_000}


def _decoder(kind: str, codec: str) -> Decoder:
    # Codec parameters as negotiated; aiortc's factory only looks at the MIME type.
    params = RTCRtpCodecParameters(mimeType=f"{kind}/{codec.upper()}", clockRate=CLOCK_RATES[codec], payloadType=96)
    return get_decoder(params)


class FrameTrack(QueuedTrack[Frame]):
    """One inspector's decoded track: aiortc's sender encodes every frame it yields."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind, QUEUE_FRAMES)

    def offer(self, frame: Frame) -> None:
        self.put(frame)


class DecodingRelay:
    """Decodes one publisher's packets in a worker thread and offers the frames to every subscriber.

    The decoding starts with the first subscriber and runs until `close`; its task is owned here.
    """

    def __init__(self, publisher: Publisher, codec: Callable[[], str]) -> None:
        self._publisher = publisher
        self._codec = codec  # read per packet: the claimant's offer may settle the video codec later
        self._tracks: set[FrameTrack] = set()
        self._source: ForwardTrack | None = None
        self._task: asyncio.Task[None] | None = None
        self.decoded = 0

    def subscribe(self) -> FrameTrack:
        track = FrameTrack(self._publisher.kind)
        self._tracks.add(track)
        if self._task is None:
            self._source = self._publisher.subscribe()
            self._task = asyncio.get_running_loop().create_task(self._run(self._source))
        return track

    def unsubscribe(self, track: FrameTrack) -> None:
        self._tracks.discard(track)
        track.end()

    async def _run(self, source: ForwardTrack) -> None:
        decoder: Decoder | None = None
        decoding = ""
        while True:
            try:
                packet = await source.recv()
            except MediaStreamError:
                return
            codec = self._codec()
            if decoder is None or codec != decoding:
                decoder, decoding = _decoder(self._publisher.kind, codec), codec
            encoded = JitterFrame(bytes(packet), int(packet.pts or 0))
            try:
                frames = await asyncio.to_thread(decoder.decode, encoded)
            except av.FFmpegError:
                source.request_keyframe()  # as aiortc's receiver does after a decode error
                continue
            self.decoded += len(frames)
            for frame in frames:
                for track in self._tracks:
                    track.offer(frame)

    async def close(self) -> None:
        for track in list(self._tracks):
            self.unsubscribe(track)
        if self._source is not None:
            self._publisher.unsubscribe(self._source)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
