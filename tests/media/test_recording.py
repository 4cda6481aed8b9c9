"""Recording a call with real aiortc peers on loopback: the filed file plays, seeks, and has both voices."""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from media.plane import MediaPlane
from recorder.media_service import MediaService
from recorder.recording import VIDEO, AlreadyRecording, Arrival, NotRecording, SpoolWriter
from recorder.spool import SIDECAR_SUFFIX, SPOOL_SUFFIX, Sidecar, SpoolFiles, finalize_spool, lock_spool
from recorder.spool import recover_recordings as recover
from rooms.calls import Participant
from tests.conftest import MakeApi
from tests.signalling.conftest import token_of
from tests.support.rtc_bots import HEIGHT, LEFT_RGB, RIGHT_RGB, WIDTH, Bot, claimant_bot, inspector_bot
from tests.support.sio_peer import Peer
from tests.support.world import Api
from web.keys import filer_key, media_plane_key

ROOT = Path(__file__).parents[2]
FPS = 30
CLAIMANT_HZ, INSPECTOR_HZ = 440.0, 880.0
CLUSTER_ID, CUES_ID = bytes.fromhex("1F43B675"), bytes.fromhex("1C53BB6B")


@dataclass
class Rig:
    """An app to file into, a media plane with a call on it, and the recording service over both."""

    api: Api
    plane: MediaPlane
    service: MediaService
    invite_id: str
    recordings: Path
    inspector: Participant
    bots: list[Bot] = field(default_factory=list)

    async def call(self, codec: str | None = None) -> None:
        claimant = claimant_bot(codec=codec)
        self.bots.append(claimant)
        await claimant.connect(lambda sdp: self.plane.negotiate(self.invite_id, "sid-claimant", "claimant", sdp))
        inspector = inspector_bot(hz=INSPECTOR_HZ)
        self.bots.append(inspector)
        await inspector.connect(lambda sdp: self.plane.negotiate(self.invite_id, "sid-inspector", "inspector", sdp))
        await inspector.wait_for("video", 10)
        await claimant.wait_for("audio", 10)  # the inspector's voice flows too

    async def content(self, media: dict[str, Any]) -> bytes:
        status, body = await self.api.call("GET", media["content_url"], user="inspector")
        assert status == 200
        assert isinstance(body, bytes)
        return body


@pytest.fixture
async def rig(make_api: MakeApi, tmp_path: Path) -> AsyncIterator[Rig]:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite = await api.invite()
    recordings = tmp_path / "recordings"
    plane = api.client.app[media_plane_key]  # the app's own, closed with the app
    service = MediaService(plane, api.client.app[filer_key], recordings)
    inspector = Participant("sid-inspector", invite["id"], "inspector", "inspector", "Ines Inspector")
    rig = Rig(api, plane, service, invite["id"], recordings, inspector)
    yield rig
    for bot in rig.bots:
        await bot.close()


@dataclass
class Played:
    container: str
    video_codec: str
    audio_codec: str
    duration_s: float
    video_frames: int
    audio_frames: int
    errors: int
    first_picture: np.ndarray[Any, np.dtype[np.int32]]
    pcm: np.ndarray[Any, np.dtype[np.float64]]


def play(data: bytes) -> Played:
    """Decode every packet of a recording, as a player would."""
    with av.open(io.BytesIO(data), "r") as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        frames = {"video": 0, "audio": 0}
        errors = 0
        first: np.ndarray[Any, np.dtype[np.int32]] | None = None
        pcm: list[np.ndarray[Any, np.dtype[np.float64]]] = []
        for packet in c.demux(video, audio):
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                errors += 1
                continue
            for frame in decoded:
                frames[packet.stream.type] += 1
                if isinstance(frame, av.VideoFrame) and first is None:
                    first = frame.to_ndarray(format="rgb24").astype(np.int32)
                if isinstance(frame, av.AudioFrame):
                    pcm.append(frame.to_ndarray().astype(np.float64).mean(axis=0))
        assert first is not None and c.duration is not None
        return Played(
            c.format.name, video.codec_context.name, audio.codec_context.name, c.duration / 1_000_000,
            frames["video"], frames["audio"], errors, first, np.concatenate(pcm),
        )


