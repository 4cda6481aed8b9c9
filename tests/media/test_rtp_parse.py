"""The forwarding path's RTP parser agrees with aiortc's on every packet aiortc accepts."""

from __future__ import annotations

import struct

from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
from aiortc.rtp import HeaderExtensionsMap, RtpPacket
from hypothesis import given, settings
from hypothesis import strategies as st

from media.aiortc_internals import parse_rtp

AUDIO_LEVEL_ID, MID_ID = 1, 3


def extension_map() -> HeaderExtensionsMap:
    extensions = HeaderExtensionsMap()
    extensions.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=AUDIO_LEVEL_ID, uri="urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
                RTCRtpHeaderExtensionParameters(id=MID_ID, uri="urn:ietf:params:rtp-hdrext:sdes:mid"),
            ]
        )
    )
    return extensions


element = st.one_of(
    st.tuples(st.just(AUDIO_LEVEL_ID), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just(MID_ID), st.text("0123456789abc", min_size=1, max_size=4).map(str.encode)),
    st.tuples(st.integers(4, 14), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just(0), st.just(b"")),  # a padding byte
)


@st.composite
def packets(draw: st.DrawFn) -> bytes:
    csrcs = draw(st.lists(st.integers(0, 2**32 - 1), max_size=3))
    elements = draw(st.lists(element, max_size=4))
    ext = b"".join(bytes([(i << 4) | (len(v) - 1)]) + v if i else b"\0" for i, v in elements)
    ext += b"\0" * (-len(ext) % 4)
    has_ext = draw(st.booleans()) and bool(ext)
    padding = draw(st.integers(0, 8))
    first = 0x80 | (0x20 if padding else 0) | (0x10 if has_ext else 0) | len(csrcs)
    head = struct.pack("!BBHII", first, draw(st.integers(0, 255)), draw(st.integers(0, 0xFFFF)),
                       draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)))
    head += b"".join(struct.pack("!I", c) for c in csrcs)
    if has_ext:
        head += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    data = head + draw(st.binary(max_size=40))
    if padding:
        data += b"\0" * (padding - 1) + bytes([padding])
    cut = draw(st.one_of(st.none(), st.integers(0, len(data))))  # damaged: cut short anywhere
    return data if cut is None else data[:cut]


@settings(max_examples=400, deadline=None)
@given(packets())
def test_lean_parse_matches_aiortc(data: bytes) -> None:
    try:
        theirs = RtpPacket.parse(data, extension_map())
    except (ValueError, struct.error):
        return  # refused by aiortc; the lean parser may keep it (it reads fewer extensions)
    ours = parse_rtp(data, AUDIO_LEVEL_ID)
    fields = ("version", "marker", "payload_type", "sequence_number", "timestamp", "ssrc", "csrc", "payload",
              "padding_size")
    assert [getattr(ours, f) for f in fields] == [getattr(theirs, f) for f in fields]
    assert ours.extensions.audio_level == theirs.extensions.audio_level


def test_damaged_packets_are_refused_with_a_value_error() -> None:
    good = struct.pack("!BBHII", 0x80, 111, 1, 2, 3) + b"payload"
    for bad in (b"", good[:11], bytes([0x40]) + good[1:], bytes([0x83]) + good[1:12],
                bytes([0x90]) + good[1:12] + b"\xbe\xde", bytes([0x90]) + good[1:12] + b"\xbe\xde\x00\x05",
                bytes([0xA0]) + good[1:-1] + b"\x00", bytes([0xA0]) + good[1:-1] + b"\x7f"):
        try:
            parse_rtp(bad, AUDIO_LEVEL_ID)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")
