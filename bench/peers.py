"""Headless call participants for load: cheap to run, speaking the real protocol.

- A claimant sends a looped pre-encoded camera clip and microphone tone (`LoopTrack`: aiortc
  packetises the `av.Packet`s it yields and never encodes) and receives the inspector's voice.
- An inspector receives the claimant's video and audio without decoding (the passthrough tap of
  `media.passthrough`, installed process-wide by `install_passthrough`) and sends a tone.
- `CallSocket` is the Socket.IO side: python-socketio on `/call` over WebSocket, `join`,
  `rtc_offer` with the answer in the acknowledgement.

Every peer is given its ICE servers explicitly: aiortc would add a public STUN server otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import socketio
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.clips import Clip
from media import passthrough

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 5.0


def install_passthrough() -> None:
    """Received tracks of this process yield encoded packets: the inspectors count, never decode."""
    passthrough.install()


def rtc_configuration(ice_servers: list[dict[str, Any]]) -> RTCConfiguration:
    """The server's `/ice-servers` answer as an aiortc configuration; an empty list stays empty (no STUN)."""
    servers = []
    for s in ice_servers:
        urls = s.get("urls")
        urls_list = [urls] if isinstance(urls, str) else list(urls or [])
        servers.append(RTCIceServer(urls=urls_list, username=s.get("username"), credential=s.get("credential")))
    return RTCConfiguration(iceServers=servers)


class LoopTrack(MediaStreamTrack):
    """Plays a clip's encoded frames in real time, in a loop, as `av.Packet`s (no encoding at all).

    Time stamps keep growing across loops. `request_keyframe` (wired to the sender's keyframe hook:
    a PLI or FIR from the server) makes the next packet the clip's next keyframe.
    """

    def __init__(self, clip: Clip) -> None:
        super().__init__()
        self.kind = clip.kind
        self.clip = clip
        self._time_base = Fraction(1, clip.clock_rate)
        self._index = 0
        self._ticks = 0
        self._start: float | None = None
        self._jump = False
        self.sent = 0
        self.keyframe_requests = 0

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._jump = True

    async def recv(self) -> av.Packet[Any]:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        else:
            delay = self._start + self._ticks / self.clip.clock_rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        if self._jump:
            self._jump = False
            self._index = self.clip.keyframe_from(self._index)
        frame = self.clip.frames[self._index]
        packet = av.Packet(frame.data)
        packet.pts = packet.dts = self._ticks
        packet.time_base = self._time_base
        packet.is_keyframe = frame.keyframe
        self._ticks += frame.duration
        self._index = (self._index + 1) % len(self.clip.frames)
        self.sent += 1
        return packet


@dataclass
class Counter:
    """What one received track delivered: encoded frames (one packet per frame from the passthrough tap)."""

    frames: int = 0
    keyframes: int = 0
    bytes: int = 0
    first_at: float | None = None  # event-loop time of the first frame
    first: asyncio.Event = field(default_factory=asyncio.Event)

    async def drain(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                item = await track.recv()
            except MediaStreamError:
                return
            self.frames += 1
            if isinstance(item, av.Packet):
                self.bytes += item.size
                self.keyframes += int(item.is_keyframe)
            if self.first_at is None:
                self.first_at = loop.time()
                self.first.set()


Answerer = Callable[[str], Awaitable[str]]


class RtcBot:
    """One RTCPeerConnection to the server's peer; counts what it receives per kind."""

    def __init__(self, configuration: RTCConfiguration) -> None:
        self.pc = RTCPeerConnection(configuration)
        self.received: dict[str, Counter] = {"video": Counter(), "audio": Counter()}
        self.sending: list[LoopTrack] = []
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            counter = self.received.get(track.kind)
            if counter is not None:
                self._tasks.append(asyncio.get_running_loop().create_task(counter.drain(track)))

    async def negotiate(self, answer: Answerer) -> None:
        offer = await self.pc.createOffer()
        await self.pc.setLocalDescription(offer)  # aiortc gathers every candidate here: no trickle
        answer_sdp = await answer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer_sdp, "answer"))

    @property
    def connection_state(self) -> str:
        return str(self.pc.connectionState)

    async def close(self) -> None:
        for track in self.sending:
            track.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.pc.close(), CLOSE_TIMEOUT_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _prefer(transceiver: Any, kind: str, codec: str) -> None:
    """Offer only `codec` (plus RTX for video), as a browser restricted to it would."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    keep = [c for c in caps if c.mimeType.lower() in (f"{kind}/{codec}", f"{kind}/rtx")]
    transceiver.setCodecPreferences(keep)


def claimant_bot(configuration: RTCConfiguration, video: Clip, audio: Clip) -> RtcBot:
    """Camera out (sendonly video), microphone out and the inspector's voice in (sendrecv audio)."""
    bot = RtcBot(configuration)
    camera, microphone = LoopTrack(video), LoopTrack(audio)
    bot.sending += [camera, microphone]
    video_tx = bot.pc.addTransceiver(camera, direction="sendonly")
    _prefer(video_tx, "video", video.codec)
    # Keyframe requests from the server reach the sender here; jump to the clip's next keyframe.
    video_tx.sender._send_keyframe = camera.request_keyframe  # type: ignore[method-assign]
    audio_tx = bot.pc.addTransceiver(microphone, direction="sendrecv")
    _prefer(audio_tx, "audio", audio.codec)
    return bot


