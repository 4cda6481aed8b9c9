"""Reconnecting after real network faults, with the faulty side's Chromium in its own network namespace.

The server runs in the test's namespace; a browser on the "client network" reaches it over a veth pair
that nftables cuts (a blackout) or whose client address changes (a phone moving from Wi-Fi to mobile
data): see tests/support/netns.py. The other side of the call stays on the server's network. Frames are
counted on the inspector's side with the browser's own statistics, and the peer connections a page
makes are counted too, so "without renegotiating" is checked, not assumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.conftest import MakeApi
from tests.e2e.conftest import CHROMIUM_ARGS, PHONE, OpenTab, Tab, tab_factory
from tests.signalling.conftest import token_of
from tests.support.binaries import find_binary
from tests.support.netns import HOST_ADDRESS, ClientNetwork, client_network
from tests.support.rtc_bots import Bot, claimant_bot, inspector_bot
from tests.support.sio_peer import Peer
from tests.support.world import Api

VIDEO_BACK_S = 3.0  # the promise: the picture is back this soon after the network returns
GRACE_S = 10.0
PING_S = 1.0  # the server notices a silent connection within two of these
# What a browser says about connections that die or cannot be made while the network is down.
NETWORK_NOISE = [re.compile(r"WebSocket connection to .* failed"), re.compile(r"net::ERR_")]

COUNT_PEER_CONNECTIONS = """
window.__pcs = [];
const Native = window.RTCPeerConnection;
window.RTCPeerConnection = function (...args) { const pc = new Native(...args); window.__pcs.push(pc); return pc; };
window.RTCPeerConnection.prototype = Native.prototype;
"""

# [peer connections the page made, video frames decoded on the newest one]
FRAMES = """async () => {
  const pc = window.__pcs[window.__pcs.length - 1];
  let frames = 0;
  if (pc && pc.connectionState !== 'closed') {
    (await pc.getStats()).forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') frames += r.framesDecoded;
    });
  }
  return [window.__pcs.length, frames];
}"""

Launch = Callable[..., Awaitable[Browser]]


@pytest.fixture
def net() -> Iterator[ClientNetwork]:
    with client_network() as network:
        yield network


@pytest.fixture
async def launch(net: ClientNetwork, camera_file: Path, tmp_path: Path) -> AsyncIterator[Launch]:
    """launch(api, client_network=True): Chromium filming the red/blue camera file, on either network.

    The app's address is not loopback, so browsers would not count it a secure context and give no
    camera: each browser is told to trust that one origin, so it starts once the app's port is known.
    """
    chromium = find_binary("chromium")
    wrapped = net.wrap(chromium, tmp_path / "chromium-on-client-network")
    async with async_playwright() as p, contextlib.AsyncExitStack() as stack:

        async def start(api: Api, client_network: bool = True) -> Browser:
            origin = str(api.client.make_url("/")).rstrip("/")
            browser = await p.chromium.launch(
                executable_path=str(wrapped if client_network else chromium),
                headless=True,
                args=[
                    *CHROMIUM_ARGS,
                    f"--use-file-for-fake-video-capture={camera_file}",
                    f"--unsafely-treat-insecure-origin-as-secure={origin}",
                ],
            )
            stack.push_async_callback(browser.close)
            return browser

        yield start


async def start_app(make_api: MakeApi, grace_s: float = GRACE_S) -> Api:
    # A connection the fault killed can keep its websocket request open until the client's TCP gives
    # up retransmitting into the dead network, seconds later: the app's stop does not wait for it.
    return await make_api(
        bind=HOST_ADDRESS,
        ice_host_addresses=HOST_ADDRESS,
        reconnect_grace_s=grace_s,
        socket_ping_interval_s=PING_S,
        socket_ping_timeout_s=PING_S,
        shutdown_timeout=0.5,
    )


async def claimant_joins(open_tab: OpenTab, api: Api, invite_id: str) -> Tab:
    tab = await open_tab(f"/join/{await token_of(api, invite_id)}", viewport=PHONE)
    tab.expected.extend(NETWORK_NOISE)
    await tab.page.get_by_role("button", name="Join call").click()
    await expect(tab.page.locator(".call-status")).to_have_text("In the call", timeout=20_000)
    return tab


async def inspector_watches(open_tab: OpenTab, invite_id: str) -> Tab:
    tab = await open_tab(f"/calls/{invite_id}", user="inspector", init_script=COUNT_PEER_CONNECTIONS)
    tab.expected.extend(NETWORK_NOISE)
    await frames_flow(tab.page, 20.0, "the inspector never saw the claimant's video")
    return tab


async def frames_flow(page: Page, within_s: float, failure: str) -> float:
    """Seconds until the newest peer connection has decoded a few more video frames."""
    started = time.monotonic()
    connection, base = await page.evaluate(FRAMES)
    while True:
        made, frames = await page.evaluate(FRAMES)
        if made != connection:  # a new connection counts from 0
            connection, base = made, 0
        if frames >= base + 5:
            return time.monotonic() - started
        if time.monotonic() - started > within_s:
            raise AssertionError(f"{failure} (within {within_s} s; {frames} frames on connection {made})")
        await asyncio.sleep(0.05)


async def until(check: Callable[[], Awaitable[bool]], within_s: float, failure: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{failure} (within {within_s} s)")
        await asyncio.sleep(0.1)


async def status_of(api: Api, invite_id: str) -> str:
    _, body = await api.call("GET", f"/api/v1/invites/{invite_id}", user="inspector")
    return str(body["status"])


async def has_status(api: Api, invite_id: str, status: str) -> bool:
    return await status_of(api, invite_id) == status


async def offer_over(peer: Peer, sdp: str) -> str:
    ack = await peer.call("rtc_offer", {"type": "offer", "sdp": sdp})
    assert ack["ok"], ack
    return str(ack["answer"]["sdp"])


async def events_of(api: Api, invite_id: str) -> list[dict[str, Any]]:
    for _ in range(10):
        _, body = await api.call("GET", f"/api/v1/invites/{invite_id}/events", user="inspector")
        if body["integrity"]["ok"]:
            return list(body["events"])
        # The endpoint reads the events and the invite's head in two statements, not one snapshot on
        # SQLite: an event landing between them (a stale connection's `left`) reads as a break once.
        await asyncio.sleep(0.1)
    raise AssertionError(f"the event chain is broken: {body['integrity']}")


async def logged(api: Api, invite_id: str, kind: str) -> bool:
    return any(e["kind"] == kind for e in await events_of(api, invite_id))


async def stays_in_call(api: Api, invite_id: str, seconds: float) -> None:
    """The invite is IN_CALL at every look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert await status_of(api, invite_id) == "IN_CALL"
        await asyncio.sleep(0.25)


