"""Namespace /staff: a calls-management page watches cases and hears about their invites live.

Watchers of a case sit in one room per access level, because the actions an update carries
depend on it: `case:{id}:full` and `case:{id}:read`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms.access import Access
from rooms.errors import RoomsError
from rooms.invites import view_case
from rooms.staff_auth import JwtVerifier
from signalling import events as ev
from signalling.limits import TokenBucket
from signalling.payloads import StaffAuth, WatchIn
from signalling.wire import SignallingError, failure, ok, to_wire

log = logging.getLogger(__name__)

MAX_WATCHED_CASES = 50


def room_of(case_id: str, access: Access) -> str:
    return f"case:{case_id}:{'full' if access is Access.FULL else 'read'}"


class StaffNamespace(socketio.AsyncNamespace):
    def __init__(self, engine: AsyncEngine, verifier: JwtVerifier) -> None:
        super().__init__(ev.STAFF_NAMESPACE)
        self._engine = engine
        self._verifier = verifier
        self._users: dict[str, str] = {}
        self._watching: dict[str, dict[str, str]] = {}  # sid -> case id -> room
        self._buckets: dict[str, TokenBucket] = {}
        self._handlers: dict[str, Callable[[str, str], Awaitable[dict[str, Any]]]] = {
            ev.WATCH: self._watch,
            ev.UNWATCH: self._unwatch,
        }

    @property
    def client_events(self) -> frozenset[str]:
        """Every event a client may send here: the authorization matrix is checked against this."""
        return frozenset(self._handlers)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            if not isinstance(auth, dict):
                raise SignallingError("unauthorized", "connect with auth {jwt}")
            principal = self._verifier.verify(StaffAuth.model_validate(auth).jwt)
        except (RoomsError, SignallingError, ValidationError) as e:
            err = to_wire(e)["error"]
            log.info("refused a /staff connection: %s", err["code"])
            raise socketio.exceptions.ConnectionRefusedError(err["message"], {"code": err["code"]}) from None
        self._users[sid] = principal.user_id
        self._watching[sid] = {}
        self._buckets[sid] = TokenBucket(5.0, 20.0)

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._users.pop(sid, None)
        self._watching.pop(sid, None)
        self._buckets.pop(sid, None)

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, payload = args[0], args[1:]
        if sid not in self._users:
            return failure("not_connected", "not connected")
        if not self._buckets[sid].take():
            return failure("rate_limited", "too many events; slow down")
        try:
            if len(payload) != 1:
                raise SignallingError("invalid_payload", "send a single object")
            handler = self._handlers.get(event)
            if handler is None:
                return failure("unknown_event", f"unknown event {event[:40]!r}")
            return await handler(sid, WatchIn.model_validate(payload[0]).case_id)
        except (RoomsError, SignallingError, ValidationError) as e:
            log.info("/staff %s refused: %s", event[:40], to_wire(e)["error"]["code"])
            return to_wire(e)
        except Exception:
            log.exception("/staff %s failed", event[:40])
            return failure("internal_error", "internal error")

    async def _watch(self, sid: str, case_id: str) -> dict[str, Any]:
        watching = self._watching[sid]
        if case_id not in watching and len(watching) >= MAX_WATCHED_CASES:
            raise SignallingError("too_many_cases", f"watch at most {MAX_WATCHED_CASES} cases at once")
        async with self._engine.connect() as conn:
            view = await view_case(conn, case_id, self._users[sid])  # NotFound for no access
        room = room_of(case_id, view.access)
        old = watching.get(case_id)
        if old and old != room:
            await self.leave_room(sid, old)
        watching[case_id] = room
        await self.enter_room(sid, room)
        return ok(case_id=case_id, access="full" if view.access is Access.FULL else "read")

    async def _unwatch(self, sid: str, case_id: str) -> dict[str, Any]:
        room = self._watching[sid].pop(case_id, None)
        if room:
            await self.leave_room(sid, room)
        return ok(case_id=case_id)
