"""The whole story in two browsers: an inspector invites, the claimant joins from his phone, they talk.

Inspector: a desktop context on calls management, then the call tab that "Join call" opens.
Claimant: a 390x844 context opening the link from the dev outbox. Chromium's fake camera films a
file made by the test (red left half, blue right half), so the screenshot filed under the task can
be checked by its colours. Everything is real: the app, aiortc, Socket.IO, the browser's WebRTC.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, expect

from tests.conftest import MakeApi
from tests.e2e.conftest import PHONE, Tab, tab_factory, watch
from tests.e2e.pages import (
    CALLS,
    CAMERA_LEFT,
    CAMERA_RIGHT,
    assert_every_control_named,
    halves,
    near,
    row,
)
from tests.support.world import Api

REFUSED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of 410")

PICTURE_SPOT = """() => {
  const v = document.querySelector('SELECTOR');
  const b = v.getBoundingClientRect();
  const s = Math.min(b.width / v.videoWidth, b.height / v.videoHeight);
  const w = v.videoWidth * s, h = v.videoHeight * s;
  return { left: b.left + (b.width - w) / 2, top: b.top + (b.height - h) / 2, w, h };
}"""


async def picture_box(page: Page, selector: str) -> dict[str, float]:
    box: dict[str, float] = await page.evaluate(PICTURE_SPOT.replace("SELECTOR", selector))
    return box


async def video_playing(page: Page, selector: str) -> None:
    """Frames arrive: the element has a size and its time moves on."""
    await page.wait_for_function(
        f"""() => {{ const v = document.querySelector('{selector}');
                    return v && v.videoWidth > 0 && v.readyState >= 2 && v.currentTime > 0.5; }}""",
        timeout=20_000,
    )


async def snap_phone(page: Page, artifacts: Path, name: str) -> None:
    await page.wait_for_timeout(150)
    await page.screenshot(path=str(artifacts / f"{name}-phone.png"))


async def test_the_whole_story(camera_browser: Browser, make_api: MakeApi, artifacts: Path) -> None:
    api = await make_api(demo=True, ice_host_addresses="127.0.0.1")
    async with tab_factory(camera_browser, api) as open_tab:
        calls = await open_tab(CALLS, user="inspector")
        page = calls.page

        # 1. The inspector invites Paula by SMS for the main inspection.
        await page.get_by_role("button", name="Create new invitation").click()
        dialog = page.get_by_role("dialog", name="Create new invitation")
        await dialog.get_by_label("Contact").select_option("c-both")
        await dialog.get_by_role("radio", name="SMS").check()
        await dialog.get_by_label("Task").select_option("t-main")
        await dialog.get_by_role("button", name="Send").click()
        paula = row(page, "Paula Policyholder")
        badge = paula.locator(".badge")
        await expect(badge).to_have_text("INVITED")
        invite_id = await paula.get_attribute("data-invite-id")
        assert invite_id

        # 2. The claimant opens the link from the outbox on his phone; the inspector is told.
        claimant_tab = await open_tab("/dev/outbox", viewport=PHONE)
        claimant_tab.expected.append(REFUSED_STATUS)
        claimant = claimant_tab.page
        link = claimant.get_by_role("link", name="Open link").first
        href = await link.get_attribute("href")
        assert href and "/join/" in href
        # The message carries the configured public address; this test server listens elsewhere.
        join_url = claimant_tab.base + urlsplit(href).path
        await claimant.goto(join_url)
        await expect(claimant.get_by_role("heading", name="Video inspection call")).to_be_visible()
        await expect(page.locator(".toast").filter(has_text="Paula Policyholder opened the link")).to_be_visible()
        await snap_phone(claimant, artifacts, "story-claimant-intro")

        # 3. The claimant joins: IN CALL, and "Join call" opens the inspector's call tab.
        await claimant.get_by_role("button", name="Join call").click()
        await expect(claimant.get_by_role("status").filter(has_text="In the call")).to_be_visible(timeout=20_000)
        await expect(badge).to_have_text("IN CALL")
        join = paula.get_by_role("button", name="Join call")
        await expect(join).to_be_enabled()
        async with page.context.expect_page() as opened:
            await join.click()
        call = watch(Tab(await opened.value, calls.context, calls.base))
        tab = call.page
        await expect(tab.get_by_role("heading", name="Call with Paula Policyholder")).to_be_visible()
        await expect(tab.locator(".call-status")).to_have_text("In the call", timeout=20_000)
        await video_playing(tab, ".remote-video")
        await expect(tab.locator(".stage-waiting")).to_be_hidden()
        await assert_every_control_named(tab)
        await call.snap(artifacts, "story-call")

        # 4. A screenshot: in the gallery, and under the task's multimedia with the camera's colours.
        await tab.get_by_role("button", name="Take screenshot").click()
        await expect(tab.locator(".toast").filter(has_text="Screenshot saved")).to_be_visible()
        await tab.get_by_role("button", name="More options").click()
        more = tab.get_by_role("complementary", name="More options")
        await expect(more).to_be_visible()
        await more.get_by_role("button", name="Screenshots").click()
        gallery = tab.get_by_role("complementary", name=re.compile(r"^Screenshots"))
        thumb = gallery.get_by_role("button", name=re.compile(r"^Screenshot .*: enlarge$"))
        await expect(thumb).to_have_count(1)
        await expect(gallery.get_by_role("heading")).to_have_text("Screenshots (1)")
        await thumb.click()
        lightbox = tab.get_by_role("dialog", name=re.compile(r"^Screenshot "))
        await expect(lightbox.locator("img")).to_be_visible()
        await tab.wait_for_function("() => document.querySelector('.lightbox-image').naturalWidth > 0")
        await call.snap(artifacts, "story-call-screenshot")
        await lightbox.get_by_role("button", name="Close").click()
        await expect(lightbox).to_be_hidden()
        _, multimedia = await api.call("GET", "/api/v1/cases/case-std/tasks/t-main/multimedia", user="inspector")
        pictures = [m for m in multimedia["items"] if m["kind"] == "picture"]
        assert len(pictures) == 1 and pictures[0]["invite_id"] == invite_id
        status, jpeg = await api.call("GET", f"/api/v1/media/{pictures[0]['id']}/content", user="inspector")
        assert status == 200 and isinstance(jpeg, bytes)
        left, right = halves(jpeg)
        assert near(left, CAMERA_LEFT) and near(right, CAMERA_RIGHT), (left, right)

        # 5. A few seconds of recording: red while on, the claimant sees the indicator.
        record = tab.get_by_role("button", name="Start recording")
        await record.click()
        stop = tab.get_by_role("button", name="Stop recording")
        await expect(stop).to_have_attribute("aria-pressed", "true")
        assert await stop.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(180, 35, 24)"
        await expect(claimant.locator(".recording-indicator")).to_be_visible()
        await snap_phone(claimant, artifacts, "story-claimant-recording")
        await tab.wait_for_timeout(3000)
        await call.snap(artifacts, "story-call-recording")
        await stop.click()
        await expect(tab.locator(".toast").filter(has_text="Recording saved")).to_be_visible()
        await expect(claimant.locator(".recording-indicator")).to_be_hidden()
        await expect(tab.get_by_role("button", name="Start recording")).to_have_attribute("aria-pressed", "false")

        # 6. Chat both ways.
        await more.get_by_role("button", name="Chat").click()
        chat = tab.locator("#chat-panel")
        await chat.get_by_label("Message").fill("Please show the ceiling")
        await chat.get_by_role("button", name="Send").click()
        await expect(chat).to_contain_text("Please show the ceiling")
        await claimant.get_by_role("button", name="Chat").click()
        their_chat = claimant.locator("#chat-panel")
        await expect(their_chat).to_contain_text("Please show the ceiling")
        await their_chat.get_by_label("Message").fill("Here it is")
        await their_chat.get_by_role("button", name="Send").click()
        await expect(chat.locator(".chat-theirs")).to_contain_text("Here it is")
        await expect(chat.locator(".chat-theirs .chat-from")).to_have_text("Paula Policyholder")
        await call.snap(artifacts, "story-call-chat")
        await snap_phone(claimant, artifacts, "story-claimant-chat")
        await claimant.get_by_role("button", name="Close chat").click()

        # 7. The pointer: where the inspector clicks on the picture, the claimant sees it.
        await more.get_by_role("button", name="Cursor").click()
        await expect(more.get_by_role("button", name="Cursor")).to_have_attribute("aria-pressed", "true")
        box = await picture_box(tab, ".remote-video")
        await tab.mouse.click(box["left"] + 0.25 * box["w"], box["top"] + 0.6 * box["h"])
        pointer = claimant.locator(".remote-cursor")
        await expect(pointer).to_be_visible()
        await expect(pointer).to_contain_text("Ines Inspector")
        await claimant.wait_for_function("""() => {
          const c = document.querySelector('.remote-cursor');
          return Math.abs(Number(c.dataset.x) - 0.25) < 0.02 && Math.abs(Number(c.dataset.y) - 0.6) < 0.02;
        }""")
        theirs = await picture_box(claimant, ".preview")
        spot = await pointer.bounding_box()
        assert spot is not None
        fx, fy = (spot["x"] - theirs["left"]) / theirs["w"], (spot["y"] - theirs["top"]) / theirs["h"]
        assert abs(fx - 0.25) < 0.03 and abs(fy - 0.6) < 0.03, (fx, fy)
        mine = await tab.locator(".own-cursor").bounding_box()
        assert mine is not None
        assert abs((mine["x"] - box["left"]) / box["w"] - 0.25) < 0.03
        await tab.locator(".inspector-stage").press("ArrowRight")  # the keyboard moves it too
        await claimant.wait_for_function(
            "() => Math.abs(Number(document.querySelector('.remote-cursor').dataset.x) - 0.27) < 0.005")
        await call.snap(artifacts, "story-call-cursor")
        await snap_phone(claimant, artifacts, "story-claimant-cursor")
        await more.get_by_role("button", name="Cursor").click()
        await expect(pointer).to_be_hidden()

        # 8. Camera switch: allowed once, declined once; the inspector sees each answer.
        switch = more.get_by_role("button", name="Switch camera")
        switch_status = more.locator(".option-status").first
        await switch.click()
        await expect(switch_status).to_contain_text("Waiting for the answer")
        ask = claimant.get_by_role("dialog", name="Switch camera?")
        await expect(ask).to_be_visible()
        await snap_phone(claimant, artifacts, "story-claimant-switch")
        await ask.get_by_role("button", name="Allow").click()
        await expect(switch_status).to_have_text("Paula Policyholder allowed the camera switch.")
        await expect(tab.locator(".call-who")).to_contain_text("front camera")
        await switch.click()
        await expect(ask).to_be_visible()
        await ask.get_by_role("button", name="Decline").click()
        await expect(switch_status).to_have_text("Paula Policyholder declined the camera switch.")
        await expect(tab.locator(".call-who")).to_contain_text("front camera")
        await call.snap(artifacts, "story-call-switch")

        # 9. The inspector ends the call: both sides say so, the invite goes ACTIVE.
        await tab.get_by_role("button", name="End call").click()
        confirm = tab.get_by_role("dialog", name="End the call?")
        await confirm.get_by_role("button", name="End call").click()
        await expect(tab.get_by_role("heading", name="The call has ended")).to_be_visible()
        await expect(claimant.get_by_role("heading", name="The call has ended")).to_be_visible()
        await expect(badge).to_have_text("ACTIVE")
        await call.snap(artifacts, "story-call-ended")
        await tab.close()

        # 10. The recording plays from the Videos tab.
        await page.get_by_role("tab", name="Videos").click()
        video_link = page.locator("a.video-item").first
        await expect(video_link).to_be_visible()
        async with page.context.expect_page() as opened:
            await video_link.click()
        player = await opened.value
        await player.wait_for_function(
            "() => { const v = document.querySelector('video'); return v && v.readyState >= 2 && v.duration > 2; }",
            timeout=15_000,
        )
        await player.close()
        events = await log_kinds(api, invite_id)
        assert {"joined", "screenshot_taken", "recording_stored", "chat", "cursor_shown", "cursor_hidden",
                "camera_switch_requested", "end_call", "left"} <= events, events

        # 11. Closing the invite kills the link.
        await page.get_by_role("tab", name="Invites").click()
        await paula.get_by_role("button", name="More options").click()
        await page.get_by_role("menuitem", name="Close invite").click()
        close = page.get_by_role("dialog", name="Close the invitation?")
        await close.get_by_role("button", name="Close invite").click()
        await expect(badge).to_have_text("CLOSED")
        await claimant.goto(join_url)
        await expect(claimant.get_by_role("heading", name="This link is no longer valid")).to_be_visible()
        await snap_phone(claimant, artifacts, "story-claimant-closed")

        # 12. A read-only user sees the list, and nothing that changes it.
        viewer = (await open_tab(CALLS, user="viewer")).page
        vera_row = row(viewer, "Paula Policyholder")
        await expect(vera_row.locator(".badge")).to_have_text("CLOSED")
        for name in ("Event log", "Pictures", "Videos"):
            await expect(vera_row.get_by_role("button", name=re.compile(f"^{name}"))).to_be_visible()
        for name in ("Join call", "More options", "Close invite", "Re-send invite"):
            await expect(vera_row.get_by_role("button", name=name)).to_have_count(0)
        await expect(viewer.get_by_role("button", name="Create new invitation")).to_have_count(0)


async def log_kinds(api: Api, invite_id: str) -> set[str]:
    _, log = await api.call("GET", f"/api/v1/invites/{invite_id}/events", user="inspector")
    return {e["kind"] for e in log["events"]}
