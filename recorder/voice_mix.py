"""The recording's one audio track, mixed from both voices when the recording is finished.

While a call is recorded the claimant's and the inspectors' Opus packets go into the spool as they
came, each voice a stream of its own, placed on the recording's timeline (recorder/recording.py).
No audio is decoded or encoded during the call: that was two thirds of a recording's live cost.
When the spool is made into the final file (at stop, or by recovery after a crash) the two voices
are decoded, summed at their sample positions and encoded as ONE Opus track, because browsers play
only the first audio track of a file and a recording with two would play with one side silent.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av
import numpy as np
from av.audio.codeccontext import AudioCodecContext
from av.audio.stream import AudioStream
from av.container.output import OutputContainer

log = logging.getLogger(__name__)

RATE = 48_000
OPUS_FRAME = 960  # 20 ms
OPUS_BITRATE = 48_000
MAX_AHEAD_S = 5.0  # audio placed further ahead than this is from a broken clock: dropped
# The spool interleaves the voices by arrival; mixed frames are written this far behind the packet
# last read, so both voices' packets for that time have been read.
LAG_MS = 1000
PCM = np.ndarray[Any, np.dtype[np.float32]]


class TimelineMix:
    """Sums decoded voices at their sample positions and hands out whole 20 ms frames, in order."""

    def __init__(self) -> None:
        self.start = 0  # first sample not handed out yet
        self._chunks: list[tuple[int, PCM]] = []
        self.late_samples = 0

    def add(self, at: int, pcm: PCM) -> None:
        if at < self.start:  # its time was written already
            cut = min(self.start - at, len(pcm))
            self.late_samples += cut
            pcm, at = pcm[cut:], self.start
        if len(pcm) and at - self.start <= MAX_AHEAD_S * RATE:
            self._chunks.append((at, pcm))

    def take(self, until: int) -> PCM:
        """Every whole frame before sample `until`, mixed: shape (frames, 960)."""
        frames = max(0, (until - self.start) // OPUS_FRAME)
        end = self.start + frames * OPUS_FRAME
        out = np.zeros(frames * OPUS_FRAME, dtype=np.float32)
        kept: list[tuple[int, PCM]] = []
        for at, pcm in self._chunks:
            stop = at + len(pcm)
            if at < end:
                upto = min(stop, end)
                out[at - self.start : upto - self.start] += pcm[: upto - at]
                if stop > end:
                    kept.append((end, pcm[end - at :]))
            else:
                kept.append((at, pcm))
        self._chunks = kept
        self.start = end
        np.clip(out, -1.0, 1.0, out=out)
        return out.reshape(frames, OPUS_FRAME)


def add_voice_stream(container: OutputContainer) -> AudioStream:
    """A stream that carries one voice's Opus packets as they came (never encoded into).

    Opened as an encoder stream only for its codec parameters: two channels, as WebRTC signals
    Opus, so the packets decode whether their sender coded them in mono or in stereo.
    """
    stream = container.add_stream("libopus", rate=RATE)
    stream.layout = "stereo"
    return stream


def _decoder() -> AudioCodecContext:
    decoder = av.CodecContext.create("opus", "r")
    decoder.sample_rate = RATE
    decoder.layout = "mono"  # the decoder downmixes itself, cheaper than averaging two channels here
    return decoder


def _mono(frame: av.AudioFrame) -> PCM:
    """A decoded frame as mono float samples in -1..1 (FFmpeg's Opus decoder gives planar float)."""
    pcm = frame.to_ndarray()
    if frame.format.name.startswith("s16"):
        pcm = pcm.astype(np.float32) / 32768.0
    if len(frame.layout.channels) == 1:
        mono: PCM = pcm.reshape(-1).astype(np.float32, copy=False)
        return mono
    if not frame.format.is_planar:
        pcm = pcm.reshape(-1, len(frame.layout.channels)).T
    mixed: PCM = pcm.mean(axis=0).astype(np.float32)
    return mixed


class Mixdown:
    """Decodes the voices' packets as the spool is read and writes their mix into `out`."""

    def __init__(self, container: OutputContainer, voices: list[int]) -> None:
        out = container.add_stream("libopus", rate=RATE)
        out.layout = "mono"
        out.format = "flt"
        out.bit_rate = OPUS_BITRATE
        # Complexity 5 of 10: a third less encoding time per frame, no audible loss for speech at this rate.
        out.codec_context.options = {"compression_level": "5"}
        self.stream = out
        self._container = container
        self._decoders = {index: _decoder() for index in voices}
        self._mix = TimelineMix()
        self._end = 0  # the furthest sample any voice reached
        self.frames = 0
        self.bad_packets = 0

    def add(self, index: int, packet: av.Packet[Any]) -> None:
        """One voice packet from the spool, its pts in ms on the recording's timeline."""
        assert packet.pts is not None
        at = round(packet.pts * packet.time_base * RATE)
        try:
            frames = self._decoders[index].decode(packet)
        except av.FFmpegError:
            self.bad_packets += 1  # a 20 ms gap in that voice
            return
        for frame in frames:
            self._mix.add(at, _mono(frame))
            at += frame.samples
        self._end = max(self._end, at)

    def write_until(self, ms: int) -> None:
        """Encode and mux the mix up to LAG_MS before `ms`, the time of the last packet read."""
        until = round((ms - LAG_MS) * RATE / 1000)
        if until - self._mix.start >= OPUS_FRAME:  # called per voice packet: most have no whole frame to add
            self._write(until)

    def finish(self, end_ms: int) -> None:
        """Everything up to the end of the recording (or of the last voice), and the encoder's tail."""
        self._write(max(self._end, round(end_ms * RATE / 1000)) + OPUS_FRAME - 1)
        for packet in self.stream.encode(None):
            self._container.mux(packet)

    def _write(self, until: int) -> None:
        first = self._mix.start
        for i, chunk in enumerate(self._mix.take(until)):
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout="mono")
            frame.sample_rate = RATE
            frame.pts = first + i * OPUS_FRAME
            frame.time_base = Fraction(1, RATE)
            for packet in self.stream.encode(frame):
                self._container.mux(packet)
            self.frames += 1
