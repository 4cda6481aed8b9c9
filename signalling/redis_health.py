"""AsyncRedisManager with a health watch (python-socketio issue #1581).

The stock listener can end for good, or stay subscribed to a connection that no longer delivers,
and nothing says so. The watch publishes a probe through Redis and expects to hear it back on
this node's own listener; a dead or deaf listener is logged and restarted with a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import socketio

log = logging.getLogger(__name__)

PROBE_METHOD = "claimcam_probe"
_PROBE_MARK = PROBE_METHOD.encode()


class WatchedRedisManager(socketio.AsyncRedisManager):
    thread: asyncio.Task[None] | None  # the listener task, set by the base class's initialize()
    redis: Any  # the base class's current client and its pub/sub, replaced on every reconnect
    pubsub: Any

    def __init__(self, url: str, channel: str = "claimcam") -> None:
        super().__init__(url, channel=channel)
        # python-socketio calls initialize(), which starts the listener, only when the first client
        # connects; until then there is no listener to watch.
        self.thread = None
        self._probe_token = ""
        self._probe_heard = asyncio.Event()
        self._replaced: list[Any] = []  # clients the base class replaced on a reconnect, still open
        self._closed = False
        self.healthy = True
        self.restarts = 0

    def _redis_connect(self) -> None:
        # The base class makes a new client on every (re)connect and drops the old one unclosed;
        # remember it, so restarting or closing can close it.
        if self.redis is not None:
            self._replaced.append(self.redis)
        super()._redis_connect()

    async def _publish(self, data: Any) -> Any:
        if self._closed:
            return None  # shut down: publishing now would only open a connection nobody closes
        return await super()._publish(data)

    async def _listen(self) -> AsyncIterator[Any]:
        async for message in super()._listen():
            # Only a message carrying the probe's name is parsed here; everything else passes
            # through untouched (other nodes ignore the unknown method too).
            if isinstance(message, bytes | str) and _PROBE_MARK in (
                message if isinstance(message, bytes) else message.encode()
            ):
                with contextlib.suppress(ValueError):
                    data = json.loads(message)
                    if data.get("method") == PROBE_METHOD:
                        if data.get("token") == self._probe_token:
                            self._probe_heard.set()
                        continue
            yield message

    async def probe(self, timeout_s: float) -> bool:
        """Publish a probe and wait for this node's listener to receive it."""
        self._probe_token = uuid.uuid4().hex
        self._probe_heard.clear()
        await self._publish({"method": PROBE_METHOD, "token": self._probe_token, "host_id": self.host_id})
        try:
            await asyncio.wait_for(self._probe_heard.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def restart_listener(self) -> None:
        await self._stop_listener()
        self.restarts += 1
        self.thread = self.server.start_background_task(self._thread)

    async def close(self) -> None:
        """Stop the listener and close every Redis connection; nothing is published afterwards."""
        self._closed = True
        await self._stop_listener()

    async def _stop_listener(self) -> None:
        thread = self.thread
        if thread is not None and not thread.done():
            thread.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await thread
        # The current client too: the stopped listener's subscription lives on one of these, and
        # the publisher simply reconnects on its next message.
        clients = [*self._replaced, self.redis]
        self._replaced = []
        self.redis = self.pubsub = None
        self.connected = False
        for client in clients:
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()

    async def watch(self, interval_s: float = 5.0, timeout_s: float = 3.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            thread = self.thread
            if thread is None:
                continue  # not started yet: no client has connected to this node so far
            if thread.done():
                problem = "the Socket.IO Redis listener has stopped"
            elif not await self.probe(timeout_s):
                problem = "the Socket.IO Redis listener did not hear its own probe"
            else:
                if not self.healthy:
                    log.warning("Socket.IO Redis fan-out works again")
                self.healthy = True
                continue
            if self.healthy:
                # Log the change of state once, not every interval of an outage.
                log.error("%s; restarting it on a new connection", problem)
            self.healthy = False
            await self.restart_listener()
