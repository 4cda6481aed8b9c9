"""Fan-out of one upstream encoded track to many downstream senders.

A `Publisher` reads packets from a received track and offers each to its subscribers' queues.
A video subscriber starts at a keyframe (it asks for one when it joins) and, if it falls behind
and drops a packet, waits for the next keyframe again rather than show a smeared picture.
Keyframe requests from anywhere are merged and rate-limited before they reach the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

import av
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtp import RtpPacket

from media.rtp_forward import RtpForwarder

log = logging.getLogger(__name__)

T = TypeVar("T")

QUEUE_PACKETS = 120  # ~4 s of video at 30 fps; a subscriber further behind drops, never stalls others
UPSTREAM_SILENCE_S = 0.5  # a claimant's newer peer takes over once the live one has been quiet this long
REMB_INTERVAL_S = 1.0  # the inspectors' bandwidth estimate goes upstream at least this often while it changes
REMB_CHANGE = 0.03  # ... and at once when it moved by more than this fraction


class Upstream(Protocol):
    """Where a publisher's packets come from (media/rtp_tap.py): keyframe and bandwidth requests go there."""

    def send_pli(self) -> None: ...

    def send_remb(self, bitrate_bps: int) -> None: ...


class KeyframeRequester:
    """Sends at most one keyframe request per interval upstream.

    A request inside the interval is not lost: one trailing request goes out when the interval
    ends, however many came in it. Dropping it made a screenshot asked shortly after a recording
    started wait for the camera's next regular keyframe, seconds later (bench calls).
    """

    def __init__(
        self, send: Callable[[], None], min_interval_s: float = 0.25, now: Callable[[], float] = time.monotonic
    ) -> None:
        self._send = send
        self._min_interval = min_interval_s
        self._now = now
        self._last = float("-inf")
        self._trailing: asyncio.TimerHandle | None = None
        self.sent = 0

    def request(self) -> bool:
        """True when the request went out now; False when it waits for the interval's end."""
        now = self._now()
        if now - self._last < self._min_interval:
            if self._trailing is None:
                loop = asyncio.get_running_loop()
                self._trailing = loop.call_later(self._last + self._min_interval - now, self._fire)
            return False
        self._fire()
        return True

    def _fire(self) -> None:
        self._trailing = None
        self._last = self._now()
        self.sent += 1
        self._send()

    def close(self) -> None:
        if self._trailing is not None:
            self._trailing.cancel()
            self._trailing = None


class QueuedTrack(MediaStreamTrack, Generic[T]):
    """A downstream track fed by `put`: a bounded queue, so a slow consumer drops, never stalls the feeder."""

    def __init__(self, kind: str, size: int) -> None:
        super().__init__()
        self.kind = kind
        self._queue: asyncio.Queue[T | None] = asyncio.Queue(size)
        self.dropped = 0

    def put(self, item: T) -> bool:
        """False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def end(self) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        item = await self._queue.get()
        if item is None:
            self.stop()
            raise MediaStreamError
        return item


class ForwardTrack(QueuedTrack["av.Packet[Any]"]):
    """A downstream track that yields the publisher's encoded packets."""

    def __init__(self, kind: str, publisher: Publisher | None) -> None:
        super().__init__(kind, QUEUE_PACKETS)
        self._publisher = publisher
        self.needs_keyframe = kind == "video"
        self.forwarded = 0

    def offer(self, packet: av.Packet[Any]) -> None:
        if self.needs_keyframe:
            if not packet.is_keyframe:
                self.dropped += 1
                return
            self.needs_keyframe = False
        if not self.put(packet) and self.kind == "video":
            # The gap breaks the decoder's reference chain: skip to a fresh keyframe.
            self.needs_keyframe = True
            self.request_keyframe()

    def request_keyframe(self) -> None:
        if self._publisher is not None:
            self._publisher.request_keyframe()

    async def recv(self) -> Any:
        packet = await super().recv()
        self.forwarded += 1
        return packet


