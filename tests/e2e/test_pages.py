"""The other pages in a real browser: index, demo login and outbox, no sign-in, language, contrast."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.conftest import MakeApi
from tests.e2e.conftest import OpenTab
from tests.e2e.pages import CALLS, assert_every_control_named, contrast_ratios, row
from tests.signalling.conftest import token_of
from tests.support.sio_peer import Peer
from tests.support.world import Api


async def test_demo_login_opens_the_demo_case(open_tab: OpenTab, make_api: MakeApi, artifacts: Path) -> None:
    demo = await make_api(seed=False, demo=True)
    tab = await open_tab("/", api=demo)
    page = tab.page
    await expect(page.get_by_role("link", name="Calls management of the demo case")).to_be_visible()
    await assert_every_control_named(page)
    await tab.snap(artifacts, "index-demo")
    await page.get_by_role("link", name="Log in as a demo user").click()
    await expect(page.get_by_role("heading", name="Log in as a demo user")).to_be_visible()
    cards = page.locator(".user-card")
    await expect(cards).to_have_count(4)
    await expect(cards.filter(has_text="Vera Viewer")).to_contain_text("Read-only")
    await expect(cards.filter(has_text="Ines Inspector")).to_contain_text("Full access")
    await tab.snap(artifacts, "login")
    await page.get_by_role("link", name="Log in as Ines Inspector").click()
    await expect(page.get_by_role("heading", name="Calls management")).to_be_visible()
    await expect(page.get_by_text("CLM-2026-00042")).to_be_visible()
    assert page.url.endswith("/cases/demo-case/calls")  # the token left the address bar
    await page.get_by_role("button", name="Create new invitation").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_label("Contact").select_option("c-holder")
    await dialog.get_by_role("button", name="Send").click()
    await expect(row(page, "Paula Policyholder").locator(".badge")).to_have_text("INVITED")

    await page.goto(tab.base + "/dev/outbox")
    await expect(page.get_by_role("heading", name="Outbox")).to_be_visible()
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("tbody tr")).to_contain_text("+358401234567")
    assert "/join/" in (await page.get_by_role("link", name="Open link").get_attribute("href") or "")
    await assert_every_control_named(page)
    await tab.snap(artifacts, "outbox")


async def test_without_a_token_the_page_says_how_to_sign_in(
    open_tab: OpenTab, make_api: MakeApi, artifacts: Path
) -> None:
    demo = await make_api(seed=False, demo=True)
    tab = await open_tab("/cases/demo-case/calls", api=demo)
    await expect(tab.page.get_by_role("heading", name="Not signed in")).to_be_visible()
    await expect(tab.page.get_by_role("alert")).to_contain_text("Open calls management from the claims platform")
    await expect(tab.page.get_by_role("link", name="Log in as a demo user")).to_have_attribute("href", "/dev/login")
    await tab.snap(artifacts, "calls-no-token")

    plain = await open_tab(CALLS)  # not demo mode: no demo login to offer
    await expect(plain.page.get_by_role("heading", name="Not signed in")).to_be_visible()
    await expect(plain.page.get_by_role("link", name="Log in as a demo user")).to_have_count(0)


async def test_a_bad_token_or_a_foreign_case_is_explained(open_tab: OpenTab, app: Api) -> None:
    tab = await open_tab(CALLS, token="not-a-jwt")
    tab.expected.append(re.compile(r"status of 401"))
    await expect(tab.page.get_by_role("heading", name="Sign-in expired")).to_be_visible()
    other = await open_tab(CALLS, user="outsider")
    other.expected.append(re.compile(r"status of 404"))
    await expect(other.page.get_by_role("alert")).to_contain_text("does not exist, or you do not have access")


async def test_text_follows_the_portal_language_then_the_browser(
    open_tab: OpenTab, app: Api, artifacts: Path
) -> None:
    unsigned = await open_tab(CALLS, locale="fi-FI")
    await expect(unsigned.page.get_by_role("heading", name="Et ole kirjautunut")).to_be_visible()
    assert await unsigned.page.evaluate("() => document.documentElement.lang") == "fi"

    english = await open_tab(CALLS, user="inspector", locale="fi-FI")  # the portal speaks English
    await expect(english.page.get_by_role("heading", name="Calls management")).to_be_visible()

    status, _ = await app.call("PUT", "/api/v1/portals/p-std", user="platform",
                               json={"name": "Standard portal", "insurer_company": "Aurora Insurance",
                                     "language": "fi", "external_case_handler_rights": ["customer_communication"]})
    assert status == 200
    invite = await app.invite(contact="c-both", method="email")
    await app.invite(contact="c-phone", method="sms")
    claimant = Peer("/call")
    try:
        await claimant.connect(str(app.client.make_url("/")), {"token": await token_of(app, invite["id"])})
        assert (await claimant.call("join"))["ok"]
        finnish = await open_tab(CALLS, user="inspector", locale="en-GB")
        page = finnish.page
        await expect(page.get_by_role("heading", name="Puheluiden hallinta")).to_be_visible()
        await expect(page.get_by_role("button", name="Luo uusi kutsu")).to_be_visible()
        await expect(row(page, "Paula Policyholder").locator(".badge")).to_have_text("PUHELUSSA")
        await expect(row(page, "Paula Policyholder").get_by_role("button", name="Liity puheluun")).to_be_enabled()
        await expect(row(page, "Pekka Phone").locator(".badge")).to_have_text("KUTSUTTU")
        await assert_every_control_named(page)
        await finnish.snap(artifacts, "calls-finnish")
        await page.get_by_role("tab", name="Loki").click()
        await expect(page.get_by_role("tabpanel", name="Loki")).to_contain_text("Kutsu luotu yhteyshenkilölle")
        await finnish.snap(artifacts, "log-finnish")
    finally:
        await claimant.close()


async def test_text_and_badges_have_enough_contrast(open_tab: OpenTab, app: Api) -> None:
    """WCAG AA: 4.5:1 for the text of badges, buttons, tabs, muted text and links."""
    for contact, method in (("c-both", "sms"), ("c-phone", "sms"), ("c-email", "email")):
        await app.invite(contact=contact, method=method)
    _, listing = await app.call("GET", "/api/v1/cases/case-std/invites", user="inspector")
    closed = listing["invites"][0]["id"]
    await app.call("POST", f"/api/v1/invites/{closed}/close", user="inspector")
    in_call = listing["invites"][1]["id"]
    claimant = Peer("/call")
    try:
        await claimant.connect(str(app.client.make_url("/")), {"token": await token_of(app, in_call)})
        assert (await claimant.call("join"))["ok"]
        tab = await open_tab(CALLS, user="inspector")
        page = tab.page
        await expect(page.locator("tbody .badge")).to_have_count(3)
        await expect(page.locator("tbody .badge").filter(has_text="IN CALL")).to_have_count(1)
        await page.get_by_text("What the statuses mean").click()
        ratios = await contrast_ratios(page, [
            ".badge", ".button", ".tab", ".muted", ".eyebrow", ".case-address", "th", ".count", ".tag", ".live",
        ])
        assert {r[1] for r in ratios if r[0] == ".badge"} == {"INVITED", "IN CALL", "ACTIVE", "CLOSED"}
        low = [r for r in ratios if r[2] < 4.5]
        assert not low, low
    finally:
        await claimant.close()
