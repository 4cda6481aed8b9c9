"""Checks on offers from clients, and what the server reads from them."""

from __future__ import annotations

import re

from rooms.errors import RoomsError

MAX_SDP_BYTES = 32 * 1024


class BadSdp(RoomsError):
    code = "invalid_sdp"


def check_offer(sdp: object) -> str:
    """A plausible SDP offer, or BadSdp before aiortc's parser ever sees it."""
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise BadSdp("the offer must be an SDP text starting with v=0")
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise BadSdp(f"the offer is larger than {MAX_SDP_BYTES} bytes")
    if "\x00" in sdp or "m=" not in sdp:
        raise BadSdp("the offer has no media section")
    return sdp


def _sections(sdp: str) -> list[str]:
    parts = re.split(r"\r?\n(?=m=)", sdp)
    return [p for p in parts if p.startswith("m=")]


def media_ssrc(sdp: str, kind: str) -> int | None:
    """The SSRC of a section's media stream, not its retransmission (RTX) stream.

    With RTX the `ssrc-group:FID` line lists the media SSRC first; picking any `a=ssrc` line can
    land on the RTX one, and a keyframe request sent there is ignored by the browser.
    """
    for section in _sections(sdp):
        if not section.startswith(f"m={kind} "):
            continue
        fid = re.search(r"^a=ssrc-group:FID (\d+)", section, re.M)
        if fid:
            return int(fid.group(1))
        first = re.search(r"^a=ssrc:(\d+)", section, re.M)
        if first:
            return int(first.group(1))
    return None


def offered_codecs(sdp: str, kind: str) -> list[str]:
    """Codec names of a section in the offer's order of preference (lower-case)."""
    for section in _sections(sdp):
        if section.startswith(f"m={kind} "):
            return [m.group(1).lower() for m in re.finditer(r"^a=rtpmap:\d+ ([A-Za-z0-9\-]+)/", section, re.M)]
    return []