class Publisher:
    """One received track, offered to every subscriber.

    Two levels: RTP packets go to `RtpForwarder`s (media/rtp_forward.py) as they arrive; whole
    encoded frames go to listeners (called at once: the voice mixer, the recording), taps (queues:
    screenshots) and frame subscribers (the naive relay). The upstream makes frames only while
    `wants_frames`.
    """

    def __init__(self, kind: str, requester: KeyframeRequester | None = None) -> None:
        self.kind = kind
        self._requester = requester
        self._subscribers: set[ForwardTrack] = set()
        self._listeners: list[Callable[[av.Packet[Any]], None]] = []
        self._taps: set[asyncio.Queue[av.Packet[Any]]] = set()
        self._forwarders: list[RtpForwarder] = []
        self.upstream: Upstream | None = None
        self._upstream_seen = 0.0
        self._remb_sent: tuple[int, float] | None = None
        self.packets = 0
        self.keyframes = 0
        self.rtp_packets = 0

    @property
    def wants_frames(self) -> bool:
        return bool(self._subscribers or self._taps or self._listeners)

    def claim(self, upstream: Upstream, now: float) -> bool:
        """Whether `upstream`'s packets are the ones to publish now.

        A claimant's re-offer briefly leaves two peers sending; the older keeps the stream until it
        is released or goes quiet, so the forwarders never flip between two streams.
        """
        if upstream is not self.upstream:
            if self.upstream is not None and now - self._upstream_seen < UPSTREAM_SILENCE_S:
                return False
            self.upstream = upstream
        self._upstream_seen = now
        return True

    def release(self, upstream: Upstream) -> None:
        if self.upstream is upstream:
            self.upstream = None

    def forward_to(self, sender: RTCRtpSender) -> RtpForwarder:
        forwarder = RtpForwarder(self.kind, sender, self.request_keyframe)
        forwarder.on_remb = self._relay_remb
        self._forwarders.append(forwarder)
        return forwarder

    def stop_forwarding(self, forwarder: RtpForwarder) -> None:
        if forwarder in self._forwarders:
            self._forwarders.remove(forwarder)
        forwarder.close()

    def publish_rtp(self, packet: RtpPacket, keyframe_start: bool, now: float) -> None:
        self.rtp_packets += 1
        for forwarder in self._forwarders:
            forwarder.forward(packet, keyframe_start, now)

    def _relay_remb(self) -> None:
        """The lowest of the inspectors' estimates is what the claimant's camera should send."""
        estimates = [f.remb_bps for f in self._forwarders if f.remb_bps is not None]
        if not estimates or self.upstream is None:
            return
        bitrate, now = min(estimates), time.monotonic()
        if self._remb_sent is not None:
            last, at = self._remb_sent
            if abs(bitrate - last) <= last * REMB_CHANGE and now - at < REMB_INTERVAL_S:
                return
        self._remb_sent = (bitrate, now)
        self.upstream.send_remb(bitrate)

    def subscribe(self) -> ForwardTrack:
        track = ForwardTrack(self.kind, self)
        self._subscribers.add(track)
        if self.kind == "video":
            self.request_keyframe()  # a late joiner starts at the next keyframe, not in 2 s
        return track

    def unsubscribe(self, track: ForwardTrack) -> None:
        self._subscribers.discard(track)
        track.end()

    def tap(self) -> asyncio.Queue[av.Packet[Any]]:
        """A queue of every frame from now on (a screenshot waiting for its keyframe); remove with untap."""
        q: asyncio.Queue[av.Packet[Any]] = asyncio.Queue(QUEUE_PACKETS * 4)
        self._taps.add(q)
        return q

    def untap(self, q: asyncio.Queue[av.Packet[Any]]) -> None:
        self._taps.discard(q)

    def listen(self, listener: Callable[[av.Packet[Any]], None]) -> None:
        """`listener(frame)` for every frame from now on, called on the event loop; it must not block."""
        self._listeners.append(listener)

    def unlisten(self, listener: Callable[[av.Packet[Any]], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def request_keyframe(self) -> None:
        if self._requester is not None:
            self._requester.request()

    def publish(self, packet: av.Packet[Any]) -> None:
        self.packets += 1
        if self.kind == "video" and packet.is_keyframe:
            self.keyframes += 1
        for listener in self._listeners:
            listener(packet)
        for track in self._subscribers:
            track.offer(packet)
        for q in self._taps:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(packet)

    def close(self) -> None:
        for track in list(self._subscribers):
            self.unsubscribe(track)
        for forwarder in list(self._forwarders):
            self.stop_forwarding(forwarder)
        self.upstream = None
