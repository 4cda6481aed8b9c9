"""The inspector's call tab /calls/{invite_id} outside the happy path: who may open it, and when."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.e2e.conftest import DESKTOP, PHONE, OpenTab
from tests.e2e.pages import assert_every_control_named, focus_ring_visible
from tests.support.world import PORTALS, Api

REFUSED = re.compile(r"Failed to load resource: the server responded with a status of 40[14]")


async def test_without_a_sign_in_the_tab_says_where_to_open_it(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    invite = await app.invite()
    tab = await open_tab(f"/calls/{invite['id']}")
    await expect(tab.page.get_by_role("heading", name="Sign in from the claims platform")).to_be_visible()
    await expect(tab.page.get_by_text("Open the call with “Join call” in calls management.")).to_be_visible()
    await tab.snap(artifacts, "call-tab-no-sign-in")


async def test_unknown_invite_and_read_only_user_are_refused(open_tab: OpenTab, app: Api) -> None:
    tab = await open_tab("/calls/inv-unknown", user="inspector")
    tab.expected.append(REFUSED)
    await expect(tab.page.get_by_role("heading", name="Call not found")).to_be_visible()

    invite = await app.invite()
    viewer = await open_tab(f"/calls/{invite['id']}", user="viewer")
    await expect(viewer.page.get_by_role("heading", name="You cannot join this call")).to_be_visible()
    await expect(viewer.page.get_by_role("button", name="Take screenshot")).to_have_count(0)


async def test_a_closed_invite_shows_the_closed_page(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    invite = await app.invite()
    status, _ = await app.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200
    tab = await open_tab(f"/calls/{invite['id']}", user="inspector")
    await expect(tab.page.get_by_role("heading", name="This invite is closed")).to_be_visible()
    back = tab.page.get_by_role("link", name="Back to calls management")
    await expect(back).to_have_attribute("href", "/cases/case-std/calls")
    await tab.snap(artifacts, "call-tab-closed")


async def test_before_the_claimant_joins_the_tab_waits_and_captures_are_off(
    open_tab: OpenTab, app: Api, artifacts: Path
) -> None:
    finnish = {**PORTALS["p-std"], "language": "fi"}
    status, _ = await app.call("PUT", "/api/v1/portals/p-std", user="platform", json=finnish)
    assert status == 200
    invite = await app.invite()
    tab = await open_tab(f"/calls/{invite['id']}", user="inspector")
    page = tab.page
    # The portal speaks Finnish: the tab follows it, whatever the browser's language.
    await expect(page.get_by_role("heading", name="Puhelu: Paula Policyholder")).to_be_visible()
    await expect(page.locator(".call-status")).to_have_text("Odotetaan asiakasta", timeout=20_000)
    await expect(page.get_by_role("button", name="Ota kuvakaappaus")).to_be_disabled()
    await expect(page.get_by_role("button", name="Aloita tallennus")).to_be_disabled()
    await expect(page.locator(".stage-waiting")).to_have_text("Odotetaan asiakkaan kameraa…")
    await assert_every_control_named(page)

    # Keyboard only: the controls are reachable and show where the focus is.
    await page.get_by_role("button", name="Lisää toimintoja").focus()
    await page.keyboard.press("Enter")
    panel = page.get_by_role("complementary", name="Lisää toimintoja")
    await expect(panel).to_be_visible()
    await expect(panel.get_by_role("button", name="Vaihda kameraa")).to_be_disabled()
    await expect(panel.get_by_role("button", name="Osoitin")).to_be_focused()  # the first usable option
    assert await focus_ring_visible(page)
    await page.keyboard.press("Enter")
    await expect(panel.get_by_role("button", name="Osoitin")).to_have_attribute("aria-pressed", "true")
    await tab.snap(artifacts, "call-tab-waiting")
    await page.set_viewport_size(PHONE)  # five controls and the panel fit a phone without sideways scrolling
    assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    await page.set_viewport_size(DESKTOP)
    await panel.get_by_role("button", name="Sulje lisätoiminnot").click()
    await expect(panel).to_be_hidden()
    await expect(page.get_by_role("button", name="Lisää toimintoja")).to_be_focused()
