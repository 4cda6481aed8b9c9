"""Encoded media for the load-test peers, made once per run and looped by every call.

Encoding live in each claimant would cost 25-60 % of a core per call (research notes) and make the
load generator, not the server, the bottleneck. So the camera is a few seconds of VP8 encoded once
with PyAV at start-up, or the VP8/H.264 packets demuxed from a video file, and the microphone is one
second of Opus; the peers loop these packets. A keyframe request makes the player jump to the next
keyframe of the clip, which is what a real encoder's forced keyframe looks like to the receiver.
"""

from __future__ import annotations

import fractions
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

VIDEO_CLOCK = 90_000  # RTP clock of every video codec
OPUS_CLOCK = 48_000
OPUS_FRAME_SAMPLES = 960  # 20 ms, what browsers send
MAX_FILE_SECONDS = 120.0  # a longer video file is cut: memory stays bounded, the loop is long enough


class ClipError(ValueError):
    """The media cannot be used (unsupported codec, no keyframe, B-frames, unreadable file)."""


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    data: bytes
    keyframe: bool
    duration: int  # in ticks of the clip's clock


@dataclass(frozen=True, slots=True)
class Clip:
    """Encoded frames of one kind, in decode order, to be played in a loop from the first (a keyframe)."""

    kind: str  # "video" | "audio"
    codec: str  # "vp8" | "h264" | "opus": the name aiortc negotiates
    clock_rate: int
    frames: tuple[EncodedFrame, ...]
    width: int = 0
    height: int = 0

    def __post_init__(self) -> None:
        if not self.frames:
            raise ClipError("the clip has no frames")
        if not self.frames[0].keyframe:
            raise ClipError("the clip must start with a keyframe")

    @property
    def duration_s(self) -> float:
        return sum(f.duration for f in self.frames) / self.clock_rate

    @property
    def bitrate_bps(self) -> float:
        return sum(len(f.data) for f in self.frames) * 8 / self.duration_s

    @property
    def keyframes(self) -> int:
        return sum(1 for f in self.frames if f.keyframe)

    def keyframe_from(self, index: int) -> int:
        """The index of the first keyframe at or after `index`, wrapping around the loop."""
        n = len(self.frames)
        for step in range(n):
            i = (index + step) % n
            if self.frames[i].keyframe:
                return i
        return 0  # unreachable: frame 0 is a keyframe

    def describe(self) -> str:
        size = f"{self.width}x{self.height} " if self.width else ""
        keyframes = f", {self.keyframes} keyframes" if self.kind == "video" else ""
        return (f"{self.codec} {size}{len(self.frames)} frames, {self.duration_s:.1f} s, "
                f"{self.bitrate_bps / 1e6:.2f} Mbit/s{keyframes}")


