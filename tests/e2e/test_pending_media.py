"""Captures kept on the server while the object store is down: marked "Upload pending" in calls management
and in the call tab's gallery, shown as usual once the uploader has stored them."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.async_api import expect

from tests.conftest import MakeApi
from tests.e2e.conftest import OpenTab
from tests.e2e.pages import CALLS, file_picture, file_video, row


async def test_pending_captures_are_marked_and_become_openable_once_stored(
    make_api: MakeApi, open_tab: OpenTab, tmp_path: Path, artifacts: Path
) -> None:
    objects = tmp_path / "objects"
    objects.write_text("a file where the store's folder should be: every write fails, as on a lost mount")
    app = await make_api(storage_dir=str(objects), upload_retry_s=0.2)
    invite = await app.invite()
    picture = await file_picture(app, invite["id"])
    video = await file_video(app, invite["id"])
    assert (picture.state, video.state) == ("pending", "pending")

    calls = await open_tab(CALLS, user="inspector", api=app)
    page = calls.page
    await row(page, "Paula Policyholder").get_by_role("button", name="Pictures").click()
    pictures = page.get_by_role("tabpanel", name="Pictures")
    await expect(
        pictures.get_by_role("img", name=re.compile(r"^Picture taken .* until storage is reachable"))
    ).to_have_count(1)
    await expect(pictures.locator(".pending-note")).to_have_text("Upload pending")
    await calls.snap(artifacts, "pictures-pending")
    await page.get_by_role("tab", name="Videos").click()
    videos = page.get_by_role("tabpanel", name="Videos")
    await expect(videos.locator(".video-pending .pending-note")).to_have_text("Upload pending")
    await expect(videos.get_by_role("link")).to_have_count(0)  # nothing to open yet
    await calls.snap(artifacts, "videos-pending")

    call = await open_tab(f"/calls/{invite['id']}", user="inspector", api=app)
    tab = call.page
    await tab.get_by_role("button", name="More options").click()
    await tab.get_by_role("complementary", name="More options").get_by_role("button", name="Screenshots").click()
    gallery = tab.get_by_role("complementary", name=re.compile(r"^Screenshots"))
    await expect(gallery.get_by_role("img", name=re.compile(r"^Screenshot .*, upload pending$"))).to_have_count(1)
    await call.snap(artifacts, "call-tab-gallery-pending")

    objects.unlink()  # the store is back: the uploader stores both and announces them again
    thumb = gallery.get_by_role("button", name=re.compile(r"^Screenshot .*: enlarge$"))
    await expect(thumb).to_have_count(1, timeout=15_000)
    await expect(thumb.locator("img")).to_have_js_property("complete", True)
    assert await thumb.locator("img").evaluate("(img) => img.naturalWidth") == 160
    await call.snap(artifacts, "call-tab-gallery-stored")
    await expect(videos.get_by_role("link", name=re.compile("^Video recorded"))).to_have_count(1, timeout=15_000)
    await page.get_by_role("tab", name="Pictures").click()
    await expect(pictures.get_by_role("link", name=re.compile("^Picture taken"))).to_have_count(1)
    await expect(pictures.locator(".pending-note")).to_have_count(0)
