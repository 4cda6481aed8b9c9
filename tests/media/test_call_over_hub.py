"""A whole call: Socket.IO signalling, WebRTC to the server's peers, a screenshot filed in the case."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from tests.conftest import MakeApi
from tests.signalling.conftest import token_of
from tests.support.rtc_bots import LEFT_RGB, WIDTH, Bot, claimant_bot, inspector_bot
from tests.support.sio_peer import Peer
from tests.support.world import Api
from web.keys import media_plane_key


@dataclass
class LiveCall:
    api: Api
    invite_id: str
    claimant: Peer
    inspector: Peer
    claimant_bot: Bot
    inspector_bot: Bot
    extra: list[Peer] = field(default_factory=list)


async def offer_over(peer: Peer, sdp: str) -> str:
    ack = await peer.call("rtc_offer", {"type": "offer", "sdp": sdp})
    assert ack["ok"], ack
    return str(ack["answer"]["sdp"])


@pytest.fixture
async def live_call(make_api: MakeApi) -> AsyncIterator[LiveCall]:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite = await api.invite(task="t-main")
    url = str(api.client.make_url("/"))
    claimant, inspector = Peer("/call"), Peer("/call")
    await claimant.connect(url, {"token": await token_of(api, invite["id"])})
    await inspector.connect(url, {"jwt": api.token("inspector"), "invite_id": invite["id"]})
    for peer in (claimant, inspector):
        assert (await peer.call("join"))["ok"]
    c_bot, i_bot = claimant_bot(), inspector_bot()
    call = LiveCall(api, invite["id"], claimant, inspector, c_bot, i_bot)
    try:
        await c_bot.connect(lambda sdp: offer_over(claimant, sdp))
        await i_bot.connect(lambda sdp: offer_over(inspector, sdp))
        yield call
    finally:
        for bot in (c_bot, i_bot):
            await bot.close()
        for peer in (claimant, inspector, *call.extra):
            await peer.close()


async def test_inspector_receives_the_claimant_through_the_hub(live_call: LiveCall) -> None:
    await live_call.inspector_bot.wait_for("video", 30)
    await live_call.inspector_bot.wait_for("audio", 25)
    await live_call.claimant_bot.wait_for("audio", 25)


async def test_screenshot_is_filed_announced_and_served(live_call: LiveCall) -> None:
    api = live_call.api
    watcher = Peer("/staff")
    live_call.extra.append(watcher)
    await watcher.connect(str(api.client.make_url("/")), {"jwt": api.token("viewer")})
    await watcher.call("watch", {"case_id": "case-std"})
    await live_call.inspector_bot.wait_for("video", 5)
    ack = await live_call.inspector.call("screenshot")
    assert ack["ok"], ack
    media = ack["media"]
    assert (media["kind"], media["content_type"], media["width"]) == ("picture", "image/jpeg", WIDTH)
    status, jpeg = await api.call("GET", media["content_url"], user="inspector")
    assert status == 200
    image = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.int32)
    assert np.abs(image[:, : WIDTH // 4].reshape(-1, 3).mean(axis=0) - LEFT_RGB).max() < 25
    status, _ = await api.call("GET", media["thumbnail_url"], user="inspector")
    assert status == 200
    assert (await live_call.claimant.wait_for("capture"))["media"]["id"] == media["id"]
    assert (await watcher.wait_for("media_added"))["media_id"] == media["id"]
    _, listed = await api.call("GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="inspector")
    assert [m["id"] for m in listed["items"]] == [media["id"]]
    _, log = await api.call("GET", f"/api/v1/invites/{live_call.invite_id}/events", user="inspector")
    assert "screenshot_taken" in [e["kind"] for e in log["events"]] and log["integrity"]["ok"]


async def test_closing_the_invite_tears_the_peers_down(live_call: LiveCall) -> None:
    plane = live_call.api.client.app[media_plane_key]
    await live_call.inspector_bot.wait_for("video", 5)
    assert plane.call(live_call.invite_id) is not None
    status, _ = await live_call.api.call("POST", f"/api/v1/invites/{live_call.invite_id}/close", user="handler")
    assert status == 200
    for _ in range(100):
        if plane.call(live_call.invite_id) is None:
            break
        await asyncio.sleep(0.05)
    assert plane.call(live_call.invite_id) is None


async def test_bad_offer_gets_an_error_ack_and_the_socket_stays(live_call: LiveCall) -> None:
    bad = await live_call.inspector.call("rtc_offer", {"type": "offer", "sdp": "v=0\r\nnot really"})
    assert bad["ok"] is False and bad["error"]["code"] == "invalid_sdp"
    wrong = await live_call.inspector.call("rtc_offer", {"type": "answer", "sdp": "v=0"})
    assert wrong["error"]["code"] == "invalid_payload"
    assert (await live_call.inspector.call("chat", {"text": "still connected"}))["ok"]