def tone_strength(pcm: np.ndarray[Any, np.dtype[np.float64]], hz: float) -> float:
    """How far a frequency stands above the spectrum's median."""
    magnitudes = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    bins = np.fft.rfftfreq(len(pcm), 1 / 48_000)
    return float(magnitudes[np.abs(bins - hz) < 15].max() / np.median(magnitudes))


def shows_the_pattern(picture: np.ndarray[Any, np.dtype[np.int32]]) -> bool:
    left = picture[:, : WIDTH // 2 - 8].reshape(-1, 3).mean(axis=0)
    right = picture[:, WIDTH // 2 + 8 :].reshape(-1, 3).mean(axis=0)
    return bool(np.abs(left - LEFT_RGB).max() < 25 and np.abs(right - RIGHT_RGB).max() < 25)


def index_at_front(data: bytes, extension: str) -> bool:
    if extension == "webm":
        return -1 < data.find(CUES_ID) < data.find(CLUSTER_ID)
    return -1 < data.find(b"moov") < data.find(b"mdat")


def spool_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*") if p.is_file()) if directory.exists() else []


@pytest.mark.parametrize(
    ("codec", "container", "extension"), [("vp8", "matroska,webm", "webm"), ("h264", "mov,mp4,m4a,3gp,3g2,mj2", "mp4")]
)
async def test_recorded_call_plays_with_the_claimant_picture_and_both_voices(
    rig: Rig, codec: str, container: str, extension: str
) -> None:
    await rig.call(codec)
    await rig.service.start_recording(rig.invite_id, rig.inspector)
    assert await rig.service.is_recording(rig.invite_id)
    assert len(spool_files(rig.recordings)) == 2  # the spool and its sidecar, from the start
    await asyncio.sleep(3.0)
    capture = await rig.service.stop_recording(rig.invite_id, rig.inspector)
    assert capture is not None and not await rig.service.is_recording(rig.invite_id)
    media = capture.media
    assert (media["kind"], media["content_type"]) == ("video", f"video/{extension}")
    assert (media["width"], media["height"]) == (WIDTH, HEIGHT)
    data = await rig.content(media)
    played = play(data)
    assert (played.container, played.video_codec, played.audio_codec) == (container, codec, "opus")
    assert played.duration_s == pytest.approx(3.0, abs=0.7)
    assert media["duration_s"] == pytest.approx(played.duration_s, abs=0.05)
    assert played.video_frames == pytest.approx(played.duration_s * FPS, rel=0.2)
    assert played.audio_frames / played.duration_s == pytest.approx(50, abs=4)
    assert played.errors == 0
    assert shows_the_pattern(played.first_picture)
    middle = played.pcm[len(played.pcm) // 4 : 3 * len(played.pcm) // 4]
    silent = tone_strength(middle, 660.0)  # a frequency nobody sends
    assert tone_strength(middle, CLAIMANT_HZ) > 100 * silent and tone_strength(middle, INSPECTOR_HZ) > 100 * silent
    assert index_at_front(data, extension)
    assert spool_files(rig.recordings) == []


async def test_recording_seeks_to_its_middle(rig: Rig) -> None:
    await rig.call()
    await rig.service.start_recording(rig.invite_id, rig.inspector)
    await asyncio.sleep(2.5)
    capture = await rig.service.stop_recording(rig.invite_id, rig.inspector)
    assert capture is not None
    with av.open(io.BytesIO(await rig.content(capture.media)), "r") as c:
        assert c.duration is not None and c.duration > 1_500_000
        c.seek(c.duration // 2)
        frame = next(c.decode(video=0))
        assert frame.time is not None and 0 <= frame.time <= c.duration / 1_000_000


async def test_starting_twice_and_stopping_unstarted_are_refused(rig: Rig) -> None:
    with pytest.raises(NotRecording) as not_recording:
        await rig.service.stop_recording(rig.invite_id, rig.inspector)
    assert not_recording.value.code == "not_recording"
    await rig.call()
    await rig.service.start_recording(rig.invite_id, rig.inspector)
    with pytest.raises(AlreadyRecording) as already:
        await rig.service.start_recording(rig.invite_id, rig.inspector)
    assert already.value.code == "already_recording"
    await asyncio.sleep(0.5)
    assert await rig.service.stop_recording(rig.invite_id, rig.inspector) is not None
    with pytest.raises(NotRecording):
        await rig.service.stop_recording(rig.invite_id, rig.inspector)


async def test_closing_the_call_media_files_the_recording_first(rig: Rig) -> None:
    await rig.call()
    await rig.service.start_recording(rig.invite_id, rig.inspector)
    await asyncio.sleep(1.5)
    await rig.plane.close_call(rig.invite_id)
    assert not await rig.service.is_recording(rig.invite_id)
    _, listed = await rig.api.call("GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="inspector")
    [video] = [m for m in listed["items"] if m["kind"] == "video"]
    assert video["duration_s"] >= 1.0
    assert spool_files(rig.recordings) == []


async def test_call_end_stops_the_recording_files_it_and_tells_the_room(make_api: MakeApi) -> None:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite = await api.invite(task="t-main")
    url = str(api.client.make_url("/"))
    claimant, inspector = Peer("/call"), Peer("/call")
    c_bot, i_bot = claimant_bot(), inspector_bot(hz=INSPECTOR_HZ)

    async def offer_over(peer: Peer, sdp: str) -> str:
        ack = await peer.call("rtc_offer", {"type": "offer", "sdp": sdp})
        assert ack["ok"], ack
        return str(ack["answer"]["sdp"])

    try:
        await claimant.connect(url, {"token": await token_of(api, invite["id"])})
        await inspector.connect(url, {"jwt": api.token("inspector"), "invite_id": invite["id"]})
        for peer in (claimant, inspector):
            assert (await peer.call("join"))["ok"]
        await c_bot.connect(lambda sdp: offer_over(claimant, sdp))
        await i_bot.connect(lambda sdp: offer_over(inspector, sdp))
        await i_bot.wait_for("video", 10)
        assert (await inspector.call("record_start"))["ok"]
        assert (await inspector.call("record_start"))["error"]["code"] == "already_recording"
        await asyncio.sleep(2.0)
        await claimant.close()
        stopped = await inspector.wait_for("recording", lambda d: d["active"] is False, within_s=10)
        assert stopped["by"] == "Paula Policyholder"
        _, listed = await api.call("GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="inspector")
        [video] = [m for m in listed["items"] if m["kind"] == "video"]
        assert video["content_type"] == "video/webm" and video["duration_s"] >= 1.0
        assert video["captured_by"]["id"] == "inspector"  # who recorded, not who ended the call
        assert (await inspector.call("record_stop"))["error"]["code"] == "not_recording"
        assert spool_files(Path(api.settings.recordings_dir)) == []
    finally:
        for bot in (c_bot, i_bot):
            await bot.close()
        for peer in (claimant, inspector):
            await peer.close()


async def test_killed_recorder_is_recovered_and_filed(make_api: MakeApi, tmp_path: Path) -> None:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite = await api.invite()
    recordings = Path(api.settings.recordings_dir)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.record_child", str(recordings), invite["id"], "inspector",
        "Ines Inspector", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        assert await asyncio.wait_for(child.stdout.readline(), 30) == b"recording\n"
        await asyncio.sleep(3.0)
    finally:
        child.kill()  # SIGKILL: no stop, no trailer, no clean-up of any kind
        assert child.stdout is not None
        await child.stdout.read()
        await child.wait()
    assert len(spool_files(recordings)) == 2
    copy = tmp_path / "copy"
    shutil.copytree(recordings, copy)

    [item] = await recover(recordings, api.client.app[filer_key])
    assert item.invite_id == invite["id"] and item.content_type == "video/webm"
    assert item.captured_by_id == "inspector" and item.duration_s is not None and item.duration_s >= 1.5
    status, data = await api.call("GET", f"/api/v1/media/{item.id}/content", user="inspector")
    assert status == 200
    played = play(data)
    assert played.duration_s >= 1.5 and played.video_frames >= 1.5 * FPS * 0.8 and played.errors == 0
    assert shows_the_pattern(played.first_picture)
    assert spool_files(recordings) == []

    # The same crash, found by a server starting over the same database: filed before it serves.
    await make_api(
        seed=False, database_url=api.settings.database_url, storage_dir=api.settings.storage_dir,
        recordings_dir=str(copy),
    )
    _, listed = await api.call("GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="inspector")
    assert len([m for m in listed["items"] if m["kind"] == "video"]) == 2
    assert spool_files(copy) == []


async def test_unrecoverable_recordings_are_moved_aside_and_live_ones_left_alone(
    make_api: MakeApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = await make_api()
    invite = await api.invite()
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    sidecar = Sidecar(invite["id"], "inspector", "Ines Inspector", "vp8", "2026-01-01T00:00:00+00:00")
    garbage = SpoolFiles(recordings, "garbage")
    garbage.spool.write_bytes(b"\x1a\x45\xdf\xa3 not really matroska")
    garbage.sidecar.write_text(sidecar.dumps())
    unreadable = SpoolFiles(recordings, "unreadable")
    unreadable.spool.write_bytes(b"")
    unreadable.sidecar.write_text("{not json")
    live = SpoolFiles(recordings, "live")
    live.sidecar.write_text(sidecar.dumps())
    fd = lock_spool(live.spool, create=True)  # another process writes this one
    assert fd is not None
    try:
        with caplog.at_level(logging.ERROR, logger="recorder.spool"):
            assert await recover(recordings, api.client.app[filer_key]) == []
    finally:
        os.close(fd)
    aside = recordings / "unrecoverable"
    assert sorted(p.name for p in aside.iterdir()) == sorted(
        f"{name}{suffix}" for name in ("garbage", "unreadable") for suffix in (SPOOL_SUFFIX, SIDECAR_SUFFIX)
    )
    assert live.spool.exists() and live.sidecar.exists()
    assert len([r for r in caplog.records if "cannot be recovered" in r.getMessage()]) == 2
    _, listed = await api.call("GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="inspector")
    assert [m for m in listed["items"] if m["kind"] == "video"] == []


def test_repeated_and_restarted_timestamps_still_give_a_monotonic_playable_file(tmp_path: Path) -> None:
    """Duplicate RTP timestamps are nudged; a stream that restarts at 0 is anchored anew at its keyframe."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    encoder.time_base = Fraction(1, 90_000)
    encoder.gop_size = 30
    picture = av.VideoFrame.from_ndarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    packets: list[av.Packet[Any]] = []
    for i in range(90):
        picture.pts = i * 3000
        picture.pict_type = av.video.frame.PictureType.I if i % 30 == 0 else av.video.frame.PictureType.NONE
        packets.extend(encoder.encode(picture))
    packets.extend(encoder.encode(None))
    files = SpoolFiles(tmp_path, "synthetic")
    writer = SpoolWriter(files, "vp8")
    arrivals = []
    for i, packet in enumerate(packets[:60]):
        pts = (i // 2) * 3000 if i < 10 else i * 3000  # the first ten in pairs of equal timestamps
        arrivals.append(Arrival(VIDEO, packet, pts, 100.0 + i / FPS))
    for i, packet in enumerate(packets[60:]):  # a new RTP stream: rebased to 0 again
        arrivals.append(Arrival(VIDEO, packet, i * 3000, 102.0 + i / FPS))
    writer.feed(arrivals)
    assert packets[0].is_keyframe and packets[60].is_keyframe
    assert writer.finish()
    finished = finalize_spool(files.spool, "vp8", files.final("vp8"))
    with av.open(str(finished.path)) as c:
        dts = [p.dts for p in c.demux(video=0) if p.dts is not None]
        assert all(b > a for a, b in itertools.pairwise(dts))
    assert finished.video_frames == len(dts) >= 80
    assert finished.duration_s == pytest.approx(3.0, abs=0.2)
