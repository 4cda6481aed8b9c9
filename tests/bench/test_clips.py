"""The load-test media: pre-encoded once, demuxed from files, played in a loop without encoding."""

from __future__ import annotations

import fractions
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.video.stream import VideoStream

from bench.clips import VIDEO_CLOCK, Clip, ClipError, EncodedFrame, pattern_clip, tone_clip, video_file_clip
from bench.loadtest import LoadOptions, LoadTestError, link_token, percentile
from bench.peers import LoopTrack, rtc_configuration
from media.passthrough import _h264_nal_types, is_vp8_keyframe


def write_video(path: Path, codec: str, options: dict[str, str], frames: int = 30) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25, options=options)
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(frames):
            img = np.full((120, 160, 3), 40, np.uint8)
            img[40:80, (i * 4) % 120 : (i * 4) % 120 + 40] = 250
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def test_pattern_clip_is_vp8_with_a_keyframe_every_interval() -> None:
    clip = pattern_clip(320, 240, fps=30, seconds=4.0, keyframe_interval_s=2.0)
    assert (clip.kind, clip.codec, clip.width, clip.height) == ("video", "vp8", 320, 240)
    assert len(clip.frames) == 120
    assert [i for i, f in enumerate(clip.frames) if f.keyframe] == [0, 60]
    assert all(is_vp8_keyframe(f.data) == f.keyframe for f in clip.frames)
    assert clip.duration_s == pytest.approx(4.0)
    assert clip.keyframe_from(1) == 60 and clip.keyframe_from(60) == 60 and clip.keyframe_from(61) == 0


def test_pattern_clip_refuses_odd_sizes() -> None:
    with pytest.raises(ClipError, match="even"):
        pattern_clip(321, 240)


def test_tone_clip_is_one_second_of_20_ms_opus_packets() -> None:
    clip = tone_clip()
    assert (clip.kind, clip.codec, clip.clock_rate, len(clip.frames)) == ("audio", "opus", 48_000, 50)
    assert clip.duration_s == pytest.approx(1.0)


def test_clip_must_start_at_a_keyframe() -> None:
    with pytest.raises(ClipError, match="keyframe"):
        Clip("video", "vp8", VIDEO_CLOCK, (EncodedFrame(b"\x01", False, 3000),))


def test_vp8_file_is_taken_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "camera.webm"
    write_video(path, "libvpx", {})
    clip = video_file_clip(path)
    assert (clip.codec, clip.width, clip.height, len(clip.frames)) == ("vp8", 160, 120, 30)
    assert clip.frames[0].keyframe and all(f.duration == VIDEO_CLOCK // 25 for f in clip.frames)


def test_h264_from_mp4_becomes_annex_b_with_parameter_sets(tmp_path: Path) -> None:
    path = tmp_path / "camera.mp4"
    write_video(path, "libx264", {"bf": "0", "g": "10"})
    clip = video_file_clip(path)
    assert clip.codec == "h264" and len(clip.frames) == 30
    first = _h264_nal_types(clip.frames[0].data)
    assert {7, 8, 5} <= set(first)  # SPS, PPS, IDR: decodable on its own
    assert clip.frames[0].data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))


def test_b_frames_are_refused_with_advice(tmp_path: Path) -> None:
    path = tmp_path / "b.mp4"
    write_video(path, "libx264", {"bf": "2"})
    with pytest.raises(ClipError, match="B-frames"):
        video_file_clip(path)


def test_a_file_without_video_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-video.mp4"
    path.write_bytes(b"hello")
    with pytest.raises(ClipError, match="cannot open"):
        video_file_clip(path)


async def test_loop_track_plays_packets_with_growing_time_stamps_and_jumps_to_keyframes() -> None:
    frames = tuple(EncodedFrame(bytes([i]), i % 4 == 0, 900) for i in range(8))  # 100 fps, keyframes 0 and 4
    track = LoopTrack(Clip("video", "vp8", VIDEO_CLOCK, frames))
    got: list[av.Packet[Any]] = [await track.recv() for _ in range(2)]
    track.request_keyframe()
    got += [await track.recv() for _ in range(6)]
    assert [bytes(p) for p in got] == [b"\x00", b"\x01", b"\x04", b"\x05", b"\x06", b"\x07", b"\x00", b"\x01"]
    assert [p.pts for p in got] == [i * 900 for i in range(8)]
    assert all(p.time_base == fractions.Fraction(1, VIDEO_CLOCK) for p in got)
    assert got[2].is_keyframe and not got[3].is_keyframe
    assert track.keyframe_requests == 1
    track.stop()


def test_ice_servers_from_the_api_become_the_whole_configuration() -> None:
    assert rtc_configuration([]).iceServers == []  # never aiortc's public STUN default
    config = rtc_configuration([{"urls": ["turn:127.0.0.1:3478"], "username": "u", "credential": "p"}])
    servers = [(s.urls, s.username, s.credential) for s in config.iceServers or []]
    assert servers == [(["turn:127.0.0.1:3478"], "u", "p")]


def test_link_token_and_percentiles() -> None:
    assert link_token("http://127.0.0.1:8080/join/abc-DEF_1") == "abc-DEF_1"
    with pytest.raises(LoadTestError):
        link_token("http://127.0.0.1:8080/cases/x")
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"url": "127.0.0.1:8080"}, "--url"),
        ({"calls": 0}, "--calls"),
        ({"seconds": 0.5}, "--seconds"),
        ({"screenshots": -1}, "--screenshots"),
        ({"link_from_outbox": False}, "outbox"),
    ],
)
def test_options_are_bounded(change: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {"url": "http://127.0.0.1:8080", "token": "t", "case_id": "c", "calls": 1, "seconds": 1}
    with pytest.raises(LoadTestError, match=message):
        LoadOptions(**{**base, **change}).check()
