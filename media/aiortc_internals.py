"""The few private parts of aiortc (1.16) and aioice (0.13) that RTP forwarding needs, in one place.

Forwarding packets below aiortc's jitter buffer and packetiser (media/rtp_forward.py) needs what
aiortc keeps private: a receiver's codecs, RTX map, NACK generator and RTCP statistics, and a
sender's SSRCs, payload types, header extension ids and sender-report counters. Every name is
read here and nowhere else. `check()` fails loudly if an upgrade moved one; the tests run it
(tests/media/test_rtp_forwarding.py) and pyproject.toml pins both minor versions, so a dependency
bump cannot silently break calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import struct
import time
from asyncio.selector_events import _SelectorDatagramTransport  # type: ignore[attr-defined]
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aioice.ice import StunProtocol
from aiortc import RTCDtlsTransport, RTCRtpReceiver, RTCRtpSender, clock
from aiortc.rtcdtlstransport import RtpRouter, State
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import NackGenerator, StreamStatistics
from aiortc.rtp import (
    RTCP_PSFB_APP,
    AnyRtcpPacket,
    HeaderExtensions,
    RtcpByePacket,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    unpack_remb_fci,
)

log = logging.getLogger(__name__)

NTP_UNIX_OFFSET_S = 2_208_988_800  # 1900-01-01 to 1970-01-01
DRAIN_DATAGRAMS = 64  # read per wake-up of one socket, at most
_RTP_FIXED = struct.Struct("!BBHII")
_RTP_EXTENSION = struct.Struct("!HH")
_NO_EXTENSIONS = HeaderExtensions()  # shared by every packet without an audio level: read, never written

RECEIVER_FIELDS = ("codecs", "rtx_ssrc", "nack_generator", "remote_streams", "rtcp_ssrc", "active_ssrc")
SENDER_FIELDS = (
    "mid", "rtx_payload_type", "rtp_header_extensions_map", "ntp_timestamp", "rtp_timestamp",
    "octet_count", "packet_count", "rtx_sequence_number", "started",
)  # fmt: skip


def _get(obj: object, owner: str, name: str) -> Any:
    return getattr(obj, f"_{owner}__{name}")


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    codecs: dict[int, RTCRtpCodecParameters] = _get(receiver, "RTCRtpReceiver", "codecs")
    return codecs


def receiver_rtx_ssrc(receiver: RTCRtpReceiver) -> dict[int, int]:
    rtx: dict[int, int] = _get(receiver, "RTCRtpReceiver", "rtx_ssrc")
    return rtx


def receiver_nack_generator(receiver: RTCRtpReceiver) -> NackGenerator | None:
    generator: NackGenerator | None = _get(receiver, "RTCRtpReceiver", "nack_generator")
    return generator


def receiver_stream_stats(receiver: RTCRtpReceiver) -> dict[int, StreamStatistics]:
    """What the receiver's RTCP receiver reports are made from; fed by whoever handles its packets."""
    stats: dict[int, StreamStatistics] = _get(receiver, "RTCRtpReceiver", "remote_streams")
    return stats


def receiver_rtcp_ssrc(receiver: RTCRtpReceiver) -> int | None:
    ssrc: int | None = _get(receiver, "RTCRtpReceiver", "rtcp_ssrc")
    return ssrc


