"""Forwarding the claimant's RTP packets to an inspector as they arrive, SFU-style.

aiortc's own path for a forwarded packet is long: the receiver's jitter buffer reassembles frames,
a decoder thread wraps each one, a track queue carries it, and the inspector's sender packetises
it again, each step in Python and two of them across threads. An `RtpForwarder` skips all of it:
the packet, already decrypted and parsed, gets the downstream sender's SSRC, payload type, sequence
number and timestamp offsets, is encrypted and sent at once, without an await.

It stays a well-behaved RTP sender:
- a new receiver, and one that fell behind, starts at the first packet of a keyframe;
- sequence numbers and timestamps run on across a change of upstream (a claimant who reconnected
  with a new peer connection), so the inspector's browser sees one continuous stream;
- it answers NACKs from its own history, over RTX when negotiated;
- aiortc's sender still sends the RTCP sender reports, from counters fed here;
- the inspector's bandwidth estimate (REMB) is kept for the publisher to pass upstream.
The aiortc sender is negotiated as usual around a `SilentTrack` that never yields.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpSendParameters
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, RtpPacket, unpack_remb_fci

from media.aiortc_internals import NTP_UNIX_OFFSET_S, SenderState, send_rtp_now

log = logging.getLogger(__name__)

HISTORY = 1024  # packets kept for NACKs: about 3 s of 2.5 Mbit/s video
SR_MARK_INTERVAL_S = 0.5
KEYFRAME_ASK_INTERVAL_S = 0.5  # while waiting for a keyframe
# A hole in the upstream's sequence this large (or after this long a silence) will not be filled by
# the claimant's retransmissions: renumbered away, video resuming at a keyframe, so no receiver waits
# for packets nobody has (an aiortc receiver's jitter buffer would stall until it overflowed).
GAP_PACKETS = 64
GAP_SILENCE_S = 1.0  # sender reports go out about once a second
_HEADER = struct.Struct("!BBHII")
_SEQ = struct.Struct("!H")


class SilentTrack(MediaStreamTrack):
    """Stands in a forwarding sender so that aiortc negotiates it; the forwarder does the sending."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._ended = asyncio.Event()

    async def recv(self) -> Any:
        await self._ended.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._ended.set()


def abs_send_time(now_unix_s: float) -> int:
    """The abs-send-time extension's 6.18 fixed-point seconds."""
    return int((now_unix_s + NTP_UNIX_OFFSET_S) * (1 << 18)) & 0xFFFFFF


