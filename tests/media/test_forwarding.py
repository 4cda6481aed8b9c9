"""Real aiortc peers on loopback: the claimant's media reaches inspectors without being decoded."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from aiortc.codecs import h264, opus, vpx
from PIL import Image

from media import passthrough
from media.plane import MediaPlane
from media.sdp import BadSdp
from recorder import screenshot
from tests.support.rtc_bots import HEIGHT, LEFT_RGB, RIGHT_RGB, WIDTH, Bot, claimant_bot, inspector_bot

INVITE = "invite-1"


@pytest.fixture
def decode_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call into aiortc's decoders, anywhere in this process."""
    calls: list[str] = []
    for cls in (vpx.Vp8Decoder, h264.H264Decoder, opus.OpusDecoder):
        original = cls.decode

        def spy(self: Any, *args: Any, _original: Any = original, _name: str = cls.__name__) -> Any:
            calls.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(cls, "decode", spy)
    return calls


async def start_call(plane: MediaPlane, keep: Callable[[Bot], Bot], codec: str | None = None) -> tuple[Bot, Bot]:
    claimant = keep(claimant_bot(codec=codec))
    await claimant.connect(lambda sdp: plane.negotiate(INVITE, "sid-claimant", "claimant", sdp))
    inspector = keep(inspector_bot())
    await inspector.connect(lambda sdp: plane.negotiate(INVITE, "sid-inspector", "inspector", sdp))
    return claimant, inspector


def first_video_codec(sdp: str) -> str:
    """The codec an answer puts first on its video line: the one the far end sends with."""
    lines = sdp.splitlines()
    first_pt = next(line for line in lines if line.startswith("m=video")).split()[3]
    rtpmap = next(line for line in lines if line.startswith(f"a=rtpmap:{first_pt} "))
    return rtpmap.split()[1].split("/")[0].upper()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_video_and_audio_reach_the_inspector_without_decoding(
    plane: MediaPlane, bots: Callable[[Bot], Bot], decode_calls: list[str], codec: str
) -> None:
    claimant, inspector = await start_call(plane, bots, codec)
    await inspector.wait_for("video", 30)
    await inspector.wait_for("audio", 25)
    await claimant.wait_for("audio", 25)  # the inspector's voice comes back
    assert inspector.sinks["video"].keyframes >= 1
    assert inspector.sinks["video"].kinds == {"Packet"}
    media = plane.call(INVITE)
    assert media is not None and media.codec == codec
    # The same codec on both legs: the inspector (who offered VP8 first) is answered with the call's.
    assert first_video_codec(inspector.pc.remoteDescription.sdp) == codec.upper()
    assert first_video_codec(claimant.pc.remoteDescription.sdp) == codec.upper()
    assert media.video.rtp_packets >= 30 and media.audio.rtp_packets >= 25
    assert media.video.packets == 0  # forwarded packet by packet: no frame was even reassembled
    assert passthrough.installed()
    assert decode_calls == []  # nothing in this process decoded a single frame


async def test_keyframe_request_from_the_inspector_reaches_the_claimant(
    plane: MediaPlane, bots: Callable[[Bot], Bot]
) -> None:
    claimant, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 10)
    [sender] = [s for s in claimant.pc.getSenders() if s.track is not None and s.track.kind == "video"]
    asked: list[int] = []
    original = sender._send_keyframe

    def counting() -> None:
        asked.append(1)
        original()

    sender._send_keyframe = counting  # type: ignore[method-assign]
    [receiver] = [r for r in inspector.pc.getReceivers() if r.track.kind == "video"]
    ssrc = int(inspector.pc.remoteDescription.sdp.split("a=ssrc:")[1].split()[0])
    before = inspector.sinks["video"].keyframes
    await asyncio.sleep(0.3)  # past the rate limit of the subscription's own request
    await receiver._send_rtcp_pli(ssrc)
    for _ in range(100):
        if asked and inspector.sinks["video"].keyframes > before:
            break
        await asyncio.sleep(0.05)
    assert asked, "the claimant's sender never heard the keyframe request"
    assert inspector.sinks["video"].keyframes > before


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_screenshot_shows_the_claimant_picture(
    plane: MediaPlane, bots: Callable[[Bot], Bot], codec: str
) -> None:
    await start_call(plane, bots, codec)
    media = plane.call(INVITE)
    assert media is not None and media.codec == codec
    shot = await screenshot.take(media, timeout_s=10)
    assert (shot.width, shot.height) == (WIDTH, HEIGHT)
    image = np.asarray(Image.open(io.BytesIO(shot.jpeg)).convert("RGB"), dtype=np.int32)
    left = image[:, : WIDTH // 2 - 8].reshape(-1, 3).mean(axis=0)
    right = image[:, WIDTH // 2 + 8 :].reshape(-1, 3).mean(axis=0)
    assert np.abs(left - LEFT_RGB).max() < 25 and np.abs(right - RIGHT_RGB).max() < 25
    thumb = Image.open(io.BytesIO(shot.thumbnail))
    assert max(thumb.size) <= 320


async def test_closing_the_call_tears_every_peer_down(plane: MediaPlane, bots: Callable[[Bot], Bot]) -> None:
    _, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 5)
    media = plane.call(INVITE)
    assert media is not None
    server_pcs = [p.pc for p in media.peers.values()]
    await plane.close_call(INVITE)
    assert plane.call(INVITE) is None
    assert all(pc.connectionState == "closed" for pc in server_pcs)
    await asyncio.sleep(0.3)
    arrived = inspector.sinks["video"].packets
    await asyncio.sleep(0.5)
    assert inspector.sinks["video"].packets == arrived  # nothing flows once the server let go


async def test_last_participant_leaving_closes_the_call_media(plane: MediaPlane, bots: Callable[[Bot], Bot]) -> None:
    await start_call(plane, bots)
    await plane.drop(INVITE, "sid-inspector")
    assert plane.call(INVITE) is not None
    await plane.drop(INVITE, "sid-claimant")
    assert plane.call(INVITE) is None


@pytest.mark.parametrize(
    "sdp",
    ["", "hello", "v=0\r\n", "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n" + "a=x\r\n" * 20, 42, None,
     "v=0\r\n" + "m=audio 9 RTP 0\r\n" * 3000],
)
async def test_bad_sdp_is_refused_and_leaves_no_peer(plane: MediaPlane, sdp: object) -> None:
    with pytest.raises(BadSdp):
        await plane.negotiate(INVITE, "sid-x", "claimant", sdp)
    media = plane.call(INVITE)
    assert media is None or media.peers == {}

