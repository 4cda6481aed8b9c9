"""One owner node per call's media, whichever node each participant's socket is on.

A call's WebRTC peers, forwarding, screenshots and recording live in one process: the first node
that negotiates for the call claims it in Redis (`SET NX` with a TTL it keeps refreshing while it
has the call). Every MediaPort call made on another node is sent to the owner over Redis pub/sub
and answered there; the SDP answer then carries the owner's ICE candidates, so the browser's media
goes straight to the owner. Each node also keeps a short-lived "alive" key: when an owner stops
refreshing it (crashed), the next negotiation takes the call over instead of waiting for a reply
that never comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from recorder.captures import Capture
from rooms.calls import Participant
from rooms.errors import RoomsError
from rooms.stopping import StopSignal
from signalling.media_port import MediaPort

log = logging.getLogger(__name__)

PREFIX = "claimcam:media"
# Deletes or refreshes the owner key only while it still names this node.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_REFRESH = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('expire', KEYS[1], ARGV[2]) end return 0"
_TAKE_OVER = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('set', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end "
    "return 0"
)


class RemoteMediaError(RoomsError):
    """A refusal raised on the owner node, carried back with its code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class MediaUnreachable(RoomsError):
    code = "media_unreachable"


def owner_key(invite_id: str) -> str:
    return f"{PREFIX}:owner:{invite_id}"


def alive_key(node_id: str) -> str:
    return f"{PREFIX}:alive:{node_id}"


def requests_channel(node_id: str) -> str:
    return f"{PREFIX}:rpc:{node_id}"


def replies_channel(node_id: str) -> str:
    return f"{PREFIX}:reply:{node_id}"


@dataclasses.dataclass(frozen=True, slots=True)
class RouterTimings:
    owner_ttl_s: int = 30
    alive_ttl_s: int = 6
    refresh_s: float = 2.0
    rpc_timeout_s: float = 20.0  # a negotiation waits for ICE gathering on the owner