class _Wire:
    """The header pieces of one started sender that do not change from packet to packet."""

    def __init__(self, state: SenderState) -> None:
        self.state = state
        elements = []
        mid = (state.mid or "").encode()
        # One-byte header extensions (RFC 8285) carry ids 1-14 and values up to 16 bytes.
        self.one_byte = (
            all(0 <= i <= 14 for i in (state.mid_id, state.abs_send_time_id, state.audio_level_id)) and len(mid) <= 16
        )
        if state.mid_id and mid:
            elements.append(bytes([(state.mid_id << 4) | (len(mid) - 1)]) + mid)
        self.mid_element = b"".join(elements)
        self.abs_id_byte = (state.abs_send_time_id << 4) | 2 if state.abs_send_time_id else 0
        self.level_id_byte = (state.audio_level_id << 4) if state.audio_level_id else 0

    def header(
        self, payload_type: int, marker: int, seq: int, ts: int, ssrc: int, sent_at: int, level: int | None
    ) -> bytes:
        ext = self.mid_element
        if self.abs_id_byte:
            ext += bytes((self.abs_id_byte, sent_at >> 16, (sent_at >> 8) & 0xFF, sent_at & 0xFF))
        if level is not None and self.level_id_byte:
            ext += bytes((self.level_id_byte, level))
        if not ext:
            return _HEADER.pack(0x80, (marker << 7) | payload_type, seq, ts, ssrc)
        ext += b"\0" * (-len(ext) % 4)
        return (
            _HEADER.pack(0x90, (marker << 7) | payload_type, seq, ts, ssrc)
            + struct.pack("!HH", 0xBEDE, len(ext) // 4)
            + ext
        )


class RtpForwarder:
    """One inspector's sender for one of the claimant's tracks, fed packet by packet."""

    def __init__(self, kind: str, sender: RTCRtpSender, request_keyframe: Callable[[], None]) -> None:
        self.kind = kind
        self._request_keyframe = request_keyframe
        self._wire: _Wire | None = None
        self._waiting_keyframe = kind == "video"
        self._in_ssrc: int | None = None
        self._last_in_seq = 0
        self._seq_offset = 0
        self._ts_offset = 0
        self._next_seq = 0
        self._last_ts = 0
        self._last_sent = 0.0
        self._next_mark = 0.0
        self._next_keyframe_ask = 0.0
        self._history: list[tuple[bytes, int] | None] = [None] * HISTORY
        self._pending: set[asyncio.Task[None]] = set()
        self.forwarded = 0
        self.dropped = 0
        self.retransmitted = 0
        self.remb_bps: int | None = None
        self.on_remb: Callable[[], None] | None = None
        self._hook(sender)

    def _hook(self, sender: RTCRtpSender) -> None:
        start = sender.send
        handle_rtcp = sender._handle_rtcp_packet

        async def send(parameters: RTCRtpSendParameters) -> None:
            await start(parameters)
            state = SenderState(sender, parameters.codecs[0])
            self._next_seq = sender._ssrc & 0x7FFF  # a random start, kept below 2^15 like aiortc's
            self._wire = _Wire(state)
            if self.kind == "video":
                # Asked now that the inspector can receive it, not at negotiation: a keyframe that
                # came before his transport was up would be dropped, and the next wait a rate limit.
                self.request_keyframe()

        async def on_rtcp(packet: Any) -> None:
            if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                self._take_remb(packet)
            await handle_rtcp(packet)

        sender.send = send  # type: ignore[method-assign]
        sender._handle_rtcp_packet = on_rtcp  # type: ignore[method-assign]
        sender._retransmit = self._retransmit  # type: ignore[method-assign]
        # A downstream keyframe request (PLI/FIR from the browser) goes upstream, rate-limited.
        sender._send_keyframe = self.request_keyframe  # type: ignore[method-assign]

    def request_keyframe(self) -> None:
        self._request_keyframe()

    def _take_remb(self, packet: RtcpPsfbPacket) -> None:
        wire = self._wire
        try:
            bitrate, ssrcs = unpack_remb_fci(packet.fci)
        except ValueError:
            return
        if wire is not None and wire.state.ssrc in ssrcs:
            self.remb_bps = bitrate
            if self.on_remb is not None:
                self.on_remb()

    def forward(self, packet: RtpPacket, keyframe_start: bool, now: float) -> None:
        wire = self._wire
        if wire is None:
            return  # not negotiated and connected yet
        if packet.ssrc != self._in_ssrc:
            self._rebase(packet, wire, now)
        else:
            gap = (packet.sequence_number - self._last_in_seq) & 0xFFFF
            if 1 < gap < 0x8000 and (gap > GAP_PACKETS or now - self._last_sent > GAP_SILENCE_S):
                self._rebase(packet, wire, now)
        self._last_in_seq = packet.sequence_number
        if self._waiting_keyframe:
            if not keyframe_start:
                self.dropped += 1
                if now >= self._next_keyframe_ask:
                    # Asked again while waiting: the first request may have gone out before the
                    # claimant's transport was up, and a lost one must not leave the picture frozen.
                    self._next_keyframe_ask = now + KEYFRAME_ASK_INTERVAL_S
                    self.request_keyframe()
                return
            self._waiting_keyframe = False
            self._seq_offset = (self._next_seq - packet.sequence_number) & 0xFFFF
        seq = (packet.sequence_number + self._seq_offset) & 0xFFFF
        if (seq - self._next_seq) & 0xFFFF < 0x8000:
            self._next_seq = (seq + 1) & 0xFFFF
        ts = (packet.timestamp + self._ts_offset) & 0xFFFFFFFF
        self._last_ts = ts
        self._last_sent = now
        plain, header_size = self._packet(packet, wire, seq, ts)
        self._history[seq % HISTORY] = (plain, header_size)
        state = wire.state
        if not send_rtp_now(state.sender.transport, plain, self._pending):
            self.dropped += 1
            return
        self.forwarded += 1
        state.count_sent(1, len(packet.payload))
        if now >= self._next_mark:
            self._next_mark = now + SR_MARK_INTERVAL_S
            state.mark_time(ts)

    def _packet(self, packet: RtpPacket, wire: _Wire, seq: int, ts: int) -> tuple[bytes, int]:
        """The packet as the inspector gets it, unencrypted, and the size of its header."""
        state = wire.state
        sent_at = abs_send_time(time.time())
        level = packet.extensions.audio_level
        if not wire.one_byte:
            # aiortc's own serialiser, for extension ids the one-byte form cannot carry.
            out = RtpPacket(payload_type=state.payload_type, marker=packet.marker, sequence_number=seq, timestamp=ts)
            out.ssrc = state.ssrc
            out.extensions.mid = state.mid
            out.extensions.abs_send_time = sent_at
            out.extensions.audio_level = level
            out.payload = packet.payload
            out.padding_size = packet.padding_size
            plain = out.serialize(state.extension_map)
            return plain, len(plain) - len(packet.payload) - packet.padding_size
        vad_level = None if level is None else (0x80 if level[0] else 0) | level[1]
        header = wire.header(state.payload_type, packet.marker, seq, ts, state.ssrc, sent_at, vad_level)
        if not packet.padding_size:
            return header + packet.payload, len(header)
        # Padding carries the sender's bandwidth probes: kept, with the P bit set.
        padding = b"\0" * (packet.padding_size - 1) + bytes((packet.padding_size,))
        return bytes((header[0] | 0x20,)) + header[1:] + packet.payload + padding, len(header)

    def _rebase(self, packet: RtpPacket, wire: _Wire, now: float) -> None:
        """A new upstream stream, or a hole in it: carry on the sequence and the clock from what was last sent."""
        if self._in_ssrc is None:
            self._ts_offset = 0
        else:
            elapsed = max(now - self._last_sent, 0.0)
            expected = self._last_ts + max(int(elapsed * wire.state.clock_rate), 1)
            self._ts_offset = (expected - packet.timestamp) & 0xFFFFFFFF
            if self.kind == "video":
                self._waiting_keyframe = True
                self.request_keyframe()
        self._seq_offset = (self._next_seq - packet.sequence_number) & 0xFFFF
        self._in_ssrc = packet.ssrc

    def wait_for_keyframe(self) -> None:
        """After a gap upstream: resume only where a decoder can."""
        if self.kind == "video":
            self._waiting_keyframe = True

    async def _retransmit(self, sequence_number: int) -> None:
        seq = sequence_number
        wire = self._wire
        kept = self._history[seq % HISTORY]
        if wire is None or kept is None:
            return
        plain, header_size = kept
        if _SEQ.unpack_from(plain, 2)[0] != seq:
            return  # overwritten by a newer packet
        state = wire.state
        if state.rtx_payload_type is not None:
            # RFC 4588: the RTX stream's own sequence and SSRC, the original sequence first in the payload.
            head = bytearray(plain[:header_size])
            head[0] &= 0xDF  # the padding, if any, is left out
            head[1] = (head[1] & 0x80) | state.rtx_payload_type
            struct.pack_into("!H", head, 2, state.next_rtx_sequence())
            struct.pack_into("!I", head, 8, state.rtx_ssrc)
            plain = bytes(head) + _SEQ.pack(seq) + _unpadded(plain, header_size)
        if send_rtp_now(state.sender.transport, plain, self._pending):
            self.retransmitted += 1

    def close(self) -> None:
        for task in self._pending:
            task.cancel()


def _unpadded(plain: bytes, header_size: int) -> bytes:
    end = len(plain) - plain[-1] if plain[0] & 0x20 else len(plain)
    return plain[header_size:end]
