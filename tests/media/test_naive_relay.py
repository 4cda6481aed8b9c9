"""The naive relay (benchmarks only): real aiortc peers on loopback, the claimant's media decoded and encoded again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiortc.codecs import h264, opus, vpx

from media.ice import IceSettings
from media.plane import MediaPlane
from tests.support.rtc_bots import Bot, claimant_bot, inspector_bot

INVITE = "invite-naive"


@pytest.fixture
async def naive_plane(loopback_ice: IceSettings) -> AsyncIterator[MediaPlane]:
    p = MediaPlane(loopback_ice, relay="naive")
    yield p
    await p.close()


@pytest.fixture
def codec_calls(monkeypatch: pytest.MonkeyPatch) -> set[tuple[str, int]]:
    """Which codec instances of aiortc decoded or encoded anything in this process (class name, id)."""
    calls: set[tuple[str, int]] = set()
    for cls in (vpx.Vp8Decoder, h264.H264Decoder, opus.OpusDecoder, vpx.Vp8Encoder, h264.H264Encoder,
                opus.OpusEncoder):
        method = "decode" if cls.__name__.endswith("Decoder") else "encode"
        original = getattr(cls, method)

        def spy(self: Any, *args: Any, _original: Any = original, _name: str = cls.__name__) -> Any:
            calls.add((_name, id(self)))
            return _original(self, *args)

        monkeypatch.setattr(cls, method, spy)
    return calls


@pytest.mark.parametrize(("codec", "decoder"), [("vp8", "Vp8Decoder"), ("h264", "H264Decoder")])
async def test_the_inspector_gets_video_and_audio_the_server_decoded_and_encoded_again(
    naive_plane: MediaPlane, bots: Callable[[Bot], Bot], codec_calls: set[tuple[str, int]], codec: str, decoder: str
) -> None:
    claimant = bots(claimant_bot(codec=codec))
    await claimant.connect(lambda sdp: naive_plane.negotiate(INVITE, "sid-claimant", "claimant", sdp))
    inspector = bots(inspector_bot())
    await inspector.connect(lambda sdp: naive_plane.negotiate(INVITE, "sid-inspector", "inspector", sdp))
    await inspector.wait_for("video", 30)
    await inspector.wait_for("audio", 25)
    await claimant.wait_for("audio", 25)  # the inspector's voice still comes back
    assert inspector.sinks["video"].keyframes >= 1
    media = naive_plane.call(INVITE)
    assert media is not None and media.relay == "naive" and media.codec == codec
    used = [name for name, _ in codec_calls]
    # The bots never decode (the passthrough tap is process-wide), so every decoder is the server's.
    assert decoder in used and "OpusDecoder" in used
    # Video encoders: the claimant bot's camera and the server's for the inspector (in the codec the inspector's
    # leg negotiated); Opus: both bots' tones and the server's again (one inspector's voice goes back unchanged).
    assert used.count("Vp8Encoder") + used.count("H264Encoder") == 2
    assert used.count("OpusEncoder") == 3


async def test_an_unknown_relay_mode_is_refused(loopback_ice: IceSettings) -> None:
    with pytest.raises(ValueError, match="relay must be one of"):
        MediaPlane(loopback_ice, relay="decode-everything")
