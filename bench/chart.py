"""Line charts drawn with Pillow (a dependency already): panels side by side, one line per series.

Small on purpose: linear axes from 0, ticks at the x values given, an optional dashed target line,
each point labelled with its value. Enough for a benchmark's "X against number of calls".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H = 520, 400
MARGIN_L, MARGIN_R, MARGIN_T, MARGIN_B = 70, 44, 56, 56
COLOURS = ((31, 119, 180), (230, 110, 20), (44, 160, 44), (200, 40, 40))
GRID = (225, 225, 225)
INK = (30, 30, 30)
TARGET = (150, 150, 150)

Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    x_label: str
    y_label: str
    series: tuple[Series, ...]
    target: float | None = None  # a dashed horizontal line, e.g. a goal
    target_label: str = ""
    y_min_top: float = 0.0  # the y axis reaches at least this high
    x_ticks: tuple[float, ...] = ()


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above `value` (an axis end a reader can divide)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def _fmt(value: float) -> str:
    return f"{value:.0f}" if value >= 100 or value == int(value) else f"{value:.1f}"


def _dashed(draw: ImageDraw.ImageDraw, x0: float, x1: float, y: float, colour: tuple[int, int, int]) -> None:
    x = x0
    while x < x1:
        draw.line([(x, y), (min(x + 8, x1), y)], fill=colour, width=2)
        x += 14


def _draw_panel(img: Image.Image, left: int, panel: Panel) -> None:
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)
    x0, x1 = left + MARGIN_L, left + PANEL_W - MARGIN_R
    y0, y1 = PANEL_H - MARGIN_B, MARGIN_T  # y grows downwards
    xs = sorted({x for s in panel.series for x, _ in s.points} | set(panel.x_ticks)) or [0.0, 1.0]
    x_max = max(xs) if max(xs) > 0 else 1.0
    top = max([y for s in panel.series for _, y in s.points] + [panel.target or 0.0, panel.y_min_top])
    y_max = nice_ceiling(top * 1.1)

    def px(x: float) -> float:
        return x0 + (x1 - x0) * x / x_max

    def py(y: float) -> float:
        return y0 - (y0 - y1) * y / y_max

    draw.text((left + PANEL_W / 2, 16), panel.title, fill=INK, font=font, anchor="mt")
    for k in range(6):
        value = y_max * k / 5
        draw.line([(x0, py(value)), (x1, py(value))], fill=GRID)
        draw.text((x0 - 6, py(value)), _fmt(value), fill=INK, font=small, anchor="rm")
    for x in xs:
        draw.line([(px(x), y0), (px(x), y0 + 4)], fill=INK)
        draw.text((px(x), y0 + 7), _fmt(x), fill=INK, font=small, anchor="mt")
    draw.line([(x0, y0), (x1, y0)], fill=INK)
    draw.line([(x0, y0), (x0, y1)], fill=INK)
    draw.text(((x0 + x1) / 2, PANEL_H - 14), panel.x_label, fill=INK, font=font, anchor="ms")
    label = Image.new("RGBA", (PANEL_H, 20), (255, 255, 255, 0))
    ImageDraw.Draw(label).text((PANEL_H / 2 - MARGIN_T / 2, 10), panel.y_label, fill=INK, font=font, anchor="mm")
    rotated = label.rotate(90, expand=True)
    img.paste(rotated, (left + 6, 0), rotated)
    if panel.target is not None:
        _dashed(draw, x0, x1, py(panel.target), TARGET)
        draw.text((x1 - 4, py(panel.target) - 3), panel.target_label, fill=TARGET, font=small, anchor="rb")
    for i, series in enumerate(panel.series):
        colour = COLOURS[i % len(COLOURS)]
        pts = [(px(x), py(y)) for x, y in sorted(series.points)]
        if len(pts) > 1:
            # Earlier series wider, so a later one drawn over the same values leaves them visible.
            draw.line(pts, fill=colour, width=3 + 3 * (len(panel.series) - 1 - i))
        for (_, y), (cx, cy) in zip(sorted(series.points), pts, strict=True):
            draw.ellipse([cx - 4, cy - 4, cx + 4, cy + 4], fill=colour)
            draw.text((cx + 6, cy - 6), _fmt(y), fill=colour, font=small, anchor="lb")
        legend_y = MARGIN_T - 22
        legend_x = x0 + 10 + 150 * i
        draw.line([(legend_x, legend_y), (legend_x + 22, legend_y)], fill=colour, width=3)
        draw.text((legend_x + 28, legend_y), series.label, fill=colour, font=small, anchor="lm")


def draw_chart(panels: Sequence[Panel], path: str | Path) -> None:
    """Write the panels side by side as one PNG."""
    img = Image.new("RGB", (PANEL_W * len(panels), PANEL_H), (255, 255, 255))
    for i, panel in enumerate(panels):
        _draw_panel(img, i * PANEL_W, panel)
    img.save(path, "PNG")