class SenderState:
    """A started RTCRtpSender's wire identity, read once when aiortc starts it."""

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self.sender = sender
        if codec.payloadType is None:
            raise ValueError("a started sender always has a negotiated payload type")
        self.payload_type: int = codec.payloadType
        self.clock_rate = codec.clockRate
        self.ssrc: int = sender._ssrc
        self.rtx_ssrc: int = sender._rtx_ssrc
        self.mid: str | None = _get(sender, "RTCRtpSender", "mid")
        self.rtx_payload_type: int | None = _get(sender, "RTCRtpSender", "rtx_payload_type")
        self.extension_map = _get(sender, "RTCRtpSender", "rtp_header_extensions_map")
        ids = _get(self.extension_map, "HeaderExtensionsMap", "ids")
        self.mid_id: int = ids.mid or 0
        self.abs_send_time_id: int = ids.abs_send_time or 0
        self.audio_level_id: int = ids.audio_level or 0

    def next_rtx_sequence(self) -> int:
        name = "_RTCRtpSender__rtx_sequence_number"
        seq: int = getattr(self.sender, name)
        setattr(self.sender, name, (seq + 1) & 0xFFFF)
        return seq

    def count_sent(self, packets: int, octets: int) -> None:
        """Feed the counters aiortc's RTCP sender reports carry."""
        s = self.sender
        s._RTCRtpSender__packet_count += packets  # type: ignore[attr-defined]
        s._RTCRtpSender__octet_count += octets  # type: ignore[attr-defined]

    def mark_time(self, rtp_timestamp: int) -> None:
        """Pair an RTP time with the wall clock for the sender report (what lip sync is built on)."""
        ntp = int((time.time() + NTP_UNIX_OFFSET_S) * (1 << 32))
        self.sender._RTCRtpSender__ntp_timestamp = ntp  # type: ignore[attr-defined]
        self.sender._RTCRtpSender__rtp_timestamp = rtp_timestamp  # type: ignore[attr-defined]


def send_rtp_now(dtls: RTCDtlsTransport, plain: bytes, pending: set[asyncio.Task[None]]) -> bool:
    """Encrypt and send one RTP packet without awaiting; False when the transport cannot send.

    aiortc's path is three nested coroutines per packet; for a host candidate pair it ends in one
    `sendto`, which this calls directly. A relayed pair (TURN) goes through aioice's coroutine, as
    a task kept in `pending` until it ran (tasks start in the order they were made).
    """
    if dtls._state is not State.CONNECTED:
        return False
    pair = dtls.transport._connection._nominated.get(1)
    if pair is None:
        return False
    data = dtls._tx_srtp.protect(plain)
    protocol = pair.protocol
    if type(protocol) is StunProtocol:
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return False
        transport.sendto(data, pair.remote_addr)
        return True
    task = asyncio.ensure_future(protocol.send_data(data, pair.remote_addr))
    pending.add(task)
    task.add_done_callback(functools.partial(_sent, pending))
    return True


def _sent(pending: set[asyncio.Task[None]], task: asyncio.Task[None]) -> None:
    pending.discard(task)
    if not task.cancelled() and task.exception() is not None:
        # A TURN allocation going away mid-call: the ICE layer reports it; one packet is lost.
        log.debug("relayed RTP send failed: %s", task.exception())


def receive_rtp_directly(dtls: RTCDtlsTransport, handlers: dict[object, Callable[[RtpPacket], None]]) -> None:
    """Hand the connected transport's RTP packets to `handlers` inside the socket's read callback.

    aiortc's path for each datagram: aioice tries to parse it as STUN (an exception for every RTP
    packet), queues it, wakes the DTLS transport's reader task, which decrypts, parses and awaits
    the receiver. Here an RTP datagram (first two bits 10, not an RTCP type) is decrypted, parsed
    and handled at once; STUN, DTLS and RTCP keep aiortc's path. A packet for a receiver without a
    handler goes to that receiver as aiortc would send it.
    """
    connection = dtls.transport._connection
    queue_datagram = connection.data_received
    loop = asyncio.get_running_loop()
    untapped: set[asyncio.Task[None]] = set()

    ids = _get(dtls._rtp_header_extensions_map, "HeaderExtensionsMap", "ids")

    def data_received(data: bytes, component: int) -> None:
        srtp = dtls._rx_srtp
        if len(data) < 12 or data[0] & 0xC0 != 0x80 or 192 <= data[1] <= 223 or srtp is None:
            queue_datagram(data, component)
            return
        try:
            plain = srtp.unprotect(data)
            packet = parse_rtp(plain, ids.audio_level or 0)
        except (pylibsrtp.Error, ValueError):
            return  # what aiortc does with a packet it cannot decrypt or parse
        receiver = dtls._rtp_router.route_rtp(packet)
        handler = handlers.get(receiver)
        if handler is not None:
            handler(packet)
        elif receiver is not None:
            # aiortc's receiver reads every extension (its bandwidth estimate needs abs-send-time)
            full = RtpPacket.parse(plain, dtls._rtp_header_extensions_map)
            task = loop.create_task(receiver._handle_rtp_packet(full, arrival_time_ms=clock.current_ms()))
            untapped.add(task)
            task.add_done_callback(untapped.discard)

    connection.data_received = data_received  # type: ignore[method-assign]
    for protocol in connection._protocols:
        _skip_stun_parsing(protocol, data_received)
        _read_every_datagram(protocol)
    router = dtls._rtp_router
    router.route_rtcp = functools.partial(route_rtcp, router)  # type: ignore[method-assign]