def inspector_bot(configuration: RTCConfiguration, audio: Clip) -> RtcBot:
    """Video in (recvonly), the claimant's audio in and a tone out (sendrecv audio)."""
    bot = RtcBot(configuration)
    microphone = LoopTrack(audio)
    bot.sending.append(microphone)
    bot.pc.addTransceiver("video", direction="recvonly")
    audio_tx = bot.pc.addTransceiver(microphone, direction="sendrecv")
    _prefer(audio_tx, "audio", audio.codec)
    return bot


class SignallingError(Exception):
    """A refused connection, an error acknowledgement, a timeout or a lost socket."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class CallSocket:
    """A python-socketio client on `/call` (WebSocket transport, no reconnection)."""

    NAMESPACE = "/call"

    def __init__(self, role: str, request_timeout_s: float = 10.0) -> None:
        self.role = role
        self.request_timeout_s = request_timeout_s
        # No SIGINT handler of its own: it would disconnect every client and cancel every task behind our back;
        # Ctrl-C goes to asyncio.run, which cancels the run, and the run closes everything in order.
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
        self.disconnected = asyncio.Event()
        self.call_ended: dict[str, Any] | None = None
        self.captures = 0
        self._refusal: Any = None

        async def on_connect_error(data: Any = None) -> None:
            self._refusal = data

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        async def on_call_ended(data: Any = None) -> None:
            self.call_ended = data if isinstance(data, dict) else {}

        async def on_capture(_: Any = None) -> None:
            self.captures += 1

        self.sio.on("connect_error", on_connect_error, namespace=self.NAMESPACE)
        self.sio.on("disconnect", on_disconnect, namespace=self.NAMESPACE)
        self.sio.on("call_ended", on_call_ended, namespace=self.NAMESPACE)
        self.sio.on("capture", on_capture, namespace=self.NAMESPACE)

    async def connect(self, url: str, auth: dict[str, str], timeout_s: float = 10.0) -> None:
        try:
            await self.sio.connect(url, auth=auth, namespaces=[self.NAMESPACE], transports=["websocket"],
                                   wait_timeout=timeout_s)
        except socketio.exceptions.ConnectionError as e:
            data = self._refusal
            if isinstance(data, dict):
                inner = data.get("data")
                code = inner.get("code") if isinstance(inner, dict) else None
                raise SignallingError(str(code or "refused"), str(data.get("message", e))) from None
            raise SignallingError("connect_failed", str(e) or type(e).__name__) from None

    async def request(self, event: str, data: Any = None, timeout_s: float | None = None) -> dict[str, Any]:
        """Send an event and return its successful acknowledgement; an error one raises SignallingError."""
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        try:
            if data is None:
                ack = await self.sio.call(event, namespace=self.NAMESPACE, timeout=timeout)
            else:
                ack = await self.sio.call(event, data, namespace=self.NAMESPACE, timeout=timeout)
        except socketio.exceptions.TimeoutError:
            raise SignallingError("timeout", f"no acknowledgement of {event!r} within {timeout:g} s") from None
        except socketio.exceptions.SocketIOError as e:
            raise SignallingError("disconnected", f"{event!r} could not be sent: {e}") from None
        if not isinstance(ack, dict):
            raise SignallingError("invalid_ack", f"{event!r} was acknowledged with {type(ack).__name__}")
        if not ack.get("ok"):
            error = ack.get("error")
            err: dict[str, Any] = error if isinstance(error, dict) else {}
            raise SignallingError(str(err.get("code", "error")), str(err.get("message", "")))
        return ack

    async def offer(self, sdp: str) -> str:
        ack = await self.request("rtc_offer", {"type": "offer", "sdp": sdp})
        answer = ack.get("answer")
        if not isinstance(answer, dict) or not isinstance(answer.get("sdp"), str):
            raise SignallingError("invalid_ack", "the rtc_offer acknowledgement has no answer")
        return str(answer["sdp"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.sio.disconnect(), CLOSE_TIMEOUT_S)
        # engineio closes the HTTP session it made when it disconnects; make sure after a failed connect too.
        http = getattr(self.sio.eio, "http", None)
        if http is not None and not http.closed:
            with contextlib.suppress(Exception):
                await http.close()
