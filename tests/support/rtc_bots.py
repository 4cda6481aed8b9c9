"""aiortc peers standing in for the browsers: a claimant with a known picture, an inspector that counts."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack

WIDTH, HEIGHT = 320, 240
LEFT_RGB, RIGHT_RGB = (220, 30, 30), (30, 30, 220)


def pattern() -> np.ndarray[Any, np.dtype[np.uint8]]:
    """Left half red, right half blue: what a correct screenshot must show."""
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    img[:, : WIDTH // 2] = LEFT_RGB
    img[:, WIDTH // 2 :] = RIGHT_RGB
    return img


class PatternTrack(VideoStreamTrack):
    def __init__(self) -> None:
        super().__init__()
        self._frame = av.VideoFrame.from_ndarray(pattern(), format="rgb24")

    async def recv(self) -> av.VideoFrame:
        pts, time_base = await self.next_timestamp()
        frame = self._frame.reformat(format="yuv420p")
        frame.pts, frame.time_base = pts, time_base
        return frame


class ToneTrack(AudioStreamTrack):
    """A sine tone (440 Hz unless told otherwise) in 20 ms frames."""

    def __init__(self, hz: float = 440.0) -> None:
        super().__init__()
        self._hz = hz
        self._samples = 0

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()  # paces at real time and stamps pts
        assert isinstance(frame, av.AudioFrame)
        n = frame.samples
        t = (np.arange(n) + self._samples) / frame.sample_rate
        self._samples += n
        tone = (np.sin(2 * np.pi * self._hz * t) * 8000).astype(np.int16)
        out = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        out.sample_rate, out.pts = frame.sample_rate, frame.pts
        out.time_base = fractions.Fraction(1, frame.sample_rate)
        return out


@dataclass
class Sink:
    """Counts what a received track delivers (encoded packets: the passthrough tap is process-wide)."""

    packets: int = 0
    keyframes: int = 0
    kept: list[Any] = field(default_factory=list)  # the packets themselves, while `keep` is set
    keep: bool = False
    kinds: set[str] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                item = await track.recv()
            except MediaStreamError:
                return
            self.kinds.add(type(item).__name__)
            self.packets += 1
            if self.keep:
                self.kept.append(item)
            if isinstance(item, av.Packet) and item.is_keyframe:
                self.keyframes += 1
            self.arrived.set()


Answerer = Callable[[str], Awaitable[str]]


class Bot:
    def __init__(self, configuration: RTCConfiguration | None = None) -> None:
        self.pc = RTCPeerConnection(configuration or RTCConfiguration(iceServers=[]))
        self.sinks: dict[str, Sink] = {"video": Sink(), "audio": Sink()}
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.get_running_loop().create_task(self.sinks[track.kind].drain(track)))

    async def connect(self, answer: Answerer) -> str:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)  # aiortc gathers every candidate here: no trickle
        answer_sdp = await answer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))
        return answer_sdp

    async def wait_for(self, kind: str, packets: int, within_s: float = 15.0) -> None:
        async def enough() -> None:
            while self.sinks[kind].packets < packets:
                self.sinks[kind].arrived.clear()
                await self.sinks[kind].arrived.wait()

        await asyncio.wait_for(enough(), within_s)

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def claimant_bot(configuration: RTCConfiguration | None = None, codec: str | None = None) -> Bot:
    """`codec` ("vp8", "h264") restricts what the claimant offers, as a browser may."""
    bot = Bot(configuration)
    video = bot.pc.addTransceiver(PatternTrack(), direction="sendonly")
    if codec is not None:
        caps = RTCRtpSender.getCapabilities("video").codecs
        video.setCodecPreferences([c for c in caps if c.mimeType.lower() in (f"video/{codec}", "video/rtx")])
    bot.pc.addTrack(ToneTrack())  # sendrecv audio: his voice out, the inspector's in
    return bot


def inspector_bot(hz: float = 440.0) -> Bot:
    bot = Bot()
    bot.pc.addTransceiver("video", direction="recvonly")
    bot.pc.addTrack(ToneTrack(hz))
    return bot
