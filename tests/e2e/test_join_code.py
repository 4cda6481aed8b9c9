"""The claimant's SMS security code step in Chromium on a 390x844 screen: the code comes from the dev
outbox, a wrong one is explained in place, the right one opens the intro and the call."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from playwright.async_api import Page, expect

from rooms.delivery.channels import outbox_entries
from tests.conftest import MakeApi
from tests.e2e.conftest import PHONE, OpenTab
from tests.e2e.pages import assert_every_control_named
from tests.support.api_tools import claimant_token, engine_of
from tests.support.world import PORTALS, Api

CODE = re.compile(r"security code is (\d{6})\.")
# The wrong code's 422 is provoked on purpose; Chromium reports every 4xx on the console.
REFUSED_STATUS = re.compile(r"Failed to load resource: the server responded with a status of 4(22|29)")


async def outbox_code(api: Api, invite_id: str) -> str:
    for _ in range(250):
        for entry in await outbox_entries(engine_of(api)):
            match = CODE.search(entry.body)
            if entry.invite_id == invite_id and match:
                return match.group(1)
        await asyncio.sleep(0.02)
    raise AssertionError("no security code SMS in the outbox")


async def code_link(api: Api) -> tuple[str, str]:
    status, out = await api.call("PUT", "/api/v1/portals/p-std", user="platform",
                                 json={**PORTALS["p-std"], "sms_code_required": True})
    assert status == 200, out
    invite = await api.invite()
    return invite["id"], await claimant_token(api, invite["id"])


async def open_phone(open_tab: OpenTab, api: Api, token: str) -> Page:
    tab = await open_tab("/", api=api)
    tab.expected.append(REFUSED_STATUS)
    await tab.page.set_viewport_size(PHONE)
    await tab.page.goto(f"{tab.base}/join/{token}")
    return tab.page


async def test_claimant_enters_the_sms_code_then_joins(
    open_tab: OpenTab, make_api: MakeApi, artifacts: Path
) -> None:
    api = await make_api(ice_host_addresses="127.0.0.1")
    invite_id, token = await code_link(api)
    page = await open_phone(open_tab, api, token)

    await expect(page.get_by_role("heading", name="Enter your security code")).to_be_visible()
    await expect(page.locator("#code-sent")).to_have_text(
        "We sent a 6-digit code by SMS to •••• 67. It is valid for 10 minutes."
    )
    await expect(page.get_by_text("CLM-1")).to_have_count(0)  # nothing about the case before the code
    resend = page.get_by_role("button", name=re.compile(r"^Send a new code \(\d+ s\)$"))
    await expect(resend).to_be_disabled()
    field = page.get_by_label("Security code", exact=True)
    await expect(field).to_be_focused()
    await expect(field).to_have_attribute("inputmode", "numeric")
    await expect(field).to_have_attribute("autocomplete", "one-time-code")
    code = await outbox_code(api, invite_id)

    await field.fill("12")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("alert")).to_have_text("Enter the 6 digits from the SMS.")

    await field.fill(f"{(int(code) + 1) % 1_000_000:06d}")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("alert")).to_have_text("The code is not correct. Attempts left: 4.")
    await expect(field).to_have_attribute("aria-invalid", "true")
    await assert_every_control_named(page)
    await page.wait_for_timeout(200)
    await page.screenshot(path=str(artifacts / "join-code-phone.png"))

    await field.fill(code)
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("heading", name="Video inspection call")).to_be_visible()
    await expect(page.locator(".join-facts")).to_contain_text("CLM-1")

    # The grant lives in this tab's sessionStorage: a reload goes straight to the intro.
    await page.reload()
    join = page.get_by_role("button", name="Join call")
    await expect(join).to_be_visible()
    await join.click()
    await expect(page.get_by_role("status").filter(has_text="In the call")).to_be_visible(timeout=20_000)

    status, body = await api.call("GET", f"/api/v1/invites/{invite_id}/events", user="inspector")
    assert status == 200, body
    kinds = [e["kind"] for e in body["events"]]
    assert kinds.index("sms_code_sent") < kinds.index("sms_code_failed") < kinds.index("sms_code_verified")
    assert kinds.index("sms_code_verified") < kinds.index("joined")


async def test_the_code_step_speaks_finnish_and_a_new_code_waits_a_minute(
    open_tab: OpenTab, make_api: MakeApi, artifacts: Path
) -> None:
    api = await make_api()
    status, out = await api.call("PUT", "/api/v1/portals/p-std", user="platform",
                                 json={**PORTALS["p-std"], "sms_code_required": True, "language": "fi"})
    assert status == 200, out
    invite = await api.invite()
    page = await open_phone(open_tab, api, await claimant_token(api, invite["id"]))
    await expect(page.get_by_role("heading", name="Anna turvakoodi")).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile(r"^Lähetä uusi koodi \(\d+ s\)$"))).to_be_disabled()
    await expect(page.get_by_label("Turvakoodi", exact=True)).to_be_visible()
    await assert_every_control_named(page)

    # Another tab asking within the minute is told to use the code already sent, and waits.
    second = await open_phone(open_tab, api, await claimant_token(api, invite["id"]))
    await expect(second.locator("#code-sent")).to_contain_text("•••• 67")
    await expect(second.get_by_role("button", name=re.compile(r"^Lähetä uusi koodi \(\d+ s\)$"))).to_be_disabled()
    await expect(second.get_by_role("alert")).to_have_count(0)
