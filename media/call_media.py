"""The server-side peers of one call on this node, and the forwarding between them.

The claimant publishes camera video and microphone audio; every inspector receives both,
forwarded packet by packet as they arrive (media/rtp_tap.py, media/rtp_forward.py); the inspectors'
voice goes back to the claimant through the voice mixer (forwarded the same way while only one
speaks). Each participant has one RTCPeerConnection; the browser offers and the server answers.
With the relay `naive` (benchmarks only) the inspectors get the claimant's media decoded and
encoded again instead (media/naive.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.codecs import is_rtx
from aiortc.rtcpeerconnection import filter_preferred_codecs
from aiortc.rtcrtpparameters import RTCRtpCodecCapability
from aiortc.rtp import RtpPacket

from media.aiortc_internals import receive_rtp_directly
from media.fanout import KeyframeRequester, Publisher
from media.mixer import VoiceInput, VoiceMixer
from media.naive import DecodingRelay, FrameTrack
from media.rtp_forward import RtpForwarder, SilentTrack
from media.rtp_tap import UpstreamTap
from media.sdp import BadSdp, check_offer, media_ssrc, offered_codecs

log = logging.getLogger(__name__)

CLAIMANT = "claimant"
INSPECTOR = "inspector"
VIDEO_CODECS = ("vp8", "h264")
PASSTHROUGH = "passthrough"  # the claimant's encoded media forwarded as it is
NAIVE = "naive"  # decoded and encoded again for every inspector (media/naive.py), for benchmarks
RELAY_MODES = (PASSTHROUGH, NAIVE)


def _prefer(transceiver: RTCRtpTransceiver, codec: str) -> None:
    """Answer with `codec` first (what the call forwards), whatever order the offer listed.

    aiortc (1.16) settles a transceiver's codecs inside setRemoteDescription, in the offer's order,
    so preferences set afterwards would not reach the answer: a browser listing VP8 first would get
    H.264 packets in a VP8 packetiser. Applied here to the settled list.
    """
    transceiver.setCodecPreferences(_codec_preferences(codec))
    chosen = filter_preferred_codecs(transceiver._codecs, transceiver._preferred_codecs)
    if not any(not is_rtx(c) for c in chosen):
        raise BadSdp(f"the offer cannot receive this call's video codec ({codec.upper()})")
    transceiver._codecs = chosen


def _codec_preferences(name: str) -> list[RTCRtpCodecCapability]:
    """The named codec first, its RTX retransmission kept so NACK recovery still works."""
    caps = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in caps if c.mimeType.lower() == f"video/{name}"]
    return chosen + [c for c in caps if c.mimeType.lower() == "video/rtx"]


def _receive_directly(taps: list[UpstreamTap]) -> None:
    """The claimant's packets go from the socket straight to his taps (one transport when bundled)."""
    by_transport: dict[int, tuple[RTCDtlsTransport, dict[object, Callable[[RtpPacket], None]]]] = {}
    for tap in taps:
        dtls = tap.receiver.transport
        by_transport.setdefault(id(dtls), (dtls, {}))[1][tap.receiver] = tap.handle
    for dtls, handlers in by_transport.values():
        receive_rtp_directly(dtls, handlers)


@dataclass
class Peer:
    sid: str
    role: str
    pc: RTCPeerConnection
    rtp_forwards: list[tuple[Publisher, RtpForwarder]] = field(default_factory=list)
    taps: list[UpstreamTap] = field(default_factory=list)
    decoded: list[tuple[DecodingRelay, FrameTrack]] = field(default_factory=list)  # naive relay only
    video_receiver: Any = None  # the claimant's: where keyframe requests go
    video_ssrc: int | None = None


