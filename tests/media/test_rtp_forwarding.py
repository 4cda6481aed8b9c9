"""Packet-level forwarding (media/rtp_tap.py, media/rtp_forward.py) between real aiortc peers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import pytest
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpreceiver import RTCRtpReceiver
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, unpack_remb_fci

from media import aiortc_internals
from media.plane import MediaPlane
from media.rtp_forward import RtpForwarder
from media.rtp_payload import starts_frame, starts_keyframe, vp8_descriptor_size
from tests.media.test_forwarding import INVITE, start_call
from tests.support.rtc_bots import Bot, claimant_bot, pattern


async def test_the_private_aiortc_names_forwarding_reads_are_where_it_expects() -> None:
    await aiortc_internals.check()


def _payloads(encoder: Any, keyframe: bool) -> list[bytes]:
    frame = av.VideoFrame.from_ndarray(pattern(), format="rgb24").reformat(format="yuv420p")
    frame.pts, frame.time_base = 0, Fraction(1, 90_000)
    payloads, _ = encoder.encode(frame, force_keyframe=keyframe)
    assert payloads
    return list(payloads)


@pytest.mark.parametrize(("codec", "encoder"), [("vp8", Vp8Encoder), ("h264", H264Encoder)])
def test_keyframe_starts_are_read_from_real_packetised_frames(codec: str, encoder: Any) -> None:
    enc = encoder()
    key = _payloads(enc, keyframe=True)
    delta = _payloads(enc, keyframe=False)
    assert starts_keyframe(codec, key[0]) and starts_frame(codec, key[0])
    assert not any(starts_keyframe(codec, p) for p in key[1:])  # only where a decoder can begin
    assert not any(starts_keyframe(codec, p) for p in delta)
    assert starts_frame(codec, delta[0])
    assert starts_keyframe("opus", b"\x01") and not starts_keyframe("vp8", b"")


def test_vp8_descriptor_sizes_follow_rfc_7741() -> None:
    assert vp8_descriptor_size(b"\x10\x00") == 1  # no extension
    assert vp8_descriptor_size(b"\x90\x80\x05\x00") == 3  # 7-bit picture id
    assert vp8_descriptor_size(b"\x90\x80\x85\x05\x00") == 4  # 15-bit picture id
    assert vp8_descriptor_size(b"\x90\xe0\x85\x05\x01\x02\x00") == 6  # picture id, TL0PICIDX, TID
    assert vp8_descriptor_size(b"\x90\x80") == 0  # truncated: not a keyframe start
    assert not starts_keyframe("vp8", b"\x90\x80")


def _forwarder(plane: MediaPlane, kind: str = "video") -> RtpForwarder:
    media = plane.call(INVITE)
    assert media is not None
    [peer] = [p for p in media.peers.values() if p.role == "inspector"]
    [forwarder] = [f for _, f in peer.rtp_forwards if f.kind == kind]
    return forwarder


def _video_receiver(bot: Bot) -> RTCRtpReceiver:
    [receiver] = [r for r in bot.pc.getReceivers() if r.track.kind == "video"]
    return receiver


async def _until(check: Callable[[], bool], what: str, within_s: float = 10.0) -> None:
    for _ in range(int(within_s / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {within_s} s")


async def test_a_new_inspector_gets_packets_from_a_keyframe_on(plane: MediaPlane, bots: Callable[[Bot], Bot]) -> None:
    _, inspector = await start_call(plane, bots)
    inspector.sinks["video"].keep = True
    await inspector.wait_for("video", 20)
    assert inspector.sinks["video"].kept[0].is_keyframe
    assert _forwarder(plane).forwarded >= 20


async def test_a_reconnecting_claimant_is_swapped_in_under_the_inspectors_track(
    plane: MediaPlane, bots: Callable[[Bot], Bot]
) -> None:
    """A new peer connection from the claimant: the inspector keeps his track and sees no jump."""
    claimant, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 30)
    receiver = _video_receiver(inspector)
    nack = aiortc_internals.receiver_nack_generator(receiver)
    assert nack is not None
    await claimant.close()  # the phone's network is gone: nothing from the old peer any more
    await asyncio.sleep(0.7)
    before_seq, before_keyframes = nack.max_seq, inspector.sinks["video"].keyframes
    assert before_seq is not None
    again = bots(claimant_bot())
    await again.connect(lambda sdp: plane.negotiate(INVITE, "sid-claimant-2", "claimant", sdp))
    await plane.drop(INVITE, "sid-claimant")
    await inspector.wait_for("video", inspector.sinks["video"].packets + 30)
    assert inspector.sinks["video"].keyframes > before_keyframes  # resumed at a keyframe
    stats = aiortc_internals.receiver_stream_stats(receiver)
    assert len(stats) == 1  # one stream, one SSRC, for the whole call
    [stream] = stats.values()
    # The new upstream's sequence numbers were renumbered to follow on: nothing looks lost.
    assert stream.packets_lost == 0, f"the inspector saw a gap of {stream.packets_lost} packets"
    assert nack.missing == set()


async def test_a_lost_packet_is_sent_again_over_rtx(plane: MediaPlane, bots: Callable[[Bot], Bot]) -> None:
    _, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 30)
    receiver = _video_receiver(inspector)
    nack = aiortc_internals.receiver_nack_generator(receiver)
    assert nack is not None and nack.max_seq is not None
    [ssrc] = aiortc_internals.receiver_stream_stats(receiver)
    forwarder = _forwarder(plane)
    seq = (nack.max_seq - 3) & 0xFFFF
    await receiver._send_rtcp_nack(ssrc, [seq])
    await receiver._send_rtcp_nack(ssrc, [(seq + 40_000) & 0xFFFF])  # never sent: nothing to answer
    await _until(lambda: forwarder.retransmitted == 1, "the retransmission")
    await asyncio.sleep(0.2)
    assert forwarder.retransmitted == 1
    rtx_streams = [s for s in aiortc_internals.receiver_stream_stats(receiver) if s != ssrc]
    assert rtx_streams, "the packet did not come back on the RTX stream"


async def test_the_inspectors_bandwidth_estimate_reaches_the_claimant(
    plane: MediaPlane, bots: Callable[[Bot], Bot]
) -> None:
    claimant, inspector = await start_call(plane, bots)
    [sender] = [s for s in claimant.pc.getSenders() if s.track is not None and s.track.kind == "video"]
    heard: list[int] = []
    original = sender._handle_rtcp_packet

    async def listening(packet: Any) -> None:
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
            if sender._ssrc in ssrcs:
                heard.append(bitrate)
        await original(packet)

    sender._handle_rtcp_packet = listening  # type: ignore[method-assign]
    await inspector.wait_for("video", 30)
    forwarder = _forwarder(plane)
    await _until(lambda: forwarder.remb_bps is not None, "the inspector's REMB", within_s=15)
    await _until(lambda: bool(heard), "the REMB relayed to the claimant", within_s=5)
    assert forwarder.remb_bps is not None and min(heard) > 0


async def test_the_claimants_rtp_skips_aiortcs_reader_task(plane: MediaPlane, bots: Callable[[Bot], Bot]) -> None:
    """His packets are handled in the socket's read callback; only DTLS, STUN and RTCP take aiortc's queue."""
    _, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 60)
    media = plane.call(INVITE)
    assert media is not None
    [claimant] = [p for p in media.peers.values() if p.role == "claimant"]
    tapped = sum(tap.packets for tap in claimant.taps)
    queued = claimant.taps[0].receiver.transport._RTCDtlsTransport__rx_packets  # type: ignore[attr-defined]
    assert tapped >= 60 and queued < tapped / 4, f"{queued} of {tapped} packets went through aiortc's reader"


async def test_a_hole_upstream_is_renumbered_away_and_video_resumes_at_a_keyframe(
    plane: MediaPlane, bots: Callable[[Bot], Bot]
) -> None:
    """Packets lost for good between the claimant and the server (his network came back on the old peer)."""
    _, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 30)
    media = plane.call(INVITE)
    assert media is not None
    publish = media.video.publish_rtp
    media.video.publish_rtp = lambda *args: None  # type: ignore[method-assign]  # the hole: 1.2 s never arrive
    await asyncio.sleep(1.2)
    before = inspector.sinks["video"].keyframes
    media.video.publish_rtp = publish  # type: ignore[method-assign]
    # Within 3 s, well before an aiortc receiver waiting on the hole would give up on it.
    await inspector.wait_for("video", inspector.sinks["video"].packets + 20, within_s=3)
    assert inspector.sinks["video"].keyframes > before
    receiver = _video_receiver(inspector)
    [stream] = aiortc_internals.receiver_stream_stats(receiver).values()
    assert stream.packets_lost == 0, f"the inspector saw a hole of {stream.packets_lost} packets"


async def test_a_held_call_outlives_its_last_peer_until_released(plane: MediaPlane, bots: Callable[[Bot], Bot]) -> None:
    """A recording holds the call's media while everyone is away (the claimant in his reconnect grace)."""
    _, inspector = await start_call(plane, bots)
    await inspector.wait_for("video", 10)
    media = plane.call(INVITE)
    assert media is not None
    media.held = True
    await plane.drop(INVITE, "sid-inspector")
    await plane.drop(INVITE, "sid-claimant")
    assert plane.call(INVITE) is media and media.empty  # still open, nobody in it
    again = bots(claimant_bot())
    await again.connect(lambda sdp: plane.negotiate(INVITE, "sid-claimant-2", "claimant", sdp))
    assert plane.call(INVITE) is media  # back into the same publishers
    await _until(lambda: media.video.rtp_packets > 0 and media.video.upstream is not None, "his video")
    await plane.drop(INVITE, "sid-claimant-2")
    await plane.release(INVITE)
    assert plane.call(INVITE) is None  # released with nobody in it: closed
