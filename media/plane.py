"""All calls whose media this node carries."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from media import passthrough
from media.call_media import PASSTHROUGH, RELAY_MODES, CallMedia
from media.ice import IceSettings, announce_public_address, server_rtc_configuration

log = logging.getLogger(__name__)

CloseHook = Callable[[str], Awaitable[None]]


class MediaPlane:
    def __init__(self, ice: IceSettings, preferred_codec: str = "vp8", relay: str = PASSTHROUGH) -> None:
        if relay not in RELAY_MODES:
            raise ValueError(f"relay must be one of {', '.join(RELAY_MODES)}, not {relay!r}")
        passthrough.install()
        self.relay = relay
        self._ice = ice
        self._preferred_codec = preferred_codec
        self._calls: dict[str, CallMedia] = {}
        self._lock = asyncio.Lock()
        self._close_hooks: list[CloseHook] = []

    def on_close_call(self, hook: CloseHook) -> None:
        """`hook(invite_id)` runs when a call's media is about to close, its peers still up (a recording stops)."""
        self._close_hooks.append(hook)

    @property
    def calls_open(self) -> int:
        return len(self._calls)

    @property
    def peer_connections(self) -> int:
        return sum(len(media.peers) for media in self._calls.values())

    def call(self, invite_id: str) -> CallMedia | None:
        return self._calls.get(invite_id)

    async def negotiate(self, invite_id: str, sid: str, role: str, offer_sdp: object) -> str:
        async with self._lock:
            media = self._calls.get(invite_id)
            if media is None:
                media = CallMedia(invite_id, server_rtc_configuration(self._ice), self._preferred_codec, self.relay)
                self._calls[invite_id] = media
        answer = await media.negotiate(sid, role, offer_sdp)
        return announce_public_address(answer, self._ice)

    async def drop(self, invite_id: str, sid: str) -> None:
        media = self._calls.get(invite_id)
        if media is None:
            return
        await media.drop(sid)
        if media.empty and not media.held:
            await self.close_call(invite_id)

    async def release(self, invite_id: str) -> None:
        """Let go of a call held open (by its recording): closed now if nobody is in it any more."""
        media = self._calls.get(invite_id)
        if media is None:
            return
        media.held = False
        if media.empty:
            await self.close_call(invite_id)

    async def close_call(self, invite_id: str) -> None:
        async with self._lock:
            media = self._calls.pop(invite_id, None)
        if media is None:
            return
        for hook in self._close_hooks:
            try:
                await hook(invite_id)
            except Exception:
                log.exception("a close hook of call %s failed", invite_id)
        await media.close()

    async def close(self) -> None:
        for invite_id in list(self._calls):
            await self.close_call(invite_id)
