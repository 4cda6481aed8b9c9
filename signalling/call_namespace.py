"""Namespace /call: one room per invite, for the claimant and the inspectors in the call.

Connecting authenticates; the `join` event then enters the call, and its acknowledgement carries
the participants, the chat history and the recording state (clients send it on every connect,
reconnects included). Every other event is validated, rate-limited and answered with an
acknowledgement `{"ok": true, ...}` or `{"ok": false, "error": {"code", "message"}}`.

Reconnects: a connection that drops without the page saying goodbye counts as lost, and a lost
last claimant leaves the call IN_CALL for the grace period (rooms/calls.py), its recording going
on; a page that sends the same `resume` id again replaces its earlier connection at `join`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import socketio
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import directory
from rooms.calls import CLAIMANT, INSPECTOR, CallService, Participant
from rooms.errors import LinkUnusable, NotFound, RoomsError
from rooms.invites import InviteService, require_full
from rooms.models import Actor, Event, Invite, InviteStatus, User
from rooms.staff_auth import JwtVerifier
from signalling import events as ev
from signalling.limits import FailureLimiter, TokenBucket
from signalling.media_port import MediaPort
from signalling.payloads import (
    ChatIn,
    ClaimantAuth,
    CursorIn,
    Empty,
    FacingIn,
    MuteIn,
    RtcOfferIn,
    StaffCallAuth,
    SwitchAnswerIn,
)
from signalling.tasks import TaskSet
from signalling.wire import SignallingError, failure, ok, to_wire

log = logging.getLogger(__name__)

JOIN = "join"
# The page disconnected on purpose. Rarely seen: python-socketio handles the disconnect packet in a
# task that the closing transport overtakes, so a page that goes reports "transport close" just like
# a phone whose network changed, and gets the claimant's grace period too.
LEFT_ON_PURPOSE = socketio.AsyncServer.reason.CLIENT_DISCONNECT


@dataclass(frozen=True, slots=True)
class CallLimits:
    max_participants: int = 12
    chat_history: int = 200
    camera_switch_ttl_s: float = 30.0
    cursor_hz: float = 30.0
    events_per_s: float = 60.0
    events_burst: float = 120.0
    chat_per_s: float = 1.0
    chat_burst: float = 5.0
    asks_per_s: float = 0.5
    asks_burst: float = 2.0


@dataclass
class Socket:
    """One connected socket on this node."""

    role: str
    invite_id: str
    case_id: str
    user_id: str
    name: str
    limits: CallLimits
    resume: str = ""
    participant: Participant | None = None
    events: TokenBucket = field(init=False)
    chat: TokenBucket = field(init=False)
    asks: TokenBucket = field(init=False)
    cursor: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        lim = self.limits
        self.events = TokenBucket(lim.events_per_s, lim.events_burst)
        self.chat = TokenBucket(lim.chat_per_s, lim.chat_burst)
        self.asks = TokenBucket(lim.asks_per_s, lim.asks_burst)
        # A burst of 2: moves sent at exactly 30 Hz arrive with jitter, and a strict 33 ms interval
        # dropped a third of them (bench signalling); the long-run rate stays at cursor_hz.
        self.cursor = TokenBucket(lim.cursor_hz, 2.0)


def client_address(environ: dict[str, Any]) -> str:
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return str(remote or environ.get("REMOTE_ADDR", ""))


def room_of(invite_id: str) -> str:
    return f"call:{invite_id}"


def public_id(sid: str) -> str:
    """Participants are named to each other by this, not by their socket ids."""
    return hashlib.sha256(sid.encode()).hexdigest()[:12]


def person(p: Participant) -> dict[str, Any]:
    return {"id": public_id(p.sid), "role": p.role, "name": p.name, "muted": p.muted, "facing": p.facing}


def chat_message(e: Event, p_id: str, role: str) -> dict[str, Any]:
    return {"seq": e.seq, "from": {"id": p_id, "role": role, "name": e.actor.name}, "text": e.data["text"],
            "at": e.at.isoformat()}


def history_message(e: Event) -> dict[str, Any]:
    role = CLAIMANT if e.actor.kind == "claimant" else INSPECTOR
    return {"seq": e.seq, "from": {"id": "", "role": role, "name": e.actor.name}, "text": e.data.get("text", ""),
            "at": e.at.isoformat()}


Handler = Callable[[str, Socket, Any], Awaitable[dict[str, Any]]]


class CallNamespace(socketio.AsyncNamespace):
    def __init__(
        self,
        engine: AsyncEngine,
        invites: InviteService,
        calls: CallService,
        verifier: JwtVerifier,
        media: MediaPort,
        limits: CallLimits,
        tasks: TaskSet,
        link_guard: FailureLimiter | None = None,
    ) -> None:
        super().__init__(ev.CALL_NAMESPACE)
        self._engine = engine
        self._invites = invites
        self._calls = calls
        self._verifier = verifier
        self._media = media
        self._limits = limits
        self._tasks = tasks
        self._link_guard = link_guard or FailureLimiter()
        self._sockets: dict[str, Socket] = {}
        self._handlers: dict[str, Handler] = {
            JOIN: self._join,
            ev.CHAT: self._chat,
            ev.CURSOR: self._cursor,
            ev.MUTE: self._mute,
            ev.CAMERA_FACING: self._camera_facing,
            ev.CAMERA_SWITCH_REQUEST: self._camera_switch_request,
            ev.CAMERA_SWITCH_ANSWER: self._camera_switch_answer,
            ev.END_CALL: self._end_call,
            ev.RTC_OFFER: self._rtc_offer,
            ev.SCREENSHOT: self._screenshot,
            ev.RECORD_START: self._record_start,
            ev.RECORD_STOP: self._record_stop,
        }

    @property
    def client_events(self) -> frozenset[str]:
        """Every event a client may send here: the authorization matrix is checked against this."""
        return frozenset(self._handlers)

    # ---- connection ----

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        client = client_address(environ)
        claimant = isinstance(auth, dict) and "token" in auth
        try:
            if claimant and self._link_guard.blocked(client):
                raise SignallingError("too_many_attempts", "too many unknown links from this address; wait a minute")
            sock = await self._authenticate(auth)
        except (RoomsError, SignallingError, ValidationError) as e:
            if claimant and isinstance(e, NotFound):
                self._link_guard.failed(client)  # guessing link tokens costs the guesser
            err = to_wire(e)["error"]
            log.info("refused a /call connection: %s", err["code"])
            raise socketio.exceptions.ConnectionRefusedError(err["message"], {"code": err["code"]}) from None
        self._sockets[sid] = sock

    async def _authenticate(self, auth: Any) -> Socket:
        if isinstance(auth, dict) and "token" in auth:
            claim = ClaimantAuth.model_validate(auth)
            invite = await self._invites.resolve_claimant(claim.token, claim.grant)
            return Socket(
                CLAIMANT, invite.id, invite.case_id, invite.contact_id, invite.contact_name, self._limits,
                claim.resume or "",
            )
        if isinstance(auth, dict) and "jwt" in auth:
            staff = StaffCallAuth.model_validate(auth)
            principal = self._verifier.verify(staff.jwt)
            async with self._engine.connect() as conn:
                user = await directory.get_user(conn, principal.user_id)
                user = user or User(principal.user_id, principal.name or principal.user_id)
                view, invite = await self._invites.view_invite(conn, staff.invite_id, user.id)
            require_full(view)
            if invite.status is InviteStatus.CLOSED:
                raise LinkUnusable("the invite is closed")
            return Socket(INSPECTOR, invite.id, invite.case_id, user.id, user.name, self._limits, staff.resume or "")
        raise SignallingError("unauthorized", "connect with auth {token, grant?} or {jwt, invite_id}")

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        sock = self._sockets.pop(sid, None)
        if sock is None or sock.participant is None:
            return
        await self._media.drop(sock.invite_id, sid)
        why = "left" if reason is None else str(reason)
        left = await self._calls.leave(sid, why, lost=why != LEFT_ON_PURPOSE)
        if left is None:
            return  # replaced by the page's next connection, which has taken its place
        _, invite, present = left
        await self.emit(ev.PRESENCE, {"participants": [person(p) for p in present]}, room=room_of(invite.id))
        if sock.role != CLAIMANT:
            return
        if invite.status is not InviteStatus.IN_CALL:
            await self._stop_recording_at_call_end(invite.id, sock.participant)
        elif not any(p.role == CLAIMANT for p in present):
            # The call waits for him; every node's heartbeat also ends it, should this node die first.
            self._tasks.spawn(self._end_after_grace(), name=f"reconnect-grace-{invite.id}")

    async def _end_after_grace(self) -> None:
        await asyncio.sleep(self._calls.reconnect_grace_s + 0.05)
        await self.end_abandoned_calls()

    async def end_abandoned_calls(self) -> None:
        """End the calls whose claimant did not come back in time, and their recordings."""
        for invite in await self._calls.end_abandoned():
            await self._stop_recording_at_call_end(invite.id, self._departed_claimant(invite))

    @staticmethod
    def _departed_claimant(invite: Invite) -> Participant:
        return Participant("", invite.id, CLAIMANT, invite.contact_id, invite.contact_name)

    async def _stop_recording_at_call_end(self, invite_id: str, by: Participant) -> None:
        try:
            if await self._media.is_recording(invite_id):
                await self._media.stop_recording(invite_id, by)
                await self.emit(ev.RECORDING, {"active": False, "by": by.name}, room=room_of(invite_id))
        except RoomsError as e:
            log.warning("could not stop the recording of invite %s at call end: %s", invite_id, e.message)

    # ---- dispatch: every event passes here ----

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, payload = args[0], args[1:]
        sock = self._sockets.get(sid)
        handler = self._handlers.get(event)
        if sock is None:
            return failure("not_connected", "this socket is not connected to a call")
        if handler is None:
            log.info("unknown /call event from a %s", sock.role)
            return failure("unknown_event", f"unknown event {event[:40]!r}")
        if not sock.events.take():
            return failure("rate_limited", "too many events; slow down")
        if len(payload) > 1:
            return failure("invalid_payload", "send a single object")
        try:
            return await handler(sid, sock, payload[0] if payload else {})
        except asyncio.CancelledError:
            raise
        except (RoomsError, SignallingError, ValidationError) as e:
            wire = to_wire(e)
            log.info("/call %s from a %s refused: %s", event, sock.role, wire["error"]["code"])
            return wire
        except Exception:
            log.exception("/call %s failed", event)
            return failure("internal_error", "internal error")

    def _joined(self, sock: Socket) -> Participant:
        if sock.participant is None:
            raise SignallingError("not_joined", "send 'join' first")
        return sock.participant

    def _inspector(self, sock: Socket) -> Participant:
        p = self._joined(sock)
        if p.role != INSPECTOR:
            raise SignallingError("forbidden", "only inspectors may do this")
        return p

    def _claimant(self, sock: Socket) -> Participant:
        p = self._joined(sock)
        if p.role != CLAIMANT:
            raise SignallingError("forbidden", "only the claimant may do this")
        return p

    async def _presence(self, invite_id: str, present: list[Participant]) -> None:
        await self.emit(ev.PRESENCE, {"participants": [person(p) for p in present]}, room=room_of(invite_id))

    # ---- events ----

    async def _join(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        Empty.model_validate(data)
        if sock.participant is None:
            present = await self._calls.participants(sock.invite_id)
            others = [x for x in present if not (sock.resume and x.resume == sock.resume)]
            if len(others) >= self._limits.max_participants:
                raise SignallingError("call_full", "this call has no room for more participants")
            p = Participant(sid, sock.invite_id, sock.role, sock.user_id, sock.name, resume=sock.resume)
            try:
                joined = await self._calls.join(p)
            except LinkUnusable:
                await self.disconnect(sid)
                raise
            sock.participant = p
            present = joined.present
            await self.enter_room(sid, room_of(sock.invite_id))
            for old in joined.replaced:
                # Its peer first, so a claimant's stale peer never stands in for the new one.
                await self._media.drop(old.invite_id, old.sid)
                await self.disconnect(old.sid)
            await self._presence(sock.invite_id, present)
        else:
            present = await self._calls.participants(sock.invite_id)
        history = await self._calls.history(sock.invite_id, "chat", self._limits.chat_history)
        return ok(
            you=person(sock.participant),
            participants=[person(p) for p in present],
            chat=[history_message(e) for e in history],
            recording=await self._media.is_recording(sock.invite_id),
        )

    async def _chat(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._joined(sock)
        msg = ChatIn.model_validate(data)
        if not sock.chat.take():
            raise SignallingError("rate_limited", "too many chat messages; wait a moment")
        event = await self._calls.log(p, "chat", {"text": msg.text.strip()})
        out = chat_message(event, public_id(sid), p.role)
        await self.emit(ev.CHAT, out, room=room_of(p.invite_id), skip_sid=sid)
        return ok(message=out)

    async def _cursor(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._joined(sock)
        c = CursorIn.model_validate(data)
        out: dict[str, Any] = {"from": public_id(sid), "name": p.name, "action": c.action}
        if c.action == "move":
            if c.x is None or c.y is None:
                raise SignallingError("invalid_payload", "a move needs x and y in 0..1")
            if not sock.cursor.take():
                return ok(relayed=False)  # over 30 Hz: dropped, never queued
            out.update(x=c.x, y=c.y)
        else:
            await self._calls.log(p, f"cursor_{'shown' if c.action == 'show' else 'hidden'}")
        await self.emit(ev.CURSOR, out, room=room_of(p.invite_id), skip_sid=sid)
        return ok(relayed=True)

    async def _mute(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._joined(sock)
        m = MuteIn.model_validate(data)
        present = await self._calls.update(p, "muted" if m.muted else "unmuted", {}, muted=m.muted)
        sock.participant = next((x for x in present if x.sid == sid), p)
        await self._presence(p.invite_id, present)
        return ok(muted=m.muted)

    async def _camera_facing(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._claimant(sock)
        f = FacingIn.model_validate(data)
        present = await self._calls.update(p, "camera_switched", {"facing": f.facing}, facing=f.facing)
        sock.participant = next((x for x in present if x.sid == sid), p)
        await self._presence(p.invite_id, present)
        return ok(facing=f.facing)

    async def _camera_switch_request(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._inspector(sock)
        Empty.model_validate(data)
        if not any(x.role == CLAIMANT for x in await self._calls.participants(p.invite_id)):
            raise SignallingError("no_claimant", "the claimant is not in the call")
        if not sock.asks.take():
            raise SignallingError("rate_limited", "wait before asking again")
        ttl = self._limits.camera_switch_ttl_s
        request = await self._calls.ask(p, "camera_switch", ttl)
        await self.emit(
            ev.CAMERA_SWITCH_REQUESTED,
            {"request_id": request.id, "by": p.name, "expires_in_s": ttl},
            room=room_of(p.invite_id),
        )
        self._tasks.spawn(self._expire(p.invite_id, request.id, ttl), name=f"camera-switch-{request.id}")
        return ok(request_id=request.id, state="pending", expires_in_s=ttl)

    async def _expire(self, invite_id: str, request_id: str, ttl_s: float) -> None:
        await asyncio.sleep(ttl_s)
        if await self._calls.settle(invite_id, request_id, "expired", Actor.system()) is not None:
            await self.emit(
                ev.CAMERA_SWITCH_RESULT, {"request_id": request_id, "result": "expired"}, room=room_of(invite_id)
            )

    async def _camera_switch_answer(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._claimant(sock)
        a = SwitchAnswerIn.model_validate(data)
        result = "accepted" if a.allow else "declined"
        if await self._calls.settle(p.invite_id, a.request_id, result, p.actor) is None:
            raise SignallingError("request_not_pending", "that request was already answered or has expired")
        await self.emit(
            ev.CAMERA_SWITCH_RESULT, {"request_id": a.request_id, "result": result}, room=room_of(p.invite_id)
        )
        return ok(result=result)

    async def _end_call(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._joined(sock)
        Empty.model_validate(data)
        await self._calls.log(p, "end_call", {"role": p.role})
        # After this handler returns, so the ender's acknowledgement goes out before his socket closes.
        self._tasks.spawn(self.end_call(p.invite_id, {"role": p.role, "name": p.name}, "ended"), name="end-call")
        return ok()

    async def end_call(self, invite_id: str, by: dict[str, Any], reason: str) -> None:
        """Tell everyone, then empty the room on every node (sids come from the shared store)."""
        # Ended before the sockets go, so their leaving is not taken for lost connections.
        invite = await self._calls.end(invite_id)
        await self.emit(ev.CALL_ENDED, {"by": by, "reason": reason}, room=room_of(invite_id))
        present = await self._calls.participants(invite_id)
        if not any(p.role == CLAIMANT for p in present):
            # Ended while waiting for the claimant: no leaving claimant stops the recording. Stopped
            # before the sockets go, so the room still hears that it stopped.
            await self._stop_recording_at_call_end(invite_id, self._departed_claimant(invite))
        for p in present:
            await self.disconnect(p.sid)
        for sid, sock in list(self._sockets.items()):
            if sock.invite_id == invite_id:
                await self.disconnect(sid)

    async def _rtc_offer(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        """The participant's WebRTC offer (ICE gathering complete: no trickle); the ack has the answer."""
        p = self._joined(sock)
        offer = RtcOfferIn.model_validate(data)
        answer = await self._media.negotiate(p.invite_id, p, offer.sdp)
        return ok(answer={"type": "answer", "sdp": answer})

    async def _screenshot(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._inspector(sock)
        Empty.model_validate(data)
        capture = await self._media.screenshot(p.invite_id, p)
        return ok(media=capture.media)

    async def _record_start(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._inspector(sock)
        Empty.model_validate(data)
        await self._media.start_recording(p.invite_id, p)
        await self.emit(ev.RECORDING, {"active": True, "by": p.name}, room=room_of(p.invite_id))
        return ok(recording=True)

    async def _record_stop(self, sid: str, sock: Socket, data: Any) -> dict[str, Any]:
        p = self._inspector(sock)
        Empty.model_validate(data)
        capture = await self._media.stop_recording(p.invite_id, p)
        await self.emit(ev.RECORDING, {"active": False, "by": p.name}, room=room_of(p.invite_id))
        return ok(recording=False, media=capture.media if capture else None)
