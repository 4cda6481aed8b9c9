"""What the browser tests share: locating rows, making captures, and checks of names and contrast."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image
from playwright.async_api import Locator, Page, expect

from rooms.models import MediaItem, MediaKind
from tests.support.world import Api
from web.keys import filer_key

CALLS = "/cases/case-std/calls"
expect.set_options(timeout=10_000)


def row(page: Page, receiver: str) -> Locator:
    return page.locator("tbody tr").filter(has=page.get_by_text(receiver, exact=True))


def jpeg(width: int, height: int, colour: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "JPEG", quality=90)
    return out.getvalue()


def webm(seconds: float = 1.0, colour: tuple[int, int, int] = (30, 90, 200)) -> bytes:
    """A real VP8 WebM, so the browser's player can play it."""
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream: Any = container.add_stream("libvpx", rate=10)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.full((240, 320, 3), colour, dtype=np.uint8), format="rgb24")
        for _ in range(int(seconds * 10)):
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return out.getvalue()


CAMERA_LEFT = (220, 30, 30)
CAMERA_RIGHT = (30, 60, 220)


def write_camera_file(path: Path, width: int = 640, height: int = 480, frames: int = 30) -> Path:
    """A y4m clip for Chromium's --use-file-for-fake-video-capture: red left half, blue right half."""
    picture = np.empty((height, width, 3), dtype=np.uint8)
    picture[:, : width // 2] = CAMERA_LEFT
    picture[:, width // 2 :] = CAMERA_RIGHT
    with av.open(str(path), "w", format="yuv4mpegpipe") as container:
        stream: Any = container.add_stream("rawvideo", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24").reformat(format="yuv420p")
        for i in range(frames):
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def halves(jpeg_bytes: bytes) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean RGB of the left and right quarters' middles of a picture (away from the seam)."""
    image = np.asarray(Image.open(io.BytesIO(jpeg_bytes)).convert("RGB"), dtype=np.float64)
    h, w, _ = image.shape
    left = image[h // 4 : 3 * h // 4, w // 8 : 3 * w // 8].reshape(-1, 3).mean(axis=0)
    right = image[h // 4 : 3 * h // 4, 5 * w // 8 : 7 * w // 8].reshape(-1, 3).mean(axis=0)
    return tuple(float(v) for v in left), tuple(float(v) for v in right)


def near(colour: tuple[float, ...], expected: tuple[int, int, int], tolerance: float = 40.0) -> bool:
    return all(abs(c - e) <= tolerance for c, e in zip(colour, expected, strict=True))


async def file_picture(api: Api, invite_id: str, colour: tuple[int, int, int] = (200, 40, 40)) -> MediaItem:
    item: MediaItem = await api.client.app[filer_key].file(
        invite_id, MediaKind.PICTURE, jpeg(640, 480, colour), "image/jpeg", "jpg", "inspector", "Ines Inspector",
        width=640, height=480, thumbnail=jpeg(160, 120, colour),
    )
    return item


async def file_video(api: Api, invite_id: str) -> MediaItem:
    item: MediaItem = await api.client.app[filer_key].file(
        invite_id, MediaKind.VIDEO, webm(), "video/webm", "webm", "inspector", "Ines Inspector",
        width=320, height=240, duration_s=1.0,
    )
    return item


_UNNAMED = re.compile(r"^\s*- (button|link|combobox|radio|tab|checkbox|menuitem|textbox)\s*(\[[^\]]*\])?\s*:?\s*$")


async def assert_every_control_named(page: Page) -> None:
    """Every interactive element in the accessibility tree has a name."""
    snapshot = await page.locator("body").aria_snapshot()
    unnamed = [line for line in snapshot.splitlines() if _UNNAMED.match(line)]
    assert not unnamed, snapshot


CONTRAST_JS = """
(selectors) => {
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).slice(0, 4).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const out = [];
  for (const sel of selectors) {
    for (const el of document.querySelectorAll(sel)) {
      if (!el.getClientRects().length) continue;
      const fg = lum(rgb(getComputedStyle(el).color));
      const bg = lum(background(el));
      const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
      out.push([sel, el.textContent.trim().slice(0, 30), Math.round(ratio * 100) / 100]);
    }
  }
  return out;
}
"""


async def contrast_ratios(page: Page, selectors: list[str]) -> list[tuple[str, str, float]]:
    """WCAG contrast of each visible element's text against its nearest opaque background."""
    return [(str(sel), str(text), float(ratio)) for sel, text, ratio in await page.evaluate(CONTRAST_JS, selectors)]


async def focus_ring_visible(page: Page) -> bool:
    style = await page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; }"
    )
    return bool(style[0] != "none" and float(str(style[1]).removesuffix("px")) >= 2)
