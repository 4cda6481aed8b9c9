"""A python-socketio client that records what it receives and waits for it, with timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import socketio


class Refused(Exception):
    def __init__(self, message: str, data: Any) -> None:
        super().__init__(message)
        self.data = data

    @property
    def code(self) -> str | None:
        return self.data.get("code") if isinstance(self.data, dict) else None


class Peer:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: dict[str, list[Any]] = defaultdict(list)
        self._arrived = asyncio.Event()
        self._refusal: Any = None
        self.disconnected = asyncio.Event()

        async def on_any(event: str, data: Any = None) -> None:
            self.received[event].append(data)
            self._arrived.set()

        async def on_connect_error(data: Any) -> None:
            self._refusal = data

        async def on_disconnect(*_: Any) -> None:
            self.disconnected.set()

        self.sio.on("*", on_any, namespace=namespace)
        self.sio.on("connect_error", on_connect_error, namespace=namespace)
        self.sio.on("disconnect", on_disconnect, namespace=namespace)

    async def connect(self, url: str, auth: Any) -> None:
        try:
            await self.sio.connect(
                url, auth=auth, namespaces=[self.namespace], transports=["websocket"], wait_timeout=5
            )
        except socketio.exceptions.ConnectionError as e:
            data = self._refusal
            message = data.get("message", str(e)) if isinstance(data, dict) else str(e)
            raise Refused(message, data.get("data") if isinstance(data, dict) else data) from None

    async def call(self, event: str, data: Any = None, *extra: Any) -> Any:
        payload: Any = (data, *extra) if extra else data
        if data is None and not extra:
            return await self.sio.call(event, namespace=self.namespace, timeout=5)
        return await self.sio.call(event, payload, namespace=self.namespace, timeout=5)

    async def wait_for(
        self, event: str, match: Callable[[Any], bool] = lambda _: True, within_s: float = 5.0
    ) -> Any:
        deadline = time.monotonic() + within_s
        while True:
            for item in self.received[event]:
                if match(item):
                    return item
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {event!r} matching within {within_s} s; got {self.received[event]!r}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    async def lose_connection(self) -> None:
        """The transport closes under the client without a goodbye, as when a phone changes networks."""
        await self.sio.eio.ws.close()
        await asyncio.wait_for(self.disconnected.wait(), 5)
