"""The Log, Pictures and Videos tabs: every invite of the case, grouped per call, expandable."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from tests.e2e.conftest import OpenTab
from tests.e2e.pages import CALLS, assert_every_control_named, file_picture, file_video, row
from tests.support.world import Api


async def test_log_tab_lists_each_call_s_events_in_its_own_group(
    open_tab: OpenTab, app: Api, artifacts: Path
) -> None:
    await app.invite(contact="c-both", method="sms")
    await app.invite(contact="c-email", method="email", task=None)
    tab = await open_tab(CALLS, user="viewer")
    page = tab.page
    await page.get_by_role("tab", name="Log").click()
    panel = page.get_by_role("tabpanel", name="Log")
    await expect(panel.locator(".group")).to_have_count(2)
    paula = panel.locator(".group").filter(has=page.get_by_text("Paula Policyholder", exact=True))
    toggle = paula.get_by_role("button")
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(paula).to_contain_text("Invitation created for Paula Policyholder: SMS to +358401234567")
    await expect(paula).to_contain_text("Invitation sent by SMS to +358401234567")
    await tab.snap(artifacts, "log")
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "false")
    await expect(paula.locator(".events")).to_be_hidden()
    await toggle.press("Enter")
    await expect(paula.locator(".events")).to_be_visible()

    # A row's "Event log" button opens the log at that invite's group.
    await page.get_by_role("tab", name="Invites").click()
    await row(page, "Eeva Email").get_by_role("button", name="Event log").click()
    eeva = panel.locator(".group").filter(has=page.get_by_text("Eeva Email", exact=True))
    await expect(page.get_by_role("tab", name="Log")).to_have_attribute("aria-selected", "true")
    await expect(eeva.get_by_role("button")).to_be_focused()
    await expect(eeva).to_contain_text("Invitation created for Eeva Email: Email to eeva@example.com")
    await assert_every_control_named(page)

    # Tabs follow the arrow keys.
    await page.get_by_role("tab", name="Log").focus()
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("tab", name="Pictures")).to_be_focused()
    await expect(page.get_by_role("tabpanel", name="Pictures")).to_be_visible()


async def test_pictures_tab_shows_thumbnails_that_open_full_size(
    open_tab: OpenTab, app: Api, artifacts: Path
) -> None:
    invite = await app.invite()
    other = await app.invite(contact="c-phone", method="sms")
    await file_picture(app, invite["id"], (200, 40, 40))
    tab = await open_tab(CALLS, user="inspector")
    page = tab.page
    paula = row(page, "Paula Policyholder")
    await expect(paula.get_by_role("button", name="Pictures (1)")).to_be_visible()
    await paula.get_by_role("button", name="Pictures").click()
    panel = page.get_by_role("tabpanel", name="Pictures")
    await expect(panel.locator(".group")).to_have_count(2)
    pekka = panel.locator(".group").filter(has=page.get_by_text("Pekka Phone", exact=True))
    await expect(pekka).to_contain_text("No pictures from this call.")
    paula_pictures = panel.locator(".group").filter(has=page.get_by_text("Paula Policyholder", exact=True))
    thumb = paula_pictures.get_by_role("link", name="Picture taken")
    await expect(thumb).to_have_count(1)
    await expect(thumb.locator("img")).to_have_js_property("complete", True)
    assert await thumb.locator("img").evaluate("(img) => img.naturalWidth") == 160

    # A picture filed while the tab is open shows up without a reload.
    await file_picture(app, other["id"], (40, 160, 60))
    await expect(pekka.get_by_role("link", name="Picture taken")).to_have_count(1)
    await expect(row(page, "Pekka Phone").locator("[data-action='row.pictures'] .count")).to_have_text("1")
    await tab.snap(artifacts, "pictures")

    async with page.context.expect_page() as opened:
        await thumb.click()
    full = await opened.value
    await full.wait_for_load_state()
    assert "/content?expires=" in full.url
    size = await full.evaluate("() => [document.images[0].naturalWidth, document.images[0].naturalHeight]")
    assert size == [640, 480]
    await full.screenshot(path=str(artifacts / "picture-window-desktop.png"))
    await full.close()


async def test_videos_tab_opens_a_window_that_plays_the_video(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    invite = await app.invite()
    await file_video(app, invite["id"])
    tab = await open_tab(CALLS, user="viewer")
    page = tab.page
    await page.get_by_role("tab", name="Videos").click()
    panel = page.get_by_role("tabpanel", name="Videos")
    link = panel.get_by_role("link", name="Video recorded")
    await expect(link).to_have_count(1)
    await expect(link).to_contain_text("0:01")
    await tab.snap(artifacts, "videos")
    async with page.context.expect_page() as opened:
        await link.click()
    player = await opened.value
    await player.wait_for_load_state()
    video = player.locator("video")
    await expect(video).to_have_count(1)
    await player.wait_for_function("() => document.querySelector('video').readyState >= 1")
    assert await video.evaluate("(v) => v.videoWidth") == 320
    await player.screenshot(path=str(artifacts / "video-window-desktop.png"))
    await player.close()
