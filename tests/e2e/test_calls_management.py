"""Calls management in a real browser: invite, follow the call live, re-send, close; read-only view; keyboard."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.e2e.conftest import OpenTab
from tests.e2e.pages import CALLS, assert_every_control_named, focus_ring_visible, row
from tests.signalling.conftest import token_of
from tests.support.sio_peer import Peer
from tests.support.world import Api


async def test_inspector_invites_and_follows_the_call_live(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    tab = await open_tab(CALLS, user="inspector")
    page = tab.page
    await expect(page.get_by_role("heading", name="Calls management", level=1)).to_be_visible()
    await expect(page.get_by_text("Live updates on")).to_be_visible()
    assert "#token" not in page.url and await page.evaluate("() => !!sessionStorage.length")
    await page.evaluate("() => { window.notReloaded = true; }")
    await tab.snap(artifacts, "calls-empty")

    await page.get_by_role("button", name="Create new invitation").click()
    dialog = page.get_by_role("dialog", name="Create new invitation")
    await expect(dialog).to_be_visible()
    contact = dialog.get_by_label("Contact")
    await contact.select_option("c-email")  # email only: only Email is offered
    await expect(dialog.get_by_role("radio")).to_have_count(1)
    await expect(dialog.get_by_role("radio", name="Email")).to_be_checked()
    await expect(dialog.get_by_text("eeva@example.com")).not_to_have_count(0)
    await contact.select_option("c-phone")  # phone only: only SMS
    await expect(dialog.get_by_role("radio")).to_have_count(1)
    await expect(dialog.get_by_role("radio", name="SMS")).to_be_checked()
    await contact.select_option("c-both")
    await expect(dialog.get_by_role("radio")).to_have_count(2)
    await dialog.locator("fieldset").get_by_text("Email", exact=True).click()
    await expect(dialog.get_by_role("radio", name="Email")).to_be_checked()
    task = dialog.get_by_label("Task")
    await expect(task.locator("option").first).to_have_text("No task")
    await task.select_option("t-main")
    await assert_every_control_named(page)
    await tab.snap(artifacts, "invite-dialog")
    await dialog.get_by_role("button", name="Send").click()
    await expect(dialog).to_be_hidden()

    paula = row(page, "Paula Policyholder")
    await expect(paula.locator(".badge")).to_have_text("INVITED")
    await expect(paula).to_contain_text("paula@example.com")
    await expect(paula).to_contain_text("Ines Inspector")
    join = paula.get_by_role("button", name="Join call")
    await expect(join).to_be_disabled()
    await expect(page.locator(".toast").filter(has_text="Invitation sent to Paula Policyholder")).to_be_visible()
    invite_id = await paula.get_attribute("data-invite-id")
    assert invite_id
    _, invite = await app.call("GET", f"/api/v1/invites/{invite_id}", user="inspector")
    assert (invite["method"], invite["task_id"], invite["status"]) == ("email", "t-main", "INVITED")
    await assert_every_control_named(page)
    await tab.snap(artifacts, "calls-invited")

    # The claimant opens the link and joins: the row follows without a reload.
    token = await token_of(app, invite_id)
    status, _ = await app.call("GET", f"/api/v1/join/{token}")
    assert status == 200
    toast = page.locator(".toast").filter(has_text="Paula Policyholder opened the link")
    await expect(toast).to_be_visible()
    box = await toast.bounding_box()
    assert box is not None and box["x"] > 1280 / 2 and box["y"] > 800 / 2  # bottom right
    await tab.snap(artifacts, "toast-link-opened")
    claimant = Peer("/call")
    try:
        await claimant.connect(tab.base + "/", {"token": token})
        assert (await claimant.call("join"))["ok"]
        await expect(paula.locator(".badge")).to_have_text("IN CALL")
        await expect(join).to_be_enabled()
        # The status is explained on keyboard focus, not only on hover.
        badge = paula.locator(".badge")
        await badge.focus()
        await expect(page.get_by_role("tooltip")).to_contain_text("The claimant is in the call")
        await expect(badge).to_have_accessible_description("The claimant is in the call: you can join it.")
        await tab.snap(artifacts, "calls-in-call")
        await badge.press("Escape")
        await expect(page.get_by_role("tooltip")).to_be_hidden()

        async with page.context.expect_page() as opened:
            await join.click()
        call_tab = await opened.value
        assert call_tab.url.endswith(f"/calls/{invite_id}")
        # Closed only once loaded: aiohttp leaks a static file whose request is cut mid-open.
        await expect(call_tab.get_by_role("heading", name="Call with Paula Policyholder")).to_be_visible()
        await expect(call_tab.locator(".call-status")).to_have_text("In the call", timeout=20_000)
        await call_tab.close()
    finally:
        await claimant.close()
    await expect(paula.locator(".badge")).to_have_text("ACTIVE")
    await expect(join).to_be_disabled()
    await expect(toast).to_be_hidden(timeout=15_000)  # gone by itself after a few seconds

    # Re-send, from "More options".
    more = paula.get_by_role("button", name="More options")
    await more.click()
    await expect(page.get_by_role("menuitem", name="Close invite")).to_be_visible()
    await tab.snap(artifacts, "calls-more-options")
    await page.get_by_role("menuitem", name="Re-send invite").click()
    await expect(page.locator(".toast").filter(has_text="Invitation sent again to Paula Policyholder")).to_be_visible()
    await expect(paula).to_contain_text("Sent again once")
    _, invite = await app.call("GET", f"/api/v1/invites/{invite_id}", user="inspector")
    assert invite["resend_count"] == 1

    # Close, after a confirmation; the keyboard can reach the menu too.
    await more.focus()
    await page.keyboard.press("ArrowDown")
    await expect(page.get_by_role("menuitem", name="Close invite")).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("menu")).to_be_hidden()
    await expect(more).to_be_focused()
    await more.click()
    await page.get_by_role("menuitem", name="Close invite").click()
    confirm = page.get_by_role("dialog", name="Close the invitation?")
    await expect(confirm).to_contain_text("Paula Policyholder can no longer use the link")
    await tab.snap(artifacts, "close-confirm")
    await confirm.get_by_role("button", name="Close invite").click()
    await expect(paula.locator(".badge")).to_have_text("CLOSED")
    await expect(paula.get_by_role("button", name="More options")).to_have_count(0)
    await expect(paula.get_by_role("button", name="Event log")).to_be_visible()
    _, invite = await app.call("GET", f"/api/v1/invites/{invite_id}", user="inspector")
    assert invite["status"] == "CLOSED"
    assert await page.evaluate("() => window.notReloaded === true")
    await tab.snap(artifacts, "calls-closed")


async def test_an_invite_made_elsewhere_appears_live(open_tab: OpenTab, app: Api) -> None:
    tab = await open_tab(CALLS, user="handler")
    await expect(tab.page.get_by_text("Live updates on")).to_be_visible()
    await app.invite(contact="c-phone", method="sms", task=None)
    pekka = row(tab.page, "Pekka Phone")
    await expect(pekka.locator(".badge")).to_have_text("INVITED")
    await expect(pekka).to_contain_text("No task")


async def test_read_only_viewer_sees_the_list_but_cannot_act(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    invite = await app.invite()
    claimant = Peer("/call")
    try:
        await claimant.connect(str(app.client.make_url("/")), {"token": await token_of(app, invite["id"])})
        assert (await claimant.call("join"))["ok"]
        tab = await open_tab(CALLS, user="viewer")
        page = tab.page
        paula = row(page, "Paula Policyholder")
        await expect(paula.locator(".badge")).to_have_text("IN CALL")
        for name in ("Event log", "Pictures", "Videos"):
            await expect(paula.get_by_role("button", name=name)).to_be_visible()
        for name in ("Join call", "More options"):
            await expect(page.get_by_role("button", name=name)).to_have_count(0)
        await expect(page.get_by_role("button", name="Create new invitation")).to_have_count(0)
        await expect(page.get_by_text("You have read-only access to this case")).to_be_visible()
        await assert_every_control_named(page)
        await tab.snap(artifacts, "calls-read-only")
    finally:
        await claimant.close()


async def test_keyboard_alone_creates_an_invitation(open_tab: OpenTab, app: Api, artifacts: Path) -> None:
    tab = await open_tab(CALLS, user="inspector")
    page = tab.page
    create = page.get_by_role("button", name="Create new invitation")
    await expect(create).to_be_visible()
    for _ in range(10):
        await page.keyboard.press("Tab")
        if await create.evaluate("(el) => el === document.activeElement"):
            break
    await expect(create).to_be_focused()
    assert await focus_ring_visible(page)
    await page.keyboard.press("Enter")
    contact = page.get_by_role("dialog").get_by_label("Contact")
    await expect(contact).to_be_focused()
    await page.keyboard.press("ArrowDown")  # the first contact: Paula, with phone and email
    await expect(contact).to_have_value("c-both")
    await page.keyboard.press("Tab")
    sms = page.get_by_role("radio", name="SMS")
    await expect(sms).to_be_focused()
    assert await focus_ring_visible(page) or await page.evaluate(
        "() => getComputedStyle(document.activeElement.nextElementSibling).outlineStyle !== 'none'"
    )
    await page.keyboard.press("ArrowRight")
    await expect(page.get_by_role("radio", name="Email")).to_be_checked()
    await page.keyboard.press("Tab")
    task = page.get_by_role("dialog").get_by_label("Task")
    await expect(task).to_be_focused()
    await page.keyboard.press("ArrowDown")
    await expect(task).to_have_value("t-main")
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("button", name="Send")).to_be_focused()
    await tab.snap(artifacts, "invite-dialog-keyboard")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await expect(row(page, "Paula Policyholder").locator(".badge")).to_have_text("INVITED")
    await expect(create).to_be_focused()
    _, listing = await app.call("GET", "/api/v1/cases/case-std/invites", user="inspector")
    assert [(i["method"], i["task_id"]) for i in listing["invites"]] == [("email", "t-main")]


async def test_a_refused_invitation_shows_the_error_in_the_dialog(open_tab: OpenTab, app: Api) -> None:
    tab = await open_tab(CALLS, user="inspector")
    page = tab.page
    await page.get_by_role("button", name="Create new invitation").click()
    dialog = page.get_by_role("dialog")
    await dialog.get_by_role("button", name="Send").click()
    await expect(dialog.get_by_role("alert")).to_have_text("Choose the contact to invite.")
    await dialog.get_by_label("Contact").select_option("c-both")
    # The case loses its contacts meanwhile: the server refuses, and the dialog says so.
    status, _ = await app.call(
        "PUT", "/api/v1/cases/case-std", user="platform",
        json={"portal_id": "p-std", "reference": "CLM-1", "members": [{"user_id": "inspector", "role": "inspector"}]},
    )
    assert status == 200
    tab.expected.append(re.compile(r"status of 4\d\d"))
    await dialog.get_by_role("button", name="Send").click()
    await expect(dialog.get_by_role("alert")).not_to_be_empty()
    await expect(dialog).to_be_visible()


async def test_names_are_shown_as_text_never_as_markup(open_tab: OpenTab, app: Api) -> None:
    name = '<img src=x onerror="window.pwned=1">Eve & "Co"'
    status, body = await app.call(
        "PUT", "/api/v1/cases/case-std", user="platform",
        json={"portal_id": "p-std", "reference": "CLM-1 <b>", "title": "<script>window.pwned=2</script>",
              "contacts": [{"id": "c-x", "name": name, "email": "eve@example.com"}],
              "members": [{"user_id": "inspector", "role": "inspector"}]},
    )
    assert status == 200, body
    await app.invite(contact="c-x", method="email", task=None)
    tab = await open_tab(CALLS, user="inspector")
    page = tab.page
    await expect(row(page, name)).to_have_count(1)
    await expect(page.get_by_text("CLM-1 <b>")).to_be_visible()
    await page.get_by_role("tab", name="Log").click()
    await expect(page.get_by_role("tabpanel", name="Log")).to_contain_text(f"Invitation created for {name}")
    assert await page.evaluate("() => window.pwned === undefined && !document.querySelector('main img, main b')")
