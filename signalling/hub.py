"""The Socket.IO hub: the server, its two namespaces, and live fan-out of invite changes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import socketio
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import changes, invite_store
from rooms.access import Access, invite_actions
from rooms.calls import CallService
from rooms.changes import Change, ChangeFeed
from rooms.invites import InviteService
from rooms.models import Invite
from rooms.staff_auth import JwtVerifier
from rooms.stopping import StopSignal, finish
from signalling import events as ev
from signalling.call_namespace import CallLimits, CallNamespace, person
from signalling.call_namespace import room_of as call_room
from signalling.limits import FailureLimiter
from signalling.media_port import MediaPort
from signalling.redis_health import WatchedRedisManager
from signalling.staff_namespace import StaffNamespace
from signalling.staff_namespace import room_of as staff_room
from signalling.tasks import TaskSet

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class HubConfig:
    redis_url: str = ""
    limits: CallLimits = field(default_factory=CallLimits)
    health_interval_s: float = 5.0
    heartbeat_s: float = 10.0
    node_dead_after_s: float = 30.0
    # Engine.IO's own liveness check: a connection that leaves a ping unanswered this long is lost.
    ping_interval_s: float = 25.0
    ping_timeout_s: float = 20.0
    # Several processes on one port: Engine.IO's long-polling would need sticky sessions.
    websocket_only: bool = False


def invite_update(invite: Invite, access: Access, change: str) -> dict[str, Any]:
    return {
        "invite_id": invite.id,
        "case_id": invite.case_id,
        "status": str(invite.status),
        "pictures": invite.pictures,
        "videos": invite.videos,
        "resend_count": invite.resend_count,
        "closed_reason": invite.closed_reason,
        "change": change,
        "actions": invite_actions(access, invite),
    }


class Hub:
    def __init__(
        self,
        config: HubConfig,
        engine: AsyncEngine,
        invites: InviteService,
        calls: CallService,
        verifier: JwtVerifier,
        media: MediaPort,
        feed: ChangeFeed,
        link_guard: FailureLimiter | None = None,
    ) -> None:
        self._config = config
        self._engine = engine
        self._calls = calls
        self.tasks = TaskSet()
        self._stop = StopSignal()
        self._heartbeat: asyncio.Task[None] | None = None
        self.manager = WatchedRedisManager(config.redis_url) if config.redis_url else None
        self.sio = socketio.AsyncServer(
            async_mode="aiohttp",
            client_manager=self.manager,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            ping_interval=config.ping_interval_s,
            ping_timeout=config.ping_timeout_s,
            transports=["websocket"] if config.websocket_only else None,
            logger=logging.getLogger("signalling.socketio"),
            engineio_logger=False,
        )
        self.call = CallNamespace(engine, invites, calls, verifier, media, config.limits, self.tasks, link_guard)
        self.staff = StaffNamespace(engine, verifier)
        self.sio.register_namespace(self.call)
        self.sio.register_namespace(self.staff)
        feed.subscribe(self.on_change)

    def attach(self, app: web.Application) -> None:
        self.sio.attach(app)

    @property
    def healthy(self) -> bool:
        return self.manager is None or self.manager.healthy

    async def start(self) -> None:
        await self._calls.heartbeat()
        self._heartbeat = asyncio.create_task(self._keep_alive(), name="node-heartbeat")
        if self.manager is not None:
            self.tasks.spawn(self.manager.watch(self._config.health_interval_s), name="redis-manager-watch")

    async def _keep_alive(self) -> None:
        """Heartbeat; let go of the participants of nodes that stopped beating (crashed), and end the calls
        whose claimant did not reconnect in time, whichever node saw him go."""
        while not self._stop.stopped:
            try:
                await self._calls.heartbeat()
                for _, invite, present in await self._calls.remove_dead_nodes(self._config.node_dead_after_s):
                    await self.call.emit(
                        ev.PRESENCE, {"participants": [person(p) for p in present]}, room=call_room(invite.id)
                    )
                await self.call.end_abandoned_calls()
            except Exception:
                log.exception("node heartbeat failed")
            await self._stop.sleep(self._config.heartbeat_s)

    async def stop(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            await finish([self._heartbeat])  # between two beats, never inside one
        await self.tasks.close()
        await self.sio.shutdown()  # each socket leaves its call on the way out
        await self._calls.forget_node()
        if self.manager is not None:
            await self.manager.close()  # the Redis listener task and connections are not stopped by shutdown()

    async def on_change(self, change: Change) -> None:
        if change.kind == changes.CLOSED:
            # The link stops working at once, and everyone still in the call is let go.
            await self.call.end_call(change.invite_id, {"role": "system", "name": ""}, str(change.data.get("reason")))
        if change.kind == changes.MEDIA_ADDED:
            media = change.data.get("media", {})
            await self.sio.emit(ev.CAPTURE, {"media": media}, room=call_room(change.invite_id),
                                namespace=ev.CALL_NAMESPACE)
        async with self._engine.connect() as conn:
            invite = await invite_store.get(conn, change.invite_id)
        for access in (Access.FULL, Access.READ):
            room = staff_room(change.case_id, access)
            await self.sio.emit(ev.INVITE_UPDATED, invite_update(invite, access, change.kind), room=room,
                                namespace=ev.STAFF_NAMESPACE)
            if change.kind == changes.LINK_OPENED:
                await self.sio.emit(
                    ev.LINK_OPENED,
                    {"invite_id": invite.id, "name": invite.contact_name},
                    room=room,
                    namespace=ev.STAFF_NAMESPACE,
                )
            if change.kind == changes.MEDIA_ADDED:
                media = change.data.get("media", {})
                await self.sio.emit(
                    ev.MEDIA_ADDED,
                    {"invite_id": invite.id, "media_id": media.get("id"), "kind": media.get("kind")},
                    room=room,
                    namespace=ev.STAFF_NAMESPACE,
                )
