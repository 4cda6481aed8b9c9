"""The inspectors' voices for the claimant.

With one inspector his RTP packets are forwarded to the claimant as they arrive, like the
claimant's own media the other way: no jitter buffer (its 80 ms prefetch was a delay in every
sentence), no frames, no packetiser. Frames of that voice are made only while something listens to
the output (a recording). With two or more, each voice is decoded (Opus decoding costs ~0.05 ms per
20 ms frame), mixed and encoded again as one stream (~0.3 ms per frame): the claimant's phone has
one audio receiver, and browsers cannot mix streams they are not sent. The claimant's forwarder
carries sequence numbers and timestamps on across the switch between the two (media/rtp_forward.py),
and the frames' timestamps stay continuous whatever the mode, so neither the claimant's jitter
buffer nor the recording sees a jump when inspectors come and go.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np
from aiortc.rtp import RtpPacket
from av.audio.codeccontext import AudioCodecContext

from media.fanout import Publisher

log = logging.getLogger(__name__)

RATE = 48_000
TIME_BASE = Fraction(1, RATE)
FRAME_SAMPLES = 960  # 20 ms, what browsers send


class _Voice:
    def __init__(self) -> None:
        self.decoder = av.CodecContext.create("libopus", "r")
        # The decoder's own sample format varies (fltp, s16); the mix is done on interleaved s16.
        self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=RATE)
        self.latest: np.ndarray[Any, np.dtype[np.int32]] | None = None


class VoiceMixer:
    """The inspectors' voices into `out`: its forwarders get RTP, its listeners whole frames."""

    def __init__(self, out: Publisher) -> None:
        self._out = out
        self._voices: dict[str, _Voice] = {}
        self._order: list[str] = []  # the first voice paces the mixed stream
        self._encoder: AudioCodecContext | None = None
        self._next_pts = 0
        self._ssrc = random.getrandbits(32)  # the mixed stream's; a forwarder rebases onto it
        self._seq = random.getrandbits(15)
        self.mixed_frames = 0
        self.forwarded_packets = 0

    @property
    def wants_frames(self) -> bool:
        """Frames of the voices are needed to mix them, or for whoever listens to the output."""
        return len(self._voices) > 1 or self._out.wants_frames

    def add(self, sid: str) -> None:
        if sid not in self._voices:
            self._voices[sid] = _Voice()
            self._order.append(sid)

    def hear_rtp(self, sid: str, packet: RtpPacket, now: float) -> None:
        """An inspector's packet: his voice counts from here (one without a microphone never holds
        the mix back), and while it is the only voice, the packet goes to the claimant as it is."""
        self.add(sid)
        if len(self._voices) == 1:
            self.forwarded_packets += 1
            self._out.publish_rtp(packet, False, now)

    def remove(self, sid: str) -> None:
        self._voices.pop(sid, None)
        if sid in self._order:
            self._order.remove(sid)

    def push(self, sid: str, packet: av.Packet[Any]) -> None:
        voice = self._voices.get(sid)
        if voice is None:
            return
        if len(self._voices) == 1:
            self._emit(packet, self._duration(packet), rtp=False)  # its RTP went out in hear_rtp
            return
        try:
            frames = voice.decoder.decode(packet)
        except av.FFmpegError:
            return  # a damaged packet is a 20 ms gap in that voice, not an error of the call
        for frame in frames:
            for s16 in voice.resampler.resample(frame):
                voice.latest = s16.to_ndarray().astype(np.int32).reshape(-1)
        if sid == self._order[0]:
            self._mix()

    @staticmethod
    def _duration(packet: av.Packet[Any]) -> int:
        return int(packet.duration) if packet.duration else FRAME_SAMPLES

    def _emit(self, packet: av.Packet[Any], samples: int, rtp: bool) -> None:
        packet.pts = packet.dts = self._next_pts
        packet.time_base = TIME_BASE
        self._next_pts += samples
        self._out.publish(packet)
        if rtp:
            out = RtpPacket(sequence_number=self._seq, timestamp=packet.pts & 0xFFFFFFFF, ssrc=self._ssrc)
            out.payload = bytes(packet)
            self._seq = (self._seq + 1) & 0xFFFF
            self._out.publish_rtp(out, False, time.monotonic())

    def _mix(self) -> None:
        parts = [v.latest for v in self._voices.values() if v.latest is not None]
        if not parts:
            return
        length = min(len(p) for p in parts)
        mixed = np.clip(sum(p[:length] for p in parts), -32768, 32767).astype(np.int16)
        for v in self._voices.values():
            v.latest = None  # each decoded frame is mixed once
        if self._encoder is None:
            self._encoder = av.CodecContext.create("libopus", "w")
            self._encoder.sample_rate = RATE
            self._encoder.layout = "stereo"
            self._encoder.format = "s16"
        frame = av.AudioFrame.from_ndarray(mixed.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = self._next_pts
        frame.time_base = TIME_BASE
        for packet in self._encoder.encode(frame):
            self.mixed_frames += 1
            self._emit(packet, frame.samples, rtp=True)


class VoiceInput(Publisher):
    """One inspector's microphone as his tap publishes it: RTP to the mixer, frames only when it needs them."""

    def __init__(self, sid: str, mixer: VoiceMixer) -> None:
        super().__init__("audio")
        self.sid = sid
        self._mixer = mixer
        self.listen(functools.partial(mixer.push, sid))

    @property
    def wants_frames(self) -> bool:
        return self._mixer.wants_frames

    def publish_rtp(self, packet: RtpPacket, keyframe_start: bool, now: float) -> None:
        self.rtp_packets += 1
        self._mixer.hear_rtp(self.sid, packet, now)