def video_times(webm: bytes) -> list[float]:
    """When each video frame of a recording is shown, in seconds."""
    with av.open(io.BytesIO(webm), "r") as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        return sorted(float(p.pts * stream.time_base) for p in container.demux(stream) if p.pts is not None)


async def test_claimant_back_from_a_blackout_within_the_grace_keeps_the_call_and_one_recording(
    make_api: MakeApi, launch: Launch, net: ClientNetwork, artifacts: Path
) -> None:
    api = await start_app(make_api)
    invite_id = (await api.invite())["id"]
    phone, desk = await launch(api), await launch(api, client_network=False)
    async with tab_factory(phone, api) as on_phone, tab_factory(desk, api) as on_desk:
        claimant = await claimant_joins(on_phone, api, invite_id)
        inspector = await inspector_watches(on_desk, invite_id)
        page = inspector.page
        await page.get_by_role("button", name="Start recording").click()
        await expect(page.get_by_role("button", name="Stop recording")).to_be_visible()
        await asyncio.sleep(2.0)  # from the recording's first keyframe, asked for at its start

        net.blackout()
        await expect(claimant.page.locator(".call-status")).to_have_text("Connection lost, reconnecting…")
        await claimant.page.screenshot(path=str(artifacts / "reconnect-claimant-reconnecting-phone.png"))
        # The server notices the silent claimant; the call waits for him, the recording goes on.
        await until(lambda: logged(api, invite_id, "claimant_disconnected"), 4.0, "the server never noticed")
        await stays_in_call(api, invite_id, 1.0)
        assert await page.get_by_role("button", name="Stop recording").is_visible()
        net.restore()

        back_s = await frames_flow(page, VIDEO_BACK_S, "no claimant video on the inspector's screen")
        assert (await page.evaluate(FRAMES))[0] == 1, "the inspector's tab renegotiated"
        await expect(claimant.page.locator(".call-status")).to_have_text("In the call")
        await asyncio.sleep(1.5)
        await page.get_by_role("button", name="Stop recording").click()
        await expect(page.locator(".toast").filter(has_text="Recording saved")).to_be_visible()

    assert await status_of(api, invite_id) == "IN_CALL"
    kinds = [e["kind"] for e in await events_of(api, invite_id)]
    assert kinds.count("call_started") == 1 and "call_ended" not in kinds
    assert kinds.index("claimant_disconnected") < kinds.index("claimant_reconnected") < kinds.index("recording_stored")
    _, videos = await api.call("GET", f"/api/v1/invites/{invite_id}/media?kind=video", user="inspector")
    [video] = videos["items"]
    _, webm = await api.call("GET", video["content_url"], user="inspector")
    times = video_times(webm)
    gap, before = max((b - a, a) for a, b in itertools.pairwise(times))
    # One recording: the picture before the blackout (from the keyframe it began at), the gap the
    # blackout left, and the picture after it.
    assert gap > 2.0 and before > 0.5 and times[-1] - (before + gap) > 1.0, (gap, before, times[-1])
    print(f"video back {back_s:.2f} s after the network returned; recording gap {gap:.1f} s")


