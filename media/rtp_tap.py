"""The claimant's side of RTP forwarding: his receivers' packets, handled as they arrive.

An `UpstreamTap` takes over an aiortc receiver's packet handling. It keeps what the receiver owes
the claimant's browser (RTCP statistics for receiver reports, RTX unwrapping, NACKs for lost
packets) and hands each packet to the publisher, which forwards it to every inspector at once.
Frames are reassembled (aiortc's jitter buffer, as before) only while something needs whole frames:
a recording, a pending screenshot, the naive relay. Without those the packet is never copied.

Bandwidth: aiortc's own estimate (REMB from arrival times) is not computed; the publisher passes
the inspectors' estimates upstream instead, as an SFU does, so the claimant's camera adapts to the
inspectors' links rather than to the server's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from aiortc import RTCRtpReceiver
from aiortc.codecs import depayload, is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtcrtpparameters import RTCRtpCodecParameters
from aiortc.rtcrtpreceiver import StreamStatistics, TimestampMapper
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, pack_remb_fci, unwrap_rtx

from media.aiortc_internals import (
    receiver_codecs,
    receiver_nack_generator,
    receiver_rtcp_ssrc,
    receiver_rtx_ssrc,
    receiver_stream_stats,
)
from media.fanout import Publisher
from media.passthrough import PassthroughDecoder
from media.rtp_payload import starts_frame, starts_keyframe, vp8_descriptor_size


class _Frames:
    """Reassembly of one upstream stream into whole encoded frames, as aiortc's receiver does it."""

    def __init__(self, kind: str, codec: RTCRtpCodecParameters, ssrc: int) -> None:
        # The same buffers as aiortc's receiver, so the recording's timing assumptions hold.
        if kind == "audio":
            self.buffer = JitterBuffer(capacity=16, prefetch=4)
        else:
            self.buffer = JitterBuffer(capacity=512, is_video=True)
        self.times = TimestampMapper()
        self.decoder = PassthroughDecoder(codec)
        self.payload_type = codec.payloadType
        self.ssrc = ssrc


class UpstreamTap:
    def __init__(self, receiver: RTCRtpReceiver, publisher: Publisher) -> None:
        self.kind = publisher.kind
        self.receiver = receiver
        self._publisher = publisher
        self._codecs = receiver_codecs(receiver)
        self._names: dict[int, str] = {}
        self._is_rtx: dict[int, bool] = {}  # by payload type: is_rtx() lowers a string per call
        self._rtx = receiver_rtx_ssrc(receiver)
        self._nack = receiver_nack_generator(receiver)
        self._stats = receiver_stream_stats(receiver)
        self._frames: _Frames | None = None
        self._rtcp: set[asyncio.Task[None]] = set()
        self.ssrc: int | None = None
        self.packets = 0
        receiver._handle_rtp_packet = self._handle  # type: ignore[method-assign]

    async def _handle(self, packet: RtpPacket, arrival_time_ms: int) -> None:
        """aiortc's own route, for packets that came before `receive_rtp_directly` was in place."""
        self.handle(packet)

    def handle(self, packet: RtpPacket) -> None:
        receiver = self.receiver
        if not receiver._enabled:
            return
        codec = self._codecs.get(packet.payload_type)
        if codec is None:
            return
        stats = self._stats.get(packet.ssrc)
        if stats is None:
            stats = self._stats[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        rtx = self._is_rtx.get(packet.payload_type)
        if rtx is None:
            rtx = self._is_rtx[packet.payload_type] = is_rtx(codec)
        if rtx:
            original = self._rtx.get(packet.ssrc)
            apt = codec.parameters.get("apt")
            if original is None or len(packet.payload) < 2 or not isinstance(apt, int) or apt not in self._codecs:
                return
            packet = unwrap_rtx(packet, payload_type=apt, ssrc=original)
            codec = self._codecs[apt]
        nack = self._nack
        if nack is not None and nack.add(packet):
            self._send(receiver._send_rtcp_nack(packet.ssrc, sorted(nack.missing)))
        now = time.monotonic()
        publisher = self._publisher
        if not publisher.claim(self, now):
            return  # another peer of the claimant is the live one
        self.ssrc = packet.ssrc
        self.packets += 1
        name = self._names.get(packet.payload_type)
        if name is None:
            name = self._names[packet.payload_type] = codec.name.lower()
        keyframe = self.kind == "video" and starts_keyframe(name, packet.payload)
        publisher.publish_rtp(packet, keyframe, now)
        if publisher.wants_frames:
            self._assemble(codec, name, packet)
        else:
            self._frames = None

    def _assemble(self, codec: RTCRtpCodecParameters, name: str, packet: RtpPacket) -> None:
        frames = self._frames
        if frames is None or frames.ssrc != packet.ssrc or frames.payload_type != codec.payloadType:
            if self.kind == "video" and not starts_frame(name, packet.payload):
                return  # begin at a frame's first packet, never half-way through one
            frames = self._frames = _Frames(self.kind, codec, packet.ssrc)
        if name == "vp8":
            # The frame is the payloads without their descriptors; no descriptor object is needed.
            size = vp8_descriptor_size(packet.payload)
            if not size:
                return
            packet._data = packet.payload[size:]  # type: ignore[attr-defined]
        else:
            try:
                packet._data = depayload(codec, packet.payload) if packet.payload else b""  # type: ignore[attr-defined]
            except ValueError:
                return
        lost, frame = frames.buffer.add(packet)
        if lost:
            self._publisher.request_keyframe()
        if frame is not None:
            frame.timestamp = frames.times.map(frame.timestamp)
            for encoded in frames.decoder.decode(frame):
                self._publisher.publish(encoded)

    def send_pli(self) -> None:
        if self.ssrc is not None:
            self._send(self.receiver._send_rtcp_pli(self.ssrc))

    def send_remb(self, bitrate_bps: int) -> None:
        rtcp_ssrc = receiver_rtcp_ssrc(self.receiver)
        if self.ssrc is None or rtcp_ssrc is None:
            return
        fci = pack_remb_fci(bitrate_bps, [self.ssrc])
        self._send(self.receiver._send_rtcp(RtcpPsfbPacket(fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=fci)))

    def _send(self, sending: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(sending)
        self._rtcp.add(task)
        task.add_done_callback(self._rtcp.discard)

    def close(self) -> None:
        self._publisher.release(self)
        for task in self._rtcp:
            task.cancel()
