"""Encoded frames as `av.Packet`s, never decoded.

`PassthroughDecoder` stands where aiortc's decoder would and wraps an encoded frame from a jitter
buffer in an `av.Packet[Any]` marked keyframe or not. The call's taps (media/rtp_tap.py) use it to
hand whole frames to the recording, screenshots and the voice mixer. `install()` also puts it in
aiortc's decoder factory, process-wide, so no aiortc receiver in this process ever decodes (a safety
net for the server; what lets the tests' and the benchmark's bots count frames cheaply). Pixels for
screenshots are decoded on demand from one keyframe.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av
from aiortc import rtcrtpreceiver
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters


def is_vp8_keyframe(data: bytes) -> bool:
    # VP8 frame tag, RFC 6386 9.1: the lowest bit is 0 for a key frame.
    return len(data) > 0 and data[0] & 0x01 == 0


def _h264_nal_types(annexb: bytes) -> list[int]:
    types = []
    i = annexb.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(annexb):
        types.append(annexb[i + 3] & 0x1F)
        i = annexb.find(b"\x00\x00\x01", i + 3)
    return types


def is_h264_keyframe(annexb: bytes) -> bool:
    # An IDR slice (5) makes the access unit decodable on its own (with SPS 7 / PPS 8 before it).
    return 5 in _h264_nal_types(annexb)


class PassthroughDecoder:
    """Stands where aiortc's decoder would: returns the encoded frame as one av.Packet[Any]."""

    def __init__(self, codec: RTCRtpCodecParameters) -> None:
        self.codec_name = codec.name.lower()
        self.time_base = Fraction(1, codec.clockRate)

    def decode(self, encoded_frame: JitterFrame) -> list[av.Packet[Any]]:
        data = encoded_frame.data
        packet = av.Packet(data)
        packet.pts = encoded_frame.timestamp
        packet.dts = encoded_frame.timestamp
        packet.time_base = self.time_base
        if self.codec_name == "vp8":
            packet.is_keyframe = is_vp8_keyframe(data)
        elif self.codec_name == "h264":
            packet.is_keyframe = is_h264_keyframe(data)
        else:
            packet.is_keyframe = True  # audio frames all stand alone
        return [packet]


def _passthrough_decoder(codec: RTCRtpCodecParameters) -> PassthroughDecoder:
    return PassthroughDecoder(codec)


def install() -> None:
    """Make every aiortc receiver in this process yield encoded packets; idempotent."""
    # aiortc types the factory as returning its Decoder; ours returns packets on purpose.
    rtcrtpreceiver.get_decoder = _passthrough_decoder  # type: ignore[attr-defined,assignment]


def installed() -> bool:
    return getattr(rtcrtpreceiver, "get_decoder", None) is _passthrough_decoder