async def test_claimant_moving_from_wifi_to_mobile_data_is_back_within_seconds(
    make_api: MakeApi, launch: Launch, net: ClientNetwork
) -> None:
    api = await start_app(make_api)
    invite_id = (await api.invite())["id"]
    phone, desk = await launch(api), await launch(api, client_network=False)
    async with tab_factory(phone, api) as on_phone, tab_factory(desk, api) as on_desk:
        claimant = await claimant_joins(on_phone, api, invite_id)
        inspector = await inspector_watches(on_desk, invite_id)

        net.move_client("10.77.0.3")  # the old address is gone at once, the new one works at once
        back_s = await frames_flow(inspector.page, VIDEO_BACK_S, "no claimant video after the address changed")
        assert (await inspector.page.evaluate(FRAMES))[0] == 1, "the inspector's tab renegotiated"
        await expect(claimant.page.locator(".call-status")).to_have_text("In the call")

    assert await status_of(api, invite_id) == "IN_CALL"
    kinds = [e["kind"] for e in await events_of(api, invite_id)]
    assert "claimant_reconnected" in kinds and kinds.count("call_started") == 1 and "call_ended" not in kinds
    print(f"video back {back_s:.2f} s after the address changed")


async def test_a_drop_longer_than_the_grace_ends_the_call_and_files_its_recording(
    make_api: MakeApi, launch: Launch, net: ClientNetwork
) -> None:
    api = await start_app(make_api, grace_s=2.0)
    invite_id = (await api.invite())["id"]
    inspector = Peer("/call")
    bot: Bot = inspector_bot()
    async with tab_factory(await launch(api), api) as on_phone:
        claimant = await claimant_joins(on_phone, api, invite_id)
        await inspector.connect(str(api.client.make_url("/")), {"jwt": api.token("inspector"), "invite_id": invite_id})
        try:
            assert (await inspector.call("join"))["ok"]
            await bot.connect(lambda sdp: offer_over(inspector, sdp))
            await bot.wait_for("video", 10)
            assert (await inspector.call("record_start"))["ok"]
            await asyncio.sleep(1.5)  # the recording has its first keyframe
            net.blackout()
            # Noticed within two pings, then two seconds of grace.
            await until(lambda: has_status(api, invite_id, "ACTIVE"), 4 * PING_S + 2.0 + 2.0, "the call did not end")
            await inspector.wait_for("recording", lambda d: d["active"] is False)
            [ended] = [e for e in await events_of(api, invite_id) if e["kind"] == "call_ended"]
            assert ended["data"]["reason"] == "claimant_lost"
            assert await logged(api, invite_id, "recording_stored")

            net.restore()  # the claimant's page comes back, to a new call
            await until(lambda: has_status(api, invite_id, "IN_CALL"), 5.0, "the claimant did not call again")
            await expect(claimant.page.locator(".call-status")).to_have_text("In the call")
        finally:
            await bot.close()
            await inspector.close()
    assert [e["kind"] for e in await events_of(api, invite_id)].count("call_started") == 2


async def test_inspector_back_from_a_blackout_on_a_new_connection_while_the_claimant_stays(
    make_api: MakeApi, launch: Launch, net: ClientNetwork, artifacts: Path
) -> None:
    api = await start_app(make_api)
    invite_id = (await api.invite())["id"]
    claimant = Peer("/call")
    bot: Bot = claimant_bot()
    await claimant.connect(str(api.client.make_url("/")), {"token": await token_of(api, invite_id)})
    try:
        assert (await claimant.call("join"))["ok"]
        await bot.connect(lambda sdp: offer_over(claimant, sdp))
        async with tab_factory(await launch(api), api) as on_laptop:
            inspector = await inspector_watches(on_laptop, invite_id)
            page = inspector.page

            net.blackout()
            await expect(page.locator(".call-status")).to_have_text("Connection lost, reconnecting…")
            await inspector.snap(artifacts, "reconnect-inspector-reconnecting")
            await stays_in_call(api, invite_id, 1.5)
            net.restore()

            back_s = await frames_flow(page, VIDEO_BACK_S, "no claimant video after the inspector's network returned")
            assert (await page.evaluate(FRAMES))[0] == 2, "the inspector's tab did not build a new connection"
            await expect(page.locator(".call-status")).to_have_text("In the call")
        assert bot.pc.connectionState == "connected"  # the claimant renegotiated nothing
        assert await status_of(api, invite_id) == "IN_CALL"
        print(f"video back {back_s:.2f} s after the inspector's network returned")
    finally:
        await bot.close()
        await claimant.close()
