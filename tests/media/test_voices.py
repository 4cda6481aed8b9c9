"""The claimant hears every inspector: one voice passes through, several are mixed."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import av
import numpy as np
import pytest

from media.plane import MediaPlane
from tests.support.rtc_bots import Bot, claimant_bot, inspector_bot

INVITE = "invite-voices"


@pytest.fixture
async def made() -> AsyncIterator[list[Bot]]:
    bots: list[Bot] = []
    yield bots
    for bot in bots:
        await bot.close()


def spectrum_peaks(packets: list[Any], *freqs: float) -> dict[float, float]:
    """Strength of each frequency in the decoded audio, relative to the median of the spectrum."""
    decoder = av.CodecContext.create("libopus", "r")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    pcm = []
    for packet in packets:
        for frame in decoder.decode(packet):
            for mono in resampler.resample(frame):
                pcm.append(mono.to_ndarray().reshape(-1))
    signal = np.concatenate(pcm).astype(np.float64)
    magnitudes = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    bins = np.fft.rfftfreq(len(signal), 1 / 48_000)
    floor = float(np.median(magnitudes))
    return {f: float(magnitudes[np.abs(bins - f) < 15].max()) / floor for f in freqs}


async def join(plane: MediaPlane, made: list[Bot], bot: Bot, sid: str, role: str) -> Bot:
    made.append(bot)
    await bot.connect(lambda sdp: plane.negotiate(INVITE, sid, role, sdp))
    return bot


async def test_one_inspector_is_heard_without_reencoding(plane: MediaPlane, made: list[Bot]) -> None:
    claimant = await join(plane, made, claimant_bot(), "c", "claimant")
    await join(plane, made, inspector_bot(hz=660), "i1", "inspector")
    await claimant.wait_for("audio", 50)
    claimant.sinks["audio"].keep = True
    await claimant.wait_for("audio", 150)
    media = plane.call(INVITE)
    assert media is not None and media.mixer.mixed_frames == 0
    peaks = spectrum_peaks(claimant.sinks["audio"].kept, 660.0)
    assert peaks[660.0] > 50


async def test_two_inspectors_are_both_heard(plane: MediaPlane, made: list[Bot]) -> None:
    claimant = await join(plane, made, claimant_bot(), "c", "claimant")
    await join(plane, made, inspector_bot(hz=660), "i1", "inspector")
    await join(plane, made, inspector_bot(hz=1000), "i2", "inspector")
    await asyncio.sleep(0.5)  # both voices flowing
    claimant.sinks["audio"].keep = True
    start = claimant.sinks["audio"].packets
    await claimant.wait_for("audio", start + 100)
    media = plane.call(INVITE)
    assert media is not None and media.mixer.mixed_frames > 50
    peaks = spectrum_peaks(claimant.sinks["audio"].kept, 660.0, 1000.0)
    assert peaks[660.0] > 50 and peaks[1000.0] > 50, peaks


async def test_voice_timestamps_stay_continuous_when_an_inspector_leaves(plane: MediaPlane, made: list[Bot]) -> None:
    await join(plane, made, claimant_bot(), "c", "claimant")
    await join(plane, made, inspector_bot(hz=660), "i1", "inspector")
    await join(plane, made, inspector_bot(hz=1000), "i2", "inspector")
    media = plane.call(INVITE)
    assert media is not None
    seen = media.voice.tap()
    await asyncio.sleep(0.5)
    await plane.drop(INVITE, "i1")
    await asyncio.sleep(0.5)
    pts: list[int] = []
    while not seen.empty():
        stamp = seen.get_nowait().pts
        assert stamp is not None
        pts.append(stamp)
    media.voice.untap(seen)
    steps = np.diff(np.array(pts, dtype=np.int64))
    assert len(pts) > 20 and (steps > 0).all() and steps.max() <= 960 * 3


async def test_one_voice_is_forwarded_packet_by_packet_without_frames(plane: MediaPlane, made: list[Bot]) -> None:
    claimant = await join(plane, made, claimant_bot(), "c", "claimant")
    await join(plane, made, inspector_bot(hz=660), "i1", "inspector")
    await claimant.wait_for("audio", 100)
    media = plane.call(INVITE)
    assert media is not None
    # Nothing listens to the voice: no jitter buffer, no frame, no packetiser, his packets as they came.
    assert media.mixer.forwarded_packets >= 100
    assert media.voice.packets == 0 and media.mixer.mixed_frames == 0
    assert media.voice.rtp_packets == media.mixer.forwarded_packets


async def test_a_listener_gets_the_one_voice_as_frames_and_the_claimant_still_gets_it_once(
    plane: MediaPlane, made: list[Bot]
) -> None:
    claimant = await join(plane, made, claimant_bot(), "c", "claimant")
    await join(plane, made, inspector_bot(hz=660), "i1", "inspector")
    await claimant.wait_for("audio", 20)
    media = plane.call(INVITE)
    assert media is not None
    frames: list[Any] = []
    media.voice.listen(frames.append)  # what a recording does
    start = claimant.sinks["audio"].packets
    await claimant.wait_for("audio", start + 100)
    media.voice.unlisten(frames.append)
    assert len(frames) >= 50
    # Every packet the claimant got was the inspector's own, sent once: none packetised from the frames.
    assert media.voice.rtp_packets == media.mixer.forwarded_packets
    assert media.mixer.mixed_frames == 0
    pts = [f.pts for f in frames]
    assert all(b > a for a, b in itertools.pairwise(pts))


async def test_the_voice_goes_back_to_packet_forwarding_when_the_second_inspector_leaves(
    plane: MediaPlane, made: list[Bot]
) -> None:
    claimant = await join(plane, made, claimant_bot(), "c", "claimant")
    await join(plane, made, inspector_bot(hz=660), "i1", "inspector")
    await join(plane, made, inspector_bot(hz=1000), "i2", "inspector")
    media = plane.call(INVITE)
    assert media is not None

    sink = claimant.sinks["audio"]
    await claimant.wait_for("audio", sink.packets + 100)  # the claimant's audio is the clock here
    assert media.mixer.mixed_frames > 25
    await plane.drop(INVITE, "i2")
    mixed, forwarded = media.mixer.mixed_frames, media.mixer.forwarded_packets
    await claimant.wait_for("audio", sink.packets + 100)
    assert media.mixer.forwarded_packets > forwarded + 50
    assert media.mixer.mixed_frames <= mixed + 5  # at most what was buffered when he left
    claimant.sinks["audio"].keep = True
    start = claimant.sinks["audio"].packets
    await claimant.wait_for("audio", start + 100)
    assert spectrum_peaks(claimant.sinks["audio"].kept, 660.0)[660.0] > 50
