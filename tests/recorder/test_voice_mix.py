"""The voices go into the spool untouched and are mixed into one track when the recording is finished."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from recorder.recording import CLAIMANT_VOICE, INSPECTOR_VOICE, VIDEO, Arrival, SpoolWriter
from recorder.spool import SpoolFiles, finalize_spool
from recorder.voice_mix import RATE, TimelineMix

SIZE, FPS, SECONDS = 64, 30, 2.0
CLAIMANT_HZ, INSPECTOR_HZ = 440.0, 1000.0


def vp8_frames(count: int) -> list[av.Packet[Any]]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = SIZE, SIZE, "yuv420p"
    encoder.time_base = Fraction(1, 90_000)
    picture = av.VideoFrame.from_ndarray(np.zeros((SIZE, SIZE, 3), np.uint8), format="rgb24").reformat(
        format="yuv420p"
    )
    packets: list[av.Packet[Any]] = []
    for i in range(count):
        picture.pts = i * 3000
        packets.extend(encoder.encode(picture))
    packets.extend(encoder.encode(None))
    return packets


def opus_tone(hz: float, frames: int) -> list[av.Packet[Any]]:
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format = RATE, "stereo", "s16"
    packets: list[av.Packet[Any]] = []
    for i in range(frames):
        t = (np.arange(960) + i * 960) / RATE
        tone = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(np.repeat(tone, 2).reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = RATE, i * 960
        packets.extend(encoder.encode(frame))
    return packets


def strength(pcm: np.ndarray[Any, np.dtype[np.float64]], hz: float) -> float:
    magnitudes = np.abs(np.fft.rfft(pcm * np.hanning(len(pcm))))
    bins = np.fft.rfftfreq(len(pcm), 1 / RATE)
    return float(magnitudes[np.abs(bins - hz) < 15].max() / np.median(magnitudes))


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[SpoolFiles, dict[str, list[bytes]]]:
    """A spool of SECONDS of video and both voices, as a recording's thread writes it."""
    files = SpoolFiles(tmp_path, "voices")
    writer = SpoolWriter(files, "vp8")
    sent: dict[str, list[bytes]] = {CLAIMANT_VOICE: [], INSPECTOR_VOICE: []}
    arrivals = [Arrival(VIDEO, p, i * 3000, 100.0 + i / FPS) for i, p in enumerate(vp8_frames(int(SECONDS * FPS)))]
    for source, hz, late in ((CLAIMANT_VOICE, CLAIMANT_HZ, 0.004), (INSPECTOR_VOICE, INSPECTOR_HZ, 0.013)):
        for i, packet in enumerate(opus_tone(hz, int(SECONDS * 50) - 5)):
            arrivals.append(Arrival(source, packet, i * 960, 100.1 + i / 50 + late))
            sent[source].append(bytes(packet))
    arrivals.sort(key=lambda a: a.at)
    writer.feed(arrivals)
    assert writer.finish()
    return files, sent


def test_the_spool_keeps_each_voice_as_it_came(recorded: tuple[SpoolFiles, dict[str, list[bytes]]]) -> None:
    files, sent = recorded
    with av.open(str(files.spool)) as spool:
        audio = list(spool.streams.audio)
        assert len(audio) == 2
        kept: dict[int, list[bytes]] = {s.index: [] for s in audio}
        for packet in spool.demux(audio):
            if packet.size:
                kept[packet.stream.index].append(bytes(packet))
    # byte for byte what the publishers handed over: nothing was decoded or encoded during the call
    assert sorted(kept.values()) == sorted(sent.values())


def test_the_final_file_has_one_track_with_both_voices(recorded: tuple[SpoolFiles, dict[str, list[bytes]]]) -> None:
    files, _ = recorded
    finished = finalize_spool(files.spool, "vp8", files.final("vp8"))
    with av.open(str(finished.path)) as final:
        assert [s.codec_context.name for s in final.streams.audio] == ["opus"]
        pcm = np.concatenate(
            [f.to_ndarray().astype(np.float64).mean(axis=0) for f in final.decode(final.streams.audio[0])]
        )
    assert len(pcm) / RATE == pytest.approx(SECONDS, abs=0.15)  # the whole recording, silence included
    assert finished.audio_frames == pytest.approx(SECONDS * 50, abs=3)
    voiced = pcm[RATE // 4 : -RATE // 4]
    silent = strength(voiced, 660.0)  # a frequency nobody sent
    assert strength(voiced, CLAIMANT_HZ) > 100 * silent and strength(voiced, INSPECTOR_HZ) > 100 * silent


def test_a_spool_with_one_audio_track_has_it_copied(tmp_path: Path) -> None:
    """Spools written before the voices were kept apart carried the mix already: recovery copies it."""
    spool = tmp_path / "old.mkv"
    mixed = opus_tone(CLAIMANT_HZ, 50)
    with av.open(str(spool), "w", format="matroska") as out:
        video = out.add_mux_stream("vp8", width=SIZE, height=SIZE)
        audio = out.add_stream("libopus", rate=RATE)
        audio.layout = "stereo"
        for i, packet in enumerate(vp8_frames(30)):
            packet.pts = packet.dts = i * 33
            packet.time_base, packet.stream = Fraction(1, 1000), video
            out.mux(packet)
        for i, packet in enumerate(mixed):
            packet.pts = packet.dts = i * 20
            packet.time_base, packet.stream = Fraction(1, 1000), audio
            out.mux(packet)
    finished = finalize_spool(spool, "vp8", tmp_path / "old.webm")
    with av.open(str(finished.path)) as final:
        copied = [bytes(p) for p in final.demux(final.streams.audio[0]) if p.size]
    assert copied == [bytes(p) for p in mixed]
    assert finished.audio_frames == len(mixed)


def test_late_samples_are_cut_and_frames_come_out_whole_and_in_order() -> None:
    mix = TimelineMix()
    mix.add(0, np.full(1500, 0.25, np.float32))
    mix.add(500, np.full(1000, 0.5, np.float32))
    first = mix.take(1500)  # one whole frame of 960; the rest waits
    assert first.shape == (1, 960)
    assert np.allclose(first[0, :500], 0.25) and np.allclose(first[0, 500:], 0.75)
    mix.add(900, np.full(100, 1.0, np.float32))  # 60 samples of it were written already
    assert mix.late_samples == 60
    second = mix.take(1920)
    assert second.shape == (1, 960)
    assert np.allclose(second[0, :40], 1.0)  # 0.75 + 1.0, clipped
    assert np.allclose(second[0, 40:540], 0.75) and np.allclose(second[0, 540:], 0.0)
