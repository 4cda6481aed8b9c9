"""What an RTP payload says about where it sits in a video frame, read from its first bytes.

A forwarder may start sending to a new receiver, or resume after a gap, only at the first packet
of a keyframe; these read that from the payload formats without depacketising anything.
"""

from __future__ import annotations

H264_IDR, H264_SPS, H264_STAP_A, H264_FU_A = 5, 7, 24, 28


def vp8_descriptor_size(payload: bytes) -> int:
    """Length of the VP8 payload descriptor (RFC 7741 4.2); 0 when the payload is too short."""
    n = len(payload)
    if n < 1:
        return 0
    size = 1
    if payload[0] & 0x80:  # X: an extension byte follows
        if n < 2:
            return 0
        x = payload[1]
        size = 2
        if x & 0x80:  # I: picture id, one byte or two (its M bit)
            if n <= size:
                return 0
            size += 2 if payload[size] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            size += 1
        if x & 0x30:  # T or K: one byte holds both
            size += 1
    return size if size < n else 0


def vp8_starts_frame(payload: bytes) -> bool:
    # S set and partition index 0: the first packet of a frame.
    return len(payload) > 0 and payload[0] & 0x17 == 0x10


def vp8_starts_keyframe(payload: bytes) -> bool:
    if not vp8_starts_frame(payload):
        return False
    size = vp8_descriptor_size(payload)
    # The VP8 frame tag's lowest bit is 0 for a key frame (RFC 6386 9.1).
    return size > 0 and payload[size] & 0x01 == 0


def h264_starts_keyframe(payload: bytes) -> bool:
    """A packet carrying an SPS or the start of an IDR slice: a decoder can begin here."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == H264_STAP_A:
        i = 1
        while i + 2 < len(payload):
            size = (payload[i] << 8) | payload[i + 1]
            if payload[i + 2] & 0x1F in (H264_SPS, H264_IDR):
                return True
            i += 2 + size
        return False
    if nal_type == H264_FU_A:
        return len(payload) > 1 and payload[1] & 0x80 != 0 and payload[1] & 0x1F in (H264_SPS, H264_IDR)
    return nal_type in (H264_SPS, H264_IDR)


def h264_starts_frame(payload: bytes) -> bool:
    """Any packet that begins a NAL unit other than a continuation; good enough to resync on."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type == H264_FU_A:
        return len(payload) > 1 and payload[1] & 0x80 != 0
    return True


def starts_keyframe(codec: str, payload: bytes) -> bool:
    """For audio every packet stands alone."""
    if codec == "vp8":
        return vp8_starts_keyframe(payload)
    if codec == "h264":
        return h264_starts_keyframe(payload)
    return True


def starts_frame(codec: str, payload: bytes) -> bool:
    if codec == "vp8":
        return vp8_starts_frame(payload)
    if codec == "h264":
        return h264_starts_frame(payload)
    return True