def parse_rtp(data: bytes, audio_level_id: int) -> RtpPacket:
    """aiortc's `RtpPacket.parse` for forwarding: the same checks, but of the header extensions only
    the audio level (id `audio_level_id`, 0 for none) is read, the one a forwarder passes on.

    aiortc's parse builds a dict-like object of seven extensions and decodes the `mid` string of
    every packet; forwarding needs none of that. A packet for a receiver without a tap is parsed
    again in full (`receive_rtp_directly`).
    """
    size = len(data)
    if size < 12:
        raise ValueError("RTP packet length is less than 12 bytes")
    first, second, seq, ts, ssrc = _RTP_FIXED.unpack_from(data)
    if first >> 6 != 2:
        raise ValueError("RTP packet has invalid version")
    csrcs = first & 0x0F
    pos = 12 + 4 * csrcs
    if size < pos:
        raise ValueError("RTP packet has truncated CSRC")
    packet = RtpPacket.__new__(RtpPacket)
    packet.version = 2
    packet.marker = second >> 7
    packet.payload_type = second & 0x7F
    packet.sequence_number = seq
    packet.timestamp = ts
    packet.ssrc = ssrc
    packet.csrc = list(struct.unpack_from(f"!{csrcs}I", data, 12)) if csrcs else []
    packet.extensions = _NO_EXTENSIONS
    if first & 0x10:
        if size < pos + 4:
            raise ValueError("RTP packet has truncated extension profile / length")
        profile, words = _RTP_EXTENSION.unpack_from(data, pos)
        pos += 4
        end = pos + 4 * words
        if size < end:
            raise ValueError("RTP packet has truncated extension value")
        if audio_level_id and profile == 0xBEDE:
            level = _one_byte_audio_level(data, pos, end, audio_level_id)
            if level is not None:
                packet.extensions = HeaderExtensions(audio_level=level)
        pos = end
    if first & 0x20:
        padding = data[-1]
        if not padding or padding > size - pos:
            raise ValueError("RTP packet padding length is invalid")
        packet.padding_size = padding
        packet.payload = data[pos:-padding]
    else:
        packet.padding_size = 0
        packet.payload = data[pos:]
    return packet


def _one_byte_audio_level(data: bytes, pos: int, end: int, wanted: int) -> tuple[bool, int] | None:
    """The (voice activity, level) of RFC 6464 from one-byte header extensions (RFC 8285)."""
    level = None
    while pos < end:
        head = data[pos]
        pos += 1
        if head == 0:
            continue  # padding
        length = (head & 0x0F) + 1
        if end < pos + length:
            raise ValueError("RTP one-byte header extension value is truncated")
        if head >> 4 == wanted:
            level = bool(data[pos] & 0x80), data[pos] & 0x7F
        pos += length
    return level


def route_rtcp(router: RtpRouter, packet: AnyRtcpPacket) -> set[Any]:
    """aiortc 1.16's `RtpRouter.route_rtcp`, without the annotated closure it defines per packet.

    Python evaluates that closure's `Optional[Union[...]]` annotation on every call: typing's cache
    lookups were 2.5 % of the event loop's time in `bench calls`, more than the routing itself.
    """
    recipients: set[Any] = set()
    if isinstance(packet, RtcpSrPacket):
        recipients.add(router.ssrc_table.get(packet.ssrc))
    elif isinstance(packet, RtcpByePacket):
        recipients.update(router.ssrc_table.get(source) for source in packet.sources)
    if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        recipients.update(router.senders.get(report.ssrc) for report in packet.reports)
    elif isinstance(packet, RtcpPsfbPacket | RtcpRtpfbPacket):
        recipients.add(router.senders.get(packet.media_ssrc))
        if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
            # REMB: media_ssrc is 0, the senders are in the FCI
            with contextlib.suppress(ValueError):
                recipients.update(router.senders.get(ssrc) for ssrc in unpack_remb_fci(packet.fci)[1])
    recipients.discard(None)
    return recipients