class CallMedia:
    def __init__(
        self, invite_id: str, configuration: RTCConfiguration, preferred_codec: str = "vp8", relay: str = PASSTHROUGH
    ) -> None:
        if relay not in RELAY_MODES:
            raise ValueError(f"relay must be one of {', '.join(RELAY_MODES)}, not {relay!r}")
        self.invite_id = invite_id
        self.relay = relay
        # Held (by a recording) the call's media stays open with nobody in it: a claimant in his
        # reconnect grace comes back into the same publishers and the same recording.
        self.held = False
        self._configuration = configuration
        self.codec = preferred_codec
        self._peers: dict[str, Peer] = {}
        self._lock = asyncio.Lock()
        self._pli_tasks: set[asyncio.Task[None]] = set()
        self.keyframes = KeyframeRequester(self._send_pli)
        self.video = Publisher("video", self.keyframes)
        self.audio = Publisher("audio")
        self.voice = Publisher("audio")  # the inspectors' voices, for the claimant
        self.mixer = VoiceMixer(self.voice)
        self._decoding: dict[str, DecodingRelay] = {}
        if relay == NAIVE:
            self._decoding = {
                "video": DecodingRelay(self.video, lambda: self.codec),
                "audio": DecodingRelay(self.audio, lambda: "opus"),
            }

    @property
    def peers(self) -> dict[str, Peer]:
        return dict(self._peers)

    def _claimant(self) -> Peer | None:
        return next((p for p in self._peers.values() if p.role == CLAIMANT and p.video_receiver is not None), None)

    def _send_pli(self) -> None:
        if self.video.upstream is not None:
            self.video.upstream.send_pli()
            return
        claimant = self._claimant()
        if claimant is None or claimant.video_ssrc is None:
            return
        task = asyncio.get_running_loop().create_task(claimant.video_receiver._send_rtcp_pli(claimant.video_ssrc))
        self._pli_tasks.add(task)
        task.add_done_callback(self._pli_tasks.discard)

    async def negotiate(self, sid: str, role: str, offer_sdp: object) -> str:
        """Answer a participant's offer; a new offer from the same socket replaces its old peer.

        The new peer is built first and swapped in only when the answer succeeded, so a bad
        re-offer never costs a working connection.
        """
        sdp = check_offer(offer_sdp)
        async with self._lock:
            peer = Peer(sid, role, RTCPeerConnection(self._configuration))
            try:
                answer = await self._answer(peer, sdp)
            except BadSdp:
                await self._teardown(peer)
                raise
            except Exception as e:
                await self._teardown(peer)
                # aiortc's parser raises ValueError and friends on hostile SDP.
                raise BadSdp(f"the offer could not be used: {type(e).__name__}") from None
            old = self._peers.get(sid)
            self._peers[sid] = peer
            if old is not None:
                await self._teardown(old)
            return answer

    async def _answer(self, peer: Peer, sdp: str) -> str:
        pc = peer.pc
        if peer.role == CLAIMANT:
            offered = offered_codecs(sdp, "video")
            if offered and self.codec not in offered:
                usable = [c for c in VIDEO_CODECS if c in offered]
                if not usable:
                    raise BadSdp("the offer has no video codec the server forwards (VP8 or H.264)")
                self.codec = usable[0]

            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    _prefer(transceiver, self.codec)
                    peer.video_receiver = transceiver.receiver
                    peer.video_ssrc = media_ssrc(sdp, "video")
                if transceiver.kind in ("video", "audio"):
                    publisher = self.video if transceiver.kind == "video" else self.audio
                    peer.taps.append(UpstreamTap(transceiver.receiver, publisher))
            self._attach_rtp(peer, self.voice, "audio")
        else:
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
            for transceiver in pc.getTransceivers():
                if transceiver.kind == "video":
                    _prefer(transceiver, self.codec)
                if transceiver.kind == "audio":
                    peer.taps.append(UpstreamTap(transceiver.receiver, VoiceInput(peer.sid, self.mixer)))
            if self.relay == NAIVE:
                self._attach_decoded(peer, "video")
                self._attach_decoded(peer, "audio")
            else:
                self._attach_rtp(peer, self.video, "video")
                self._attach_rtp(peer, self.audio, "audio")
        answer = await pc.createAnswer()
        await pc.setLocalDescription(answer)  # gathers: the ICE sockets exist from here on
        if peer.taps:
            _receive_directly(peer.taps)
        return str(pc.localDescription.sdp)

    def _attach_rtp(self, peer: Peer, publisher: Publisher, kind: str) -> None:
        if not any(t.kind == kind for t in peer.pc.getTransceivers()):
            return
        sender = peer.pc.addTrack(SilentTrack(kind))
        peer.rtp_forwards.append((publisher, publisher.forward_to(sender)))

    def _attach_decoded(self, peer: Peer, kind: str) -> None:
        if not any(t.kind == kind for t in peer.pc.getTransceivers()):
            return
        relay = self._decoding[kind]
        track = relay.subscribe()
        # aiortc's own keyframe handling stays: a PLI from the inspector makes his encoder send one.
        peer.pc.addTrack(track)
        peer.decoded.append((relay, track))

    async def drop(self, sid: str) -> None:
        async with self._lock:
            await self._drop(sid)

    async def _drop(self, sid: str) -> None:
        peer = self._peers.pop(sid, None)
        if peer is not None:
            await self._teardown(peer)

    async def _teardown(self, peer: Peer) -> None:
        sid = peer.sid
        for publisher, forwarder in peer.rtp_forwards:
            publisher.stop_forwarding(forwarder)
        for tap in peer.taps:
            tap.close()
        for relay, frames in peer.decoded:
            relay.unsubscribe(frames)
        await peer.pc.close()
        if sid not in self._peers:  # gone, not replaced by a re-offer from the same socket
            self.mixer.remove(sid)

    @property
    def has_claimant_video(self) -> bool:
        return self._claimant() is not None

    @property
    def empty(self) -> bool:
        return not self._peers

    async def close(self) -> None:
        async with self._lock:
            for sid in list(self._peers):
                await self._drop(sid)
        for relay in self._decoding.values():
            await relay.close()
        self.keyframes.close()
        self.video.close()
        self.audio.close()
        self.voice.close()
        for task in list(self._pli_tasks):
            task.cancel()
