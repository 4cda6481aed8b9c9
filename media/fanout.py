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
from typing import Any, Generic, TypeVar

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

log = logging.getLogger(__name__)

T = TypeVar("T")

QUEUE_PACKETS = 120  # ~4 s of video at 30 fps; a subscriber further behind drops, never stalls others


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


async def pump(source: MediaStreamTrack, deliver: Callable[[av.Packet[Any]], None]) -> None:
    """Hand every packet of a received track to `deliver` until the track ends."""
    while True:
        try:
            packet = await source.recv()
        except MediaStreamError:
            return
        if isinstance(packet, av.Packet):  # always, with the passthrough tap installed
            deliver(packet)


class Publisher:
    """One received track, read once, offered to every subscriber."""

    def __init__(self, kind: str, requester: KeyframeRequester | None = None) -> None:
        self.kind = kind
        self._requester = requester
        self._subscribers: set[ForwardTrack] = set()
        self._taps: set[asyncio.Queue[av.Packet[Any]]] = set()
        self.packets = 0
        self.keyframes = 0

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
        """A raw queue of every packet from now on (recording, screenshots); remove with untap."""
        q: asyncio.Queue[av.Packet[Any]] = asyncio.Queue(QUEUE_PACKETS * 4)
        self._taps.add(q)
        return q

    def untap(self, q: asyncio.Queue[av.Packet[Any]]) -> None:
        self._taps.discard(q)

    def request_keyframe(self) -> None:
        if self._requester is not None:
            self._requester.request()

    def publish(self, packet: av.Packet[Any]) -> None:
        self.packets += 1
        if self.kind == "video" and packet.is_keyframe:
            self.keyframes += 1
        for track in self._subscribers:
            track.offer(packet)
        for q in self._taps:
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(packet)

    async def pump(self, source: MediaStreamTrack) -> None:
        """Read the received track until it ends; run as a task owned by the call."""
        await pump(source, self.publish)

    def close(self) -> None:
        for track in list(self._subscribers):
            self.unsubscribe(track)
