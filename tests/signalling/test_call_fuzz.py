"""Hypothesis throws generated payloads at every /call event: each gets a clear acknowledgement.

The app (with the real media plane) and both participants' python-socketio clients run on an event
loop in a background thread, because Hypothesis drives examples from synchronous code. For every
example: the acknowledgement is a dict, `ok` is a bool, a refusal has a code and a message, and the
code is never `internal_error` (an unhandled exception). Afterwards the call still works.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalling import events as ev
from tests.conftest import test_settings as app_settings_for
from tests.support.api_tools import claimant_token
from tests.support.sio_peer import Peer
from tests.support.world import Api
from web.app import create_app

T = TypeVar("T")

# end_call would end the call the other examples need; it has its own tests.
EVENTS = ["join", ev.CHAT, ev.CURSOR, ev.MUTE, ev.CAMERA_FACING, ev.CAMERA_SWITCH_REQUEST, ev.CAMERA_SWITCH_ANSWER,
          ev.RTC_OFFER, ev.SCREENSHOT, ev.RECORD_START, ev.RECORD_STOP]
KEYS = ["text", "x", "y", "action", "muted", "facing", "request_id", "allow", "sdp", "type", "token", "__proto__"]
SDPISH = st.sampled_from([
    "v=0\r\n", "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    "m=audio 1 RTP/AVP 0\r\n" * 50, "\x00" * 64, "a=" + "x" * 5000,
])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False), st.text(max_size=300), SDPISH,
    st.sampled_from(["move", "show", "hide", "user", "environment", "offer", "answer", "", "A" * 20_000]),
)
PAYLOADS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=20)), inner, max_size=6),
    ),
    max_leaves=20,
)


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fuzz-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def close(self) -> None:
        async def cancel_the_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Rig:
    thread: LoopThread
    api: Api
    invite_id: str
    claimant: Peer
    inspector: Peer


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    thread = LoopThread()
    base: Path = tmp_path_factory.mktemp("fuzz")

    async def start() -> Rig:
        app_settings = app_settings_for(base)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(app_settings), host="127.0.0.1"))
        await client.start_server()
        api = Api(client, app_settings)
        await api.seed()
        invite = await api.invite()
        url = str(client.make_url("/"))
        claimant, inspector = Peer("/call"), Peer("/call")
        await claimant.connect(url, {"token": await claimant_token(api, invite["id"])})
        await inspector.connect(url, {"jwt": api.token("inspector"), "invite_id": invite["id"]})
        for peer in (claimant, inspector):
            assert (await peer.call("join"))["ok"]
        return Rig(thread, api, invite["id"], claimant, inspector)

    made = thread.run(start())
    yield made

    async def stop() -> None:
        for peer in (made.claimant, made.inspector):
            await peer.close()
        await made.api.client.close()

    thread.run(stop())
    thread.close()


def check_ack(ack: Any) -> None:
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
    if not ack["ok"]:
        error = ack["error"]
        assert isinstance(error["code"], str) and error["code"] and isinstance(error["message"], str), ack
        assert error["code"] != "internal_error", ack


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(EVENTS), payload=PAYLOADS, by_inspector=st.booleans())
def test_generated_payloads_get_clear_acknowledgements(rig: Rig, event: str, payload: Any, by_inspector: bool) -> None:
    peer = rig.inspector if by_inspector else rig.claimant
    check_ack(rig.thread.run(peer.call(event, payload), timeout_s=30))
    time.sleep(0.02)  # under the per-socket event budget, so payloads are judged rather than rate limited


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.text(min_size=1, max_size=60), payload=PAYLOADS)
def test_unknown_event_names_are_refused_by_name(rig: Rig, event: str, payload: Any) -> None:
    ack = rig.thread.run(rig.claimant.call(event, payload), timeout_s=30)
    check_ack(ack)
    if event not in EVENTS and event != ev.END_CALL:
        assert ack["ok"] is False and ack["error"]["code"] in {"unknown_event", "rate_limited"}, ack
    time.sleep(0.02)


def test_the_call_still_works_after_the_fuzzing(rig: Rig) -> None:
    async def round_trip() -> None:
        await asyncio.sleep(1.5)  # let the event budgets refill
        ack = await rig.inspector.call(ev.CHAT, {"text": "still here?"})
        assert ack["ok"], ack
        await rig.claimant.wait_for(ev.CHAT, lambda m: m["text"] == "still here?")
        status, invite = await rig.api.call("GET", f"/api/v1/invites/{rig.invite_id}", user="inspector")
        assert status == 200 and invite["status"] == "IN_CALL"
        _, log = await rig.api.call("GET", f"/api/v1/invites/{rig.invite_id}/events", user="inspector")
        assert log["integrity"]["ok"] is True

    rig.thread.run(round_trip())
