"""Browser tests: Playwright drives Debian's Chromium (never `playwright install`) against the real app.

One browser for the session; one context per page (so sessionStorage, which holds the staff
token, is per test); the app from `make_api`, which pages depend on so that they close before
the server stops. Screenshots of every page state go to var/artifacts/e2e/ (CI keeps that folder),
at desktop size and at 390x844.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, ViewportSize, async_playwright

from tests.conftest import MakeApi
from tests.e2e.pages import write_camera_file
from tests.support.binaries import find_binary
from tests.support.world import Api

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "artifacts" / "e2e"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="session")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ARTIFACTS.is_dir() and any(ARTIFACTS.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {ARTIFACTS}")


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = find_binary("chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield b
        await b.close()


@dataclass
class Tab:
    """A page in its own browser context, with the console errors it printed."""

    page: Page
    context: BrowserContext
    base: str
    errors: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    async def snap(self, artifacts: Path, name: str) -> None:
        """Full-page screenshots at desktop size and on a 390x844 phone screen."""
        await self.page.screenshot(path=str(artifacts / f"{name}-desktop.png"), full_page=True)
        await self.page.set_viewport_size(PHONE)
        await self.page.wait_for_timeout(150)
        await self.page.screenshot(path=str(artifacts / f"{name}-phone.png"), full_page=True)
        await self.page.set_viewport_size(DESKTOP)
        await self.page.wait_for_timeout(150)


OpenTab = Callable[..., Awaitable[Tab]]

# Expected refusals a test provokes on purpose are listed per tab in `Tab.expected`.


@pytest.fixture
async def app(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
async def open_tab(browser: Browser, app: Api) -> AsyncIterator[OpenTab]:
    """open_tab(path, user=None, locale="en-GB", api=app, init_script=""): a fresh context; `user` signs in
    via #token=; `init_script` runs in every page before the page's own scripts."""
    async with tab_factory(browser, app) as open_:
        yield open_


@pytest.fixture(scope="session")
def camera_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake camera's picture: red left half, blue right half (see tests/e2e/pages.py)."""
    return write_camera_file(tmp_path_factory.mktemp("camera") / "camera.y4m")


@pytest.fixture(scope="session")
async def camera_browser(camera_file: Path) -> AsyncIterator[Browser]:
    """A browser whose fake camera films `camera_file`, so captures can be checked by colour."""
    executable = find_binary("chromium")
    async with async_playwright() as p:
        b = await p.chromium.launch(executable_path=executable, headless=True,
                                    args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={camera_file}"])
        yield b
        await b.close()


@contextlib.asynccontextmanager
async def tab_factory(browser: Browser, app: Api) -> AsyncIterator[OpenTab]:
    """Opens tabs in fresh contexts; on exit closes them and fails on any unexpected console error."""
    tabs: list[Tab] = []

    async def open_(path: str, *, user: str | None = None, locale: str = "en-GB", api: Api | None = None,
                    token: str | None = None, viewport: ViewportSize = DESKTOP, init_script: str = "") -> Tab:
        target = api or app
        base = str(target.client.make_url("/")).rstrip("/")
        context = await browser.new_context(viewport=viewport, locale=locale)
        if init_script:
            await context.add_init_script(init_script)
        page = await context.new_page()
        tab = watch(Tab(page, context, base))
        tabs.append(tab)
        if user is not None:
            token = target.token(user)
        await page.goto(base + path + (f"#token={token}" if token else ""))
        return tab

    try:
        yield open_
    finally:
        for tab in tabs:
            await tab.context.close()
    errors = [e for tab in tabs for e in tab.errors]
    assert not errors, errors


def watch(tab: Tab) -> Tab:
    """Collect the page's console errors and warnings into `tab.errors`."""
    tab.page.on("console", lambda m: _console(tab, m))
    tab.page.on("pageerror", lambda e: tab.errors.append(f"pageerror: {e}"))
    return tab


def _console(tab: Tab, message: ConsoleMessage) -> None:
    if message.type in ("error", "warning") and not any(p.search(message.text) for p in tab.expected):
        tab.errors.append(f"console {message.type}: {message.text}")
