"""The RTCP router that replaces aiortc's per transport routes every kind of packet as aiortc's does."""

from __future__ import annotations

from aiortc.rtcdtlstransport import RtpRouter
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    AnyRtcpPacket,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpReceiverInfo,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSenderInfo,
    RtcpSrPacket,
    pack_remb_fci,
)

from media.aiortc_internals import route_rtcp

RECEIVED, SENT, OTHER_SENT, UNKNOWN = 0x1111, 0x2222, 0x3333, 0x9999


def report(ssrc: int) -> RtcpReceiverInfo:
    return RtcpReceiverInfo(ssrc=ssrc, fraction_lost=0, packets_lost=0, highest_sequence=1, jitter=0, lsr=0, dlsr=0)


def packets() -> list[AnyRtcpPacket]:
    info = RtcpSenderInfo(ntp_timestamp=1, rtp_timestamp=2, packet_count=3, octet_count=4)
    return [
        RtcpSrPacket(ssrc=RECEIVED, sender_info=info, reports=[report(SENT), report(UNKNOWN)]),
        RtcpSrPacket(ssrc=UNKNOWN, sender_info=info),
        RtcpRrPacket(ssrc=UNKNOWN, reports=[report(SENT), report(OTHER_SENT)]),
        RtcpRrPacket(ssrc=UNKNOWN),
        RtcpByePacket(sources=[RECEIVED, UNKNOWN]),
        RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=UNKNOWN, media_ssrc=SENT),
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=UNKNOWN, media_ssrc=0, fci=pack_remb_fci(500_000, [SENT, OTHER_SENT])),
        RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=UNKNOWN, media_ssrc=0, fci=b"not a remb"),
        RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=UNKNOWN, media_ssrc=OTHER_SENT, lost=[5, 6]),
        RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=UNKNOWN, media_ssrc=UNKNOWN, lost=[5]),
    ]


def test_every_rtcp_packet_goes_where_aiortc_would_send_it() -> None:
    router = RtpRouter()
    receiver, sender, other = object(), object(), object()
    router.register_receiver(receiver, ssrcs=[RECEIVED], payload_types=[96])  # type: ignore[arg-type]
    router.register_sender(sender, SENT)  # type: ignore[arg-type]
    router.register_sender(other, OTHER_SENT)  # type: ignore[arg-type]
    routed = [route_rtcp(router, packet) for packet in packets()]
    assert routed == [router.route_rtcp(packet) for packet in packets()]
    # and not trivially: every recipient was reached by some packet, and some packets reach nobody
    assert {id(r) for recipients in routed for r in recipients} == {id(receiver), id(sender), id(other)}
    assert set() in routed
