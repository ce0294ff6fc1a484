"""`convoy simulate --plot FILE.svg`: the queue length and the rigs in use over time, as an SVG.

    text = svg(reports)                      # reports: convoy.simulate.Report, one per mode
    write("modes.svg", reports)              # the same, written atomically

Two panels stacked, sharing the time axis (hours since the first arrival):
"queue length" (requests submitted and not yet merged or rejected) and
"rigs in use". Each mode is one step-wise polyline per panel, in the same
colour in both, named in the legend. The SVG is written by hand (no
plotting library); every text in it is XML-escaped.
"""

from __future__ import annotations

import math
import os
from typing import Sequence
from xml.sax.saxutils import escape, quoteattr

from convoy import modes
from convoy.fsutil import atomic_write

WIDTH, PANEL_HEIGHT = 760, 220
LEFT, RIGHT, TOP, GAP, BOTTOM = 64, 150, 48, 56, 48
SPARE_COLOURS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f")
PANELS = (("queue length", 1), ("rigs in use", 2))  # title, index of the value in a timeline point


def write(path: str | os.PathLike[str], reports: Sequence, *, title: str = "convoy simulate") -> None:
    """Writes `svg(reports)` to `path` (a temporary file moved into place)."""
    atomic_write(path, svg(reports, title=title))


def svg(reports: Sequence, *, title: str = "convoy simulate") -> str:
    """The SVG document of `reports` (objects with `mode` and `timeline`:
    (seconds, queue length, rigs in use) change points, in time order)."""
    end = max((point[0] for report in reports for point in report.timeline), default=0.0) / 3600.0
    x_ticks = _ticks(end)
    x_max = x_ticks[-1]
    height = TOP + len(PANELS) * (PANEL_HEIGHT + GAP) - GAP + BOTTOM
    plot_width = WIDTH - LEFT - RIGHT
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2:g}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
    ]
    for p, (name, index) in enumerate(PANELS):
        top = TOP + p * (PANEL_HEIGHT + GAP)
        peak = max((point[index] for report in reports for point in report.timeline), default=0)
        y_ticks = _ticks(peak, integer=True)
        y_max = y_ticks[-1]

        def x_of(hours: float) -> float:
            return LEFT + plot_width * hours / x_max

        def y_of(value: float, top: int = top, y_max: float = y_max) -> float:
            return top + PANEL_HEIGHT - PANEL_HEIGHT * value / y_max

        out.append(f'<g class="panel" id={quoteattr(name.replace(" ", "-"))}>')
        out.append(f'<text x="{LEFT}" y="{top - 8}" font-size="13">{escape(name)}</text>')
        out.extend(_axes(top, x_ticks, y_ticks, x_of, y_of, last=p == len(PANELS) - 1))
        for n, report in enumerate(reports):
            points = " ".join(f"{x_of(t):.1f},{y_of(v):.1f}" for t, v in _steps(report.timeline, index))
            out.append(f'<polyline class="mode" data-mode={quoteattr(str(report.mode))} fill="none" '
                       f'stroke="{_colour(report.mode, n)}" stroke-width="1.5" points="{points}"/>')
        out.append("</g>")
    out.extend(_legend(reports))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _steps(timeline: Sequence, index: int) -> list[tuple[float, float]]:
    """The change points as a step line: a value holds until the next point."""
    steps: list[tuple[float, float]] = []
    for point in timeline:
        hours, value = point[0] / 3600.0, point[index]
        if steps:
            steps.append((hours, steps[-1][1]))
        steps.append((hours, value))
    return steps or [(0.0, 0.0)]


def _axes(top: int, x_ticks: list[float], y_ticks: list[float], x_of, y_of, *, last: bool) -> list[str]:
    """A panel's grid, frame, ticks and tick labels (and "hours" under the last panel)."""
    bottom, right = top + PANEL_HEIGHT, WIDTH - RIGHT
    grid, marks = [], []
    for tick in x_ticks:
        x = x_of(tick)
        grid.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#eee"/>')
        marks.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="#444"/>')
        marks.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{_number(tick)}</text>')
    for tick in y_ticks:
        y = y_of(tick)
        grid.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#eee"/>')
        marks.append(f'<line x1="{LEFT - 5}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#444"/>')
        marks.append(f'<text x="{LEFT - 8}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>')
    frame = (f'<rect x="{LEFT}" y="{top}" width="{right - LEFT}" height="{PANEL_HEIGHT}" fill="none" '
             'stroke="#444"/>')
    out = [*grid, frame, *marks]
    if last:
        out.append(f'<text x="{(LEFT + right) / 2:.1f}" y="{bottom + 36}" text-anchor="middle">hours</text>')
    return out


def _legend(reports: Sequence) -> list[str]:
    x = WIDTH - RIGHT + 16
    out = ['<g class="legend">']
    for n, report in enumerate(reports):
        y = TOP + 12 + 20 * n
        out.append(f'<line x1="{x}" y1="{y}" x2="{x + 24}" y2="{y}" stroke="{_colour(report.mode, n)}" '
                   'stroke-width="3"/>')
        out.append(f'<text x="{x + 30}" y="{y + 4}">{escape(str(report.mode))}</text>')
    out.append("</g>")
    return out


def _colour(mode: str, n: int) -> str:
    known = modes.MODES.get(mode)
    return (known.colour if known else "") or SPARE_COLOURS[n % len(SPARE_COLOURS)]


def _ticks(peak: float, *, integer: bool = False) -> list[float]:
    """0 and about five round steps (1, 2 or 5 times a power of ten) up to or past `peak`."""
    if not peak > 0 or not math.isfinite(peak):
        return [0.0, 1.0]
    raw = peak / 5
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    count = math.ceil(peak / step - 1e-9)
    return [round(i * step, 10) for i in range(count + 1)]


def _number(value: float) -> str:
    return f"{value:g}"