def _skip_stun_parsing(protocol: Any, data_received: Callable[[bytes, int], None]) -> None:
    stun_path = protocol.datagram_received
    component = protocol.local_candidate.component

    def datagram_received(data: bytes, addr: tuple[Any, ...]) -> None:
        if data and data[0] & 0xC0 == 0x80:  # RTP or RTCP; STUN starts with 00, DTLS with 20-63
            data_received(data, component)
        else:
            stun_path(data, addr)

    protocol.datagram_received = datagram_received


def _read_every_datagram(protocol: Any) -> None:
    """Read what a host candidate's socket holds at each wake-up, not one datagram per event-loop turn.

    asyncio's datagram transport reads one datagram per readiness event, so each packet of a video
    frame's burst costs an `epoll_wait` and a turn of the loop. Draining the socket (up to
    DRAIN_DATAGRAMS, so one busy socket cannot starve the others) cut the receive cost per datagram
    from 23 to 5 us in bursts of 7 (bench: a loopback sender, 16 sockets, process CPU per datagram).
    """
    transport = protocol.transport
    if type(protocol) is not StunProtocol or type(transport) is not _SelectorDatagramTransport:
        return  # a TURN allocation's protocol, or another loop's transport: asyncio's own reads
    sock = transport._sock
    loop = transport._loop
    # The transport registered its own reader; the private pair skips the public API's refusal of a
    # transport's descriptor. `transport.close()` removes whichever reader is there, as before.
    loop._remove_reader(sock.fileno())
    loop._add_reader(sock.fileno(), _read_ready, transport, sock)


def _read_ready(transport: Any, sock: socket.socket) -> None:
    """asyncio's `_SelectorDatagramTransport._read_ready`, in a loop."""
    for _ in range(DRAIN_DATAGRAMS):
        if transport._conn_lost or transport._closing:
            return
        try:
            data, addr = sock.recvfrom(transport.max_size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            transport._protocol.error_received(exc)
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            transport._fatal_error(exc, "Fatal read error on datagram transport")
            return
        transport._protocol.datagram_received(data, addr)


async def check() -> None:
    """Raise if the private names this project reads are not where aiortc 1.16 keeps them."""
    from aiortc import RTCCertificate, RTCIceGatherer, RTCIceTransport

    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [RTCCertificate.generateCertificate()])
    receiver = RTCRtpReceiver("video", dtls)
    sender = RTCRtpSender("video", dtls)
    for name in RECEIVER_FIELDS:
        _get(receiver, "RTCRtpReceiver", name)
    for name in SENDER_FIELDS:
        _get(sender, "RTCRtpSender", name)
    _get(_get(sender, "RTCRtpSender", "rtp_header_extensions_map"), "HeaderExtensionsMap", "ids")
    for name in ("_state", "_tx_srtp", "_rx_srtp", "transport", "_rtp_router", "_rtp_header_extensions_map"):
        getattr(dtls, name)
    for table in ("ssrc_table", "senders"):
        assert isinstance(getattr(dtls._rtp_router, table), dict)
    assert isinstance(dtls.transport._connection._protocols, list)
    dtls.transport._connection.data_received  # noqa: B018 - that it exists is the check
    assert isinstance(dtls.transport._connection._nominated, dict)
    loop = asyncio.get_running_loop()
    for method in ("_add_reader", "_remove_reader"):
        getattr(loop, method)
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    try:
        assert type(transport) is _SelectorDatagramTransport
        for name in ("_sock", "_loop", "_protocol", "_conn_lost", "_closing", "max_size", "_fatal_error"):
            getattr(transport, name)
    finally:
        transport.close()
    for method in ("_handle_rtp_packet", "_send_rtcp", "_send_rtcp_nack", "_send_rtcp_pli"):
        getattr(receiver, method)
    for method in ("_handle_rtcp_packet", "_retransmit", "_send_keyframe", "send"):
        getattr(sender, method)