class RoutedMedia:
    """A MediaPort that runs each call's media on its owner node (see the module's docstring)."""

    def __init__(
        self, local: MediaPort, redis_url: str, node_id: str, has_call: Callable[[str], bool],
        timings: RouterTimings = RouterTimings(),
    ) -> None:
        self._local = local
        self._redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
        self.node_id = node_id
        self._has_call = has_call
        self._timings = timings
        self._owned: set[str] = set()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._served: set[asyncio.Task[None]] = set()
        self._stop = StopSignal()
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()

    # ---- lifecycle ----

    async def start(self) -> None:
        await self._redis.set(alive_key(self.node_id), "1", ex=self._timings.alive_ttl_s)
        self._tasks = [
            asyncio.create_task(self._listen(), name="media-router-listen"),
            asyncio.create_task(self._keep_alive(), name="media-router-alive"),
        ]
        await asyncio.wait_for(self._subscribed.wait(), 10)

    async def close(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        for task in [*self._tasks, *self._served]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            for invite_id in list(self._owned):
                await self._release(invite_id)
            await self._redis.delete(alive_key(self.node_id))
        await self._redis.aclose()

    async def _keep_alive(self) -> None:
        while not self._stop.stopped:
            try:
                await self._redis.set(alive_key(self.node_id), "1", ex=self._timings.alive_ttl_s)
                for invite_id in list(self._owned):
                    if not self._has_call(invite_id):
                        await self._release(invite_id)
                    else:
                        await self._redis.eval(_REFRESH, 1, owner_key(invite_id), self.node_id,
                                               str(self._timings.owner_ttl_s))
            except Exception:
                log.exception("media router: refreshing the ownership keys failed")
            await self._stop.sleep(self._timings.refresh_s)

    async def _release(self, invite_id: str) -> None:
        self._owned.discard(invite_id)
        await self._redis.eval(_RELEASE, 1, owner_key(invite_id), self.node_id)

    # ---- ownership ----

    async def _get(self, key: str) -> str | None:
        value = await self._redis.get(key)
        return None if value is None else str(value)

    async def owner(self, invite_id: str, *, claim: bool) -> str | None:
        """The node that has the call's media; with `claim`, this node takes it when nobody (alive) has."""
        key = owner_key(invite_id)
        current = await self._get(key)
        if current is not None and current != self.node_id and not await self._redis.exists(alive_key(current)):
            log.warning("media of call %s: owner node %s is gone; taking the call over", invite_id, current)
            if claim and await self._redis.eval(
                _TAKE_OVER, 1, key, current, self.node_id, str(self._timings.owner_ttl_s)
            ):
                self._owned.add(invite_id)
                return self.node_id
            current = await self._get(key)
            if current is not None and not await self._redis.exists(alive_key(current)):
                return None
        if current is None and claim:
            if await self._redis.set(key, self.node_id, nx=True, ex=self._timings.owner_ttl_s):
                self._owned.add(invite_id)
                return self.node_id
            current = await self._get(key)
        if current == self.node_id:
            self._owned.add(invite_id)
        return current

    # ---- MediaPort ----

    async def negotiate(self, invite_id: str, by: Participant, offer_sdp: object) -> str:
        owner = await self.owner(invite_id, claim=True)
        if owner is None or owner == self.node_id:
            return await self._local.negotiate(invite_id, by, offer_sdp)
        reply = await self._ask(owner, "negotiate", invite_id, participant=dataclasses.asdict(by), sdp=offer_sdp)
        return str(reply["answer"])

    async def drop(self, invite_id: str, sid: str) -> None:
        owner = await self.owner(invite_id, claim=False)
        if owner is None or owner == self.node_id:
            await self._local.drop(invite_id, sid)
            return
        await self._ask(owner, "drop", invite_id, sid=sid)

    async def screenshot(self, invite_id: str, by: Participant) -> Capture:
        owner = await self.owner(invite_id, claim=False)
        if owner is None or owner == self.node_id:
            return await self._local.screenshot(invite_id, by)
        reply = await self._ask(owner, "screenshot", invite_id, participant=dataclasses.asdict(by))
        return Capture(reply["media"])

    async def start_recording(self, invite_id: str, by: Participant) -> None:
        owner = await self.owner(invite_id, claim=False)
        if owner is None or owner == self.node_id:
            await self._local.start_recording(invite_id, by)
            return
        await self._ask(owner, "start_recording", invite_id, participant=dataclasses.asdict(by))

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None:
        owner = await self.owner(invite_id, claim=False)
        if owner is None or owner == self.node_id:
            return await self._local.stop_recording(invite_id, by)
        reply = await self._ask(owner, "stop_recording", invite_id, participant=dataclasses.asdict(by))
        return None if reply["media"] is None else Capture(reply["media"])

    async def is_recording(self, invite_id: str) -> bool:
        owner = await self.owner(invite_id, claim=False)
        if owner is None or owner == self.node_id:
            return await self._local.is_recording(invite_id)
        return bool((await self._ask(owner, "is_recording", invite_id))["recording"])

    # ---- the wire: requests to an owner, replies back ----

    async def _ask(self, owner: str, op: str, invite_id: str, **args: Any) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        message = {"id": request_id, "from": self.node_id, "op": op, "invite_id": invite_id, **args}
        try:
            if not await self._redis.publish(requests_channel(owner), json.dumps(message)):
                raise MediaUnreachable(f"the node that has this call's media ({owner}) is not listening")
            reply = await asyncio.wait_for(future, self._timings.rpc_timeout_s)
        except TimeoutError:
            raise MediaUnreachable("the node that has this call's media did not answer in time") from None
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            error = reply.get("error") or {}
            raise RemoteMediaError(str(error.get("code", "error")), str(error.get("message", "media error")))
        return reply

    async def _listen(self) -> None:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(requests_channel(self.node_id), replies_channel(self.node_id))
        self._subscribed.set()
        try:
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                try:
                    data = json.loads(message["data"])
                except (TypeError, ValueError):
                    log.warning("media router: an unreadable message on %s", message.get("channel"))
                    continue
                if message["channel"] == replies_channel(self.node_id):
                    future = self._pending.get(str(data.get("id")))
                    if future is not None and not future.done():
                        future.set_result(data)
                else:
                    task = asyncio.create_task(self._serve(data), name=f"media-router-{data.get('op')}")
                    self._served.add(task)
                    task.add_done_callback(self._served.discard)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _serve(self, request: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": request.get("id"), "ok": True}
        try:
            reply.update(await self._run_here(request))
        except asyncio.CancelledError:
            raise
        except RoomsError as e:
            reply = {"id": request.get("id"), "ok": False, "error": {"code": e.code, "message": e.message}}
        except Exception:
            log.exception("media router: %s for call %s failed", request.get("op"), request.get("invite_id"))
            error = {"code": "internal_error", "message": "internal error"}
            reply = {"id": request.get("id"), "ok": False, "error": error}
        await self._redis.publish(replies_channel(str(request.get("from"))), json.dumps(reply))

    async def _run_here(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        invite_id = str(request.get("invite_id"))
        participant = None
        if "participant" in request:
            try:
                participant = Participant(**request["participant"])
            except TypeError:
                raise RemoteMediaError("invalid_request", "a malformed participant") from None
        if op == "negotiate" and participant is not None:
            self._owned.add(invite_id)
            return {"answer": await self._local.negotiate(invite_id, participant, request.get("sdp"))}
        if op == "drop":
            await self._local.drop(invite_id, str(request.get("sid")))
            return {}
        if op == "screenshot" and participant is not None:
            return {"media": (await self._local.screenshot(invite_id, participant)).media}
        if op == "start_recording" and participant is not None:
            await self._local.start_recording(invite_id, participant)
            return {}
        if op == "stop_recording" and participant is not None:
            capture = await self._local.stop_recording(invite_id, participant)
            return {"media": None if capture is None else capture.media}
        if op == "is_recording":
            return {"recording": await self._local.is_recording(invite_id)}
        raise RemoteMediaError("invalid_request", f"unknown media operation {str(op)[:40]!r}")
