"""The claimant's page /join/{token} in Chromium on a 390x844 screen, against a python inspector.

The browser is the claimant with Chromium's fake camera and microphone; the inspector is a
python-socketio peer on /call with an aiortc bot behind its `rtc_offer`, so the test can see the
browser's video arrive at the inspector's side of the server.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.conftest import MakeApi
from tests.e2e.conftest import CHROMIUM_ARGS, PHONE, OpenTab
from tests.e2e.pages import assert_every_control_named
from tests.support.api_tools import claimant_token
from tests.support.binaries import find_binary
from tests.support.nodes import offer_over
from tests.support.rtc_bots import inspector_bot
from tests.support.sio_peer import Peer
from tests.support.world import PORTALS, Api

# Where the pointer is, as fractions of the preview's picture.
SPOT = """() => {
  const v = document.querySelector('.preview').getBoundingClientRect();
  const c = document.querySelector('.remote-cursor').getBoundingClientRect();
  const vid = document.querySelector('.preview');
  const s = Math.min(v.width / vid.videoWidth, v.height / vid.videoHeight);
  const w = vid.videoWidth * s, h = vid.videoHeight * s;
  return [(c.left - (v.left + (v.width - w) / 2)) / w, (c.top - (v.top + (v.height - h) / 2)) / h];
}"""
REFUSED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of 4(04|10)")


async def phone_snap(page: Page, artifacts: Path, name: str) -> None:
    await page.wait_for_timeout(200)
    await page.screenshot(path=str(artifacts / f"join-{name}-phone.png"))


async def open_join(open_tab: OpenTab, api: Api, token: str) -> Page:
    tab = await open_tab("/", api=api)
    tab.expected.append(REFUSED_STATUS)
    await tab.page.set_viewport_size(PHONE)
    await tab.page.goto(f"{tab.base}/join/{token}")
    return tab.page


async def test_claimant_joins_and_the_inspector_drives_the_call(
    open_tab: OpenTab, make_api: MakeApi, artifacts: Path
) -> None:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite = await api.invite()
    page = await open_join(open_tab, api, await claimant_token(api, invite["id"]))

    await expect(page.get_by_role("heading", name="Video inspection call")).to_be_visible()
    await expect(page.locator(".join-facts")).to_contain_text("Ines Inspector")
    join = page.get_by_role("button", name="Join call")
    await expect(join).to_be_visible()
    await phone_snap(page, artifacts, "intro")

    await join.click()
    await expect(page.get_by_role("status").filter(has_text="In the call")).to_be_visible(timeout=20_000)
    await assert_every_control_named(page)

    inspector = Peer("/call")
    bot = inspector_bot()
    try:
        await inspector.connect(str(api.client.make_url("/")), {"jwt": api.token("inspector"),
                                                                "invite_id": invite["id"]})
        assert (await inspector.call("join"))["ok"]
        await bot.connect(lambda sdp: offer_over(inspector, sdp))
        await bot.wait_for("video", 30, within_s=20)  # the browser's camera reaches the inspector
        await bot.wait_for("audio", 25, within_s=10)  # and so does its microphone
        # The inspector's voice comes back to the page's audio element.
        await page.wait_for_function("""() => {
          const a = document.querySelector('.remote-audio');
          return a && a.srcObject && a.srcObject.getAudioTracks().some((t) => t.readyState === 'live' && !t.muted);
        }""", timeout=10_000)

        # Chat both ways.
        assert (await inspector.call("chat", {"text": "Hello, please show the kitchen floor"}))["ok"]
        chat_button = page.get_by_role("button", name="Chat")
        await chat_button.click()
        panel = page.locator("#chat-panel")
        await expect(panel).to_contain_text("Hello, please show the kitchen floor")
        await page.get_by_label("Message").fill("Here it is")
        await page.get_by_role("button", name="Send").click()
        await inspector.wait_for("chat", lambda m: m["text"] == "Here it is")
        await expect(panel).to_contain_text("Here it is")
        await phone_snap(page, artifacts, "chat")
        await page.get_by_role("button", name="Close chat").click()
        await expect(panel).to_be_hidden()

        # The inspector's pointer, at the same spot of the picture.
        assert (await inspector.call("cursor", {"action": "show"}))["ok"]
        cursor = page.locator(".remote-cursor")
        await page.wait_for_timeout(200)
        await expect(cursor).to_be_hidden()  # no position yet
        assert (await inspector.call("cursor", {"action": "move", "x": 0.25, "y": 0.5}))["ok"]
        await expect(cursor).to_be_visible()
        await expect(cursor).to_contain_text("Ines Inspector")
        spot = await page.evaluate(SPOT)
        assert abs(spot[0] - 0.25) < 0.03 and abs(spot[1] - 0.5) < 0.03, spot
        await phone_snap(page, artifacts, "cursor")
        assert (await inspector.call("cursor", {"action": "hide"}))["ok"]
        await expect(cursor).to_be_hidden()

        # Recording shows while it is on.
        assert (await inspector.call("record_start"))["ok"]
        indicator = page.locator(".recording-indicator")
        await expect(indicator).to_be_visible()
        await expect(indicator).to_have_text("Recording")
        await phone_snap(page, artifacts, "recording")
        assert (await inspector.call("record_stop"))["ok"]
        await expect(indicator).to_be_hidden()

        # A camera switch asks the claimant; Allow switches and tells the room the new facing.
        request = await inspector.call("camera_switch_request")
        assert request["ok"], request
        dialog = page.get_by_role("dialog", name="Switch camera?")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("Ines Inspector asks to switch to your other camera.")
        await phone_snap(page, artifacts, "switch-dialog")
        await dialog.get_by_role("button", name="Allow").click()
        result = await inspector.wait_for("camera_switch_result",
                                          lambda r: r["request_id"] == request["request_id"])
        assert result["result"] == "accepted"
        await inspector.wait_for(
            "presence", lambda p: any(x["role"] == "claimant" and x["facing"] == "user" for x in p["participants"])
        )
        await expect(dialog).to_be_hidden()
        # The front camera's preview is mirrored: the pointer is drawn mirrored too, on the same object.
        assert (await inspector.call("cursor", {"action": "move", "x": 0.25, "y": 0.5}))["ok"]
        await expect(cursor).to_be_visible()
        # Placed again once the new track's size is known.
        await page.wait_for_function(f"() => {{ const [x, y] = ({SPOT})(); "
                                     "return Math.abs(x - 0.75) < 0.03 && Math.abs(y - 0.5) < 0.03; }")
        assert (await inspector.call("cursor", {"action": "hide"}))["ok"]
        packets = bot.sinks["video"].packets
        await bot.wait_for("video", packets + 20, within_s=10)  # the replaced track keeps flowing

        # A declined one changes nothing.
        request = await inspector.call("camera_switch_request")
        await dialog.get_by_role("button", name="Decline").click()
        result = await inspector.wait_for("camera_switch_result",
                                          lambda r: r["request_id"] == request["request_id"])
        assert result["result"] == "declined"

        # The claimant may switch by himself.
        inspector.received["presence"].clear()
        await page.get_by_role("button", name="Switch camera").click()
        await inspector.wait_for(
            "presence",
            lambda p: any(x["role"] == "claimant" and x["facing"] == "environment" for x in p["participants"]),
        )

        # Mute is shown and told to the room.
        await page.get_by_role("button", name="Mute").click()
        await expect(page.get_by_role("button", name="Unmute")).to_have_attribute("aria-pressed", "true")
        await inspector.wait_for(
            "presence", lambda p: any(x["role"] == "claimant" and x["muted"] for x in p["participants"])
        )

        # The claimant ends the call.
        await page.get_by_role("button", name="End call").click()
        await inspector.wait_for("call_ended")
        await expect(page.get_by_role("heading", name="The call has ended")).to_be_visible()
        await phone_snap(page, artifacts, "ended")
    finally:
        await bot.close()
        await inspector.close()


async def test_the_inspector_ending_the_call_shows_the_ended_page(
    open_tab: OpenTab, make_api: MakeApi, artifacts: Path
) -> None:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite = await api.invite()
    page = await open_join(open_tab, api, await claimant_token(api, invite["id"]))
    await page.get_by_role("button", name="Join call").click()
    await expect(page.get_by_role("status").filter(has_text="In the call")).to_be_visible(timeout=20_000)
    inspector = Peer("/call")
    try:
        await inspector.connect(str(api.client.make_url("/")), {"jwt": api.token("inspector"),
                                                                "invite_id": invite["id"]})
        assert (await inspector.call("join"))["ok"]
        assert (await inspector.call("end_call"))["ok"]
        await expect(page.get_by_role("heading", name="The call has ended")).to_be_visible()
    finally:
        await inspector.close()


async def test_a_closed_or_unknown_link_shows_a_clear_page(
    open_tab: OpenTab, app: Api, artifacts: Path
) -> None:
    invite = await app.invite()
    token = await claimant_token(app, invite["id"])
    status, body = await app.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200, body
    page = await open_join(open_tab, app, token)
    await expect(page.get_by_role("heading", name="This link is no longer valid")).to_be_visible()
    await expect(page.get_by_role("button", name="Join call")).to_have_count(0)
    await phone_snap(page, artifacts, "closed")

    await page.goto(page.url.rsplit("/", 1)[0] + "/not-a-real-token")
    await expect(page.get_by_role("heading", name="Link not found")).to_be_visible()
    await phone_snap(page, artifacts, "unknown")


@pytest.mark.parametrize(("dropped_flag", "message", "name"), [
    # Without the fake UI, headless Chromium refuses getUserMedia as a user pressing "Block" would.
    ("--use-fake-ui-for-media-stream", "Camera and microphone access was refused", "permission-refused"),
    # Without the fake devices, the machine has no camera at all.
    ("--use-fake-device-for-media-stream", "No camera or microphone was found", "no-camera"),
])
async def test_a_refused_or_missing_camera_says_so(
    browser: Browser, make_api: MakeApi, artifacts: Path, dropped_flag: str, message: str, name: str
) -> None:
    api = await make_api()
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    args = [a for a in CHROMIUM_ARGS if a != dropped_flag]
    strict = await browser.browser_type.launch(executable_path=find_binary("chromium"), headless=True, args=args)
    try:
        context = await strict.new_context(viewport=PHONE, locale="en-GB")
        page = await context.new_page()
        await page.goto(str(api.client.make_url(f"/join/{token}")))
        await page.get_by_role("button", name="Join call").click()
        await expect(page.get_by_role("alert")).to_contain_text(message)
        await expect(page.get_by_role("button", name="Join call")).to_be_enabled()
        await phone_snap(page, artifacts, name)
        await context.close()
    finally:
        await strict.close()


async def test_the_portal_s_language_is_used(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    body = {**PORTALS["p-std"], "language": "fi"}
    status, out = await app.call("PUT", "/api/v1/portals/p-std", user="platform", json=body)
    assert status == 200, out
    invite = await app.invite()
    page = await open_join(open_tab, app, await claimant_token(app, invite["id"]))
    await expect(page.get_by_role("heading", name="Videotarkastuspuhelu")).to_be_visible()
    await expect(page.get_by_role("button", name="Liity puheluun")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "fi")
    await phone_snap(page, artifacts, "intro-fi")