def _moving_pattern(width: int, height: int, frames: int, seed: int = 7) -> list[np.ndarray[Any, np.dtype[np.uint8]]]:
    """A panning textured picture with a box going round; frame `frames` equals frame 0 (seamless loop)."""
    rng = np.random.default_rng(seed)
    step = 4  # pixels of pan per frame
    period = frames * step
    block = 8
    coarse = rng.integers(40, 216, size=(height // block + 1, period // block + 1, 3), dtype=np.uint8)
    texture = np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:height, :period]
    texture = np.concatenate([texture] * (width // period + 2), axis=1)
    box = max(16, min(width, height) // 6)
    out = []
    for i in range(frames):
        img = np.ascontiguousarray(texture[:, i * step : i * step + width])
        angle = 2 * np.pi * i / frames
        x = int((width - box) * (0.5 + 0.4 * np.cos(angle)))
        y = int((height - box) * (0.5 + 0.4 * np.sin(angle)))
        img[y : y + box, x : x + box] = (250, 250, 250)
        out.append(img)
    return out


def pattern_clip(
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    seconds: float = 4.0,
    keyframe_interval_s: float = 2.0,
    bitrate: int = 1_500_000,
) -> Clip:
    """Encode a synthetic moving pattern to VP8 once (libvpx, realtime settings, fixed keyframe interval)."""
    if width % 2 or height % 2 or width < 16 or height < 16:
        raise ClipError(f"the size {width}x{height} must be even and at least 16x16")
    if not 1 <= fps <= 60:
        raise ClipError("the frame rate must be 1..60")
    n = max(1, round(seconds * fps))
    gop = max(1, round(keyframe_interval_s * fps))
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, fps)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.bit_rate = bitrate
    ctx.gop_size = gop
    rate = str(bitrate)
    # Realtime, no alt-ref (no hidden frames), keyframes exactly every `gop` frames, constant bitrate.
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "auto-alt-ref": "0",
                   "keyint_min": str(gop), "minrate": rate, "maxrate": rate}
    packets: list[av.Packet[Any]] = []
    for i, img in enumerate(_moving_pattern(width, height, n)):
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i, ctx.time_base
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    tick = VIDEO_CLOCK // fps
    frames = tuple(EncodedFrame(bytes(p), bool(p.is_keyframe), tick) for p in packets)
    return Clip("video", "vp8", VIDEO_CLOCK, frames, width, height)


def tone_clip(frequency: float = 440.0, bitrate: int = 32_000) -> Clip:
    """One second of a stereo tone as 50 Opus packets of 20 ms (a whole number of periods: it loops cleanly)."""
    ctx = av.CodecContext.create("libopus", "w")
    ctx.sample_rate, ctx.layout, ctx.format = OPUS_CLOCK, "stereo", "s16"
    ctx.bit_rate = bitrate
    packets: list[av.Packet[Any]] = []
    count = OPUS_CLOCK // OPUS_FRAME_SAMPLES
    for i in range(count):
        t = (np.arange(OPUS_FRAME_SAMPLES) + i * OPUS_FRAME_SAMPLES) / OPUS_CLOCK
        mono = (np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(mono, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = OPUS_CLOCK, i * OPUS_FRAME_SAMPLES
        frame.time_base = fractions.Fraction(1, OPUS_CLOCK)
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    frames = tuple(EncodedFrame(bytes(p), True, OPUS_FRAME_SAMPLES) for p in packets[:count])
    return Clip("audio", "opus", OPUS_CLOCK, frames)


def video_file_clip(path: str | Path, max_seconds: float = MAX_FILE_SECONDS) -> Clip:
    """The VP8 or H.264 packets of a file's first video stream, as they are (no decoding, no encoding).

    H.264 from MP4/MOV/MKV (length-prefixed, avcC) is turned into Annex-B, which aiortc packetises;
    SPS/PPS go in front of each keyframe. Packets before the first keyframe are skipped. B-frames
    are refused: WebRTC sends frames in presentation order (use `-bf 0` or the baseline profile).
    """
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise ClipError(f"cannot open {path}: {e}") from None
    with container:
        streams = container.streams.video
        if not streams:
            raise ClipError(f"{path} has no video stream")
        stream = streams[0]
        codec = stream.codec_context.name
        if codec not in ("vp8", "h264"):
            raise ClipError(f"{path}: the video is {codec}; the server forwards VP8 or H.264 only")
        annexb: av.bitstream.BitStreamFilterContext | None = None
        extradata = stream.codec_context.extradata or b""
        if codec == "h264" and extradata[:1] == b"\x01":
            annexb = av.bitstream.BitStreamFilterContext("h264_mp4toannexb", stream)
        time_base = stream.time_base
        if time_base is None:
            raise ClipError(f"{path}: the video stream has no time base")
        raw: list[tuple[bytes, bool, int]] = []  # data, keyframe, pts in the stream's time base
        last_pts: int | None = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue  # the flush packet, or one without a time stamp
                if not raw and not packet.is_keyframe:
                    continue
                if last_pts is not None and packet.pts <= last_pts:
                    raise ClipError(f"{path}: the video has B-frames (frames out of order); re-encode it "
                                    "without them (ffmpeg -bf 0), or use VP8")
                pts, keyframe = int(packet.pts), bool(packet.is_keyframe)
                last_pts = pts
                # The filter takes the packet over (its fields are reset), so read them first.
                out = annexb.filter(packet) if annexb is not None else [packet]
                raw.extend((bytes(p), keyframe, pts) for p in out)
                if raw and (pts - raw[0][2]) * time_base > max_seconds:
                    break
        except av.FFmpegError as e:
            raise ClipError(f"cannot read {path}: {e}") from None
    if not raw:
        raise ClipError(f"{path} has no video keyframe")
    ticks = [round((pts - raw[0][2]) * time_base * VIDEO_CLOCK) for _, _, pts in raw]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    typical = sorted(gaps)[len(gaps) // 2] if gaps else VIDEO_CLOCK // 30
    durations = [*gaps, typical]
    frames = tuple(EncodedFrame(data, key, max(1, d)) for (data, key, _), d in zip(raw, durations, strict=True))
    return Clip("video", codec, VIDEO_CLOCK, frames, stream.codec_context.width, stream.codec_context.height)
