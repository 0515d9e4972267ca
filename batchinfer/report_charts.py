"""Static charts for the run report: SVG drawn here, embedded as ``data:image/svg+xml`` URIs, and
the stage timings as CSS bars.

Everything is drawn from counts a run saved (stage timings, the drift counts and the reference
profile's bins), never from the data itself. The charts are a few rectangles, step lines and
labels, so they are written as SVG text directly: no plotting library to import, and about a
millisecond per chart where matplotlib's Agg took 50 ms (plus 0.5 s to import) — a report with
24 drift overlays was 1.8 s of every checked run's command. An ``<img>`` of an SVG runs no script,
and the page stays one offline file.
"""

from __future__ import annotations

import base64
import math
from html import escape

REFERENCE_COLOR = "#8c959f"
CURRENT_COLOR = "#0969da"
BAR_PX = 160  # the longest stage's bar, in CSS pixels
STATUS_COLORS = {"passed": "#1a7f37", "warning": "#9a6700", "failed": "#cf222e"}
PX_PER_INCH = 80  # chart sizes below are in inches at the report's 80 px per inch
FONT = "font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif"


def _clip(text: str, limit: int = 14) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values inside ``[lo, hi]`` (the first >= lo, the last <= hi), a step of 1, 2, 2.5
    or 5 times a power of ten: the smallest such step that leaves at most ``count + 1`` intervals,
    or a smaller one where that step would leave fewer than two ticks inside the range."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return []
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [lo]
    span = hi - lo
    power = 10.0 ** math.floor(math.log10(span / max(count, 1)))
    steps = [m * power for m in (0.5, 1.0, 2.0, 2.5, 5.0, 10.0)]
    pick = next(i for i, step in enumerate(steps) if span / step <= count + 1 + 1e-9)
    ticks = _ticks(lo, hi, steps[pick])
    while len(ticks) < 2 and pick > 0:
        pick -= 1
        ticks = _ticks(lo, hi, steps[pick])
    return ticks


def _ticks(lo: float, hi: float, step: float) -> list[float]:
    digits = max(0, 2 - math.floor(math.log10(step)))  # 0.6000000000000001 -> 0.6
    k, ticks = math.ceil(lo / step - 1e-9), []
    while k * step <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(k) < 1e-9 else round(k * step, digits))
        k += 1
    return ticks


def _label(value: float, ticks: list[float]) -> str:
    """A tick label with the decimals the tick step needs: ``0.25`` for steps of 0.25, ``3`` for 1."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value)
    if abs(value) >= 1e6 or 0 < step < 1e-4:
        return f"{value:.3g}"
    decimals = next((d for d in range(7) if abs(step * 10**d - round(step * 10**d)) < 1e-6 * 10**d), 6)
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0"


class _Plot:
    """One axes on a canvas of ``width`` x ``height`` inches with fixed margins (fractions, as
    matplotlib's ``subplots_adjust``), data limits ``x`` and ``y``; collects SVG elements."""

    def __init__(self, width, height, *, x, y, left=0.13, bottom=0.16, right=0.97, top=0.88):
        self.w, self.h = round(width * PX_PER_INCH), round(height * PX_PER_INCH)
        self.x0, self.x1 = left * self.w, right * self.w
        self.y0, self.y1 = (1 - bottom) * self.h, (1 - top) * self.h  # pixel rows: y0 is the bottom
        self.xlim, self.ylim = x, y
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        lo, hi = self.xlim
        return self.x0 + (x - lo) / ((hi - lo) or 1.0) * (self.x1 - self.x0)

    def py(self, y: float) -> float:
        lo, hi = self.ylim
        return self.y0 - (y - lo) / ((hi - lo) or 1.0) * (self.y0 - self.y1)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def axes(self, *, x_ticks: list[float] | None, y_ticks: list[float]) -> None:
        """Left and bottom spines, y ticks with labels, x ticks (numeric ones) with labels."""
        line = 'stroke="#24292f" stroke-width="0.8"'
        self.add(f'<path d="M{self.x0:.1f},{self.y1:.1f}V{self.y0:.1f}H{self.x1:.1f}" fill="none" {line}/>')
        for t in y_ticks:
            y = self.py(t)
            self.add(f'<path d="M{self.x0 - 3:.1f},{y:.1f}h3" {line}/>')
            self.text(self.x0 - 5, y + 3, _label(t, y_ticks), anchor="end")
        for t in x_ticks or ():
            x = self.px(t)
            self.add(f'<path d="M{x:.1f},{self.y0:.1f}v3" {line}/>')
            self.text(x, self.y0 + 12, _label(t, x_ticks), anchor="middle")

    def text(self, x, y, text, *, anchor="start", size=7, rotate=None, weight=None) -> None:
        turn = f' transform="rotate({-rotate} {x:.1f} {y:.1f})"' if rotate else ""
        bold = f' font-weight="{weight}"' if weight else ""
        self.add(
            f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{bold}{turn}>'
            f"{escape(str(text))}</text>"
        )

    def title(self, text: str) -> None:
        self.text((self.x0 + self.x1) / 2, self.y1 - 6, text, anchor="middle", size=9)

    def legend(self, entries: list[tuple[str, str, str]]) -> None:
        """Top right, inside the axes, on a light backing: (label, colour, "fill" | "bar" | "line")."""
        x, y = self.x1 - 62, self.y1 + 2
        self.add(
            f'<rect x="{x - 3:.1f}" y="{y:.1f}" width="63" height="{11 * len(entries) + 3}" fill="#ffffff" fill-opacity="0.8"/>'
        )
        for i, (label, color, style) in enumerate(entries):
            row = y + 8 + 11 * i
            if style == "line":
                self.add(f'<path d="M{x:.1f},{row - 1:.1f}h12" stroke="{color}" stroke-width="1.4"/>')
            else:
                opacity = ' fill-opacity="0.45"' if style == "fill" else ""
                self.add(
                    f'<rect x="{x:.1f}" y="{row - 4:.1f}" width="12" height="6" fill="{color}"{opacity}/>'
                )
            self.text(x + 16, row + 2, label)

    def to_data_uri(self) -> str:
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{self.w}" height="{self.h}" '
            f'viewBox="0 0 {self.w} {self.h}" style="{FONT}" fill="#24292f">'
            f'<rect width="100%" height="100%" fill="#ffffff"/>{"".join(self.parts)}</svg>'
        )
        return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def timing_bars(timings: dict[str, float]) -> list[dict]:
    """One bar per stage (seconds), in the order the stages ran, as HTML widths (no figure).

    Drawn by the template with CSS, beside the stage names, so the bars and the numbers line up."""
    stages = [(k, float(v)) for k, v in timings.items() if k != "total" and isinstance(v, (int, float))]
    top = max((v for _, v in stages), default=0.0) or 1.0
    return [{"stage": k, "seconds": v, "width": max(1, round(BAR_PX * max(v, 0.0) / top))} for k, v in stages]


def _shares(counts, total: int):
    return [c / total if total else 0.0 for c in counts]


def _numeric_key(ref: dict, cur: dict) -> str:
    """Fine (percentile) bins when the batch is large enough to fill them, else the coarse deciles."""
    fine = ref.get("fine_edges") or []
    return "fine_" if len(fine) > 1 and int(cur.get("count") or 0) >= 100 * len(fine) else ""


def out_of_range(entry: dict) -> tuple[float, float]:
    """Shares of non-null values below and above the reference range (the open-ended end buckets)."""
    counts = list(entry.get("counts") or [])
    total = int(entry.get("count") or sum(counts))
    if len(counts) < 2 or not total:
        return 0.0, 0.0
    return counts[0] / total, counts[-1] / total


def numeric_overlay(column: str, ref: dict, cur: dict, *, title: str) -> str:
    """Reference vs current densities on the reference's bins.

    ``ref``/``cur`` are the profile JSON entries (``fine_edges``/``fine_counts`` when the batch
    fills them, else ``edges``/``counts``): ``len(counts) == len(edges) + 1``, the first and last
    buckets being the open-ended ones below and above the reference range (see :func:`out_of_range`).
    """
    key = _numeric_key(ref, cur)
    edges = [float(e) for e in ref[f"{key}edges"]]
    sides = []
    for side, entry, color, fill in (
        ("reference", ref, REFERENCE_COLOR, True),
        ("current", cur, CURRENT_COLOR, False),
    ):
        counts = list(entry.get(f"{key}counts") or [])
        total = int(entry.get("count") or sum(counts))
        if len(counts) != len(edges) + 1 or total == 0:
            continue
        widths = [max(b - a, 1e-12) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        density = [c / total / w for c, w in zip(counts[1:-1], widths, strict=True)]
        sides.append((side, density, color, fill))
    top = max((max(d, default=0.0) for _, d, _, _ in sides), default=0.0) or 1.0
    lo, hi = (edges[0], edges[-1]) if len(edges) > 1 else (0.0, 1.0)
    plot = _Plot(4.2, 2.3, x=(lo, hi), y=(0.0, top * 1.05))
    for _, density, color, fill in sides:
        steps = "".join(
            f"H{plot.px(b):.1f}V{plot.py(d):.1f}" if i else f"V{plot.py(d):.1f}"
            for i, (b, d) in enumerate(zip(edges[:-1], density, strict=True))
        )
        path = f"M{plot.px(edges[0]):.1f},{plot.py(0):.1f}{steps}H{plot.px(edges[-1]):.1f}V{plot.py(0):.1f}"
        style = (
            f'fill="{color}" fill-opacity="0.45" stroke="{color}" stroke-opacity="0.45" stroke-width="1.4"'
            if fill
            else f'fill="none" stroke="{color}" stroke-width="1.4"'
        )
        plot.add(f'<path d="{path}{"Z" if fill else ""}" {style}/>')
    plot.axes(x_ticks=nice_ticks(lo, hi, 6), y_ticks=nice_ticks(0.0, top * 1.05, 4))
    plot.title(title)
    plot.legend([(side, color, "fill" if fill else "line") for side, _, color, fill in sides])
    return plot.to_data_uri()


def _bars(plot: _Plot, positions: list[float], heights: list[float], width: float, colors) -> None:
    for x, h, color in zip(positions, heights, colors, strict=True):
        left, right = plot.px(x - width / 2), plot.px(x + width / 2)
        y, base = plot.py(max(h, 0.0)), plot.py(min(h, 0.0))
        plot.add(
            f'<rect x="{left:.1f}" y="{y:.1f}" width="{right - left:.1f}" height="{base - y:.1f}" fill="{color}"/>'
        )


def _category_labels(plot: _Plot, labels: list[str], rotate: float | None) -> None:
    for i, label in enumerate(labels):
        x, y = plot.px(i), plot.y0 + 11
        plot.add(f'<path d="M{x:.1f},{plot.y0:.1f}v3" stroke="#24292f" stroke-width="0.8"/>')
        plot.text(x, y, label, anchor="end" if rotate else "middle", rotate=rotate)


def categorical_overlay(column: str, ref: dict, cur: dict, *, title: str) -> str:
    """Bar pairs: share of each reference category, "other" and null, reference vs current."""
    cats = [*ref.get("categories", []), "(other)", "(null)"]
    bars = {}
    for side, entry in (("reference", ref), ("current", cur)):
        counts = list(entry.get("counts") or [])
        counts = counts + [0] * (len(cats) - 1 - len(counts))
        values = [*counts[: len(cats) - 1], int(entry.get("null_count") or 0)]
        bars[side] = _shares(values, sum(values))
    rotate = len(cats) > 5
    top = max([*bars["reference"], *bars["current"]], default=0.0) or 1.0
    plot = _Plot(4.2, 2.3, x=(-0.6, len(cats) - 0.4), y=(0.0, top * 1.05), bottom=0.3 if rotate else 0.16)
    x = list(range(len(cats)))
    _bars(plot, [i - 0.2 for i in x], bars["reference"], 0.4, [REFERENCE_COLOR] * len(cats))
    _bars(plot, [i + 0.2 for i in x], bars["current"], 0.4, [CURRENT_COLOR] * len(cats))
    plot.axes(x_ticks=None, y_ticks=nice_ticks(0.0, top * 1.05, 4))
    _category_labels(plot, [_clip(c) for c in cats], 45 if rotate else None)
    plot.title(title)
    plot.legend([("reference", REFERENCE_COLOR, "bar"), ("current", CURRENT_COLOR, "bar")])
    return plot.to_data_uri()


def drift_values_chart(rows: list[dict]) -> str | None:
    """One bar per column: its drift value, coloured by status (the summary at a glance)."""
    rows = [r for r in rows if isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])]
    if not rows:
        return None
    values = [float(r["value"]) for r in rows]
    lo, top = min(0.0, *values), max(0.0, *values)
    span = (top - lo) or 1.0
    plot = _Plot(
        max(3.0, 0.4 * len(rows) + 1.2),
        2.8,
        x=(-0.6, len(rows) - 0.4),
        y=(lo, top + 0.05 * span),
        bottom=0.48,
    )
    _bars(
        plot, list(range(len(rows))), values, 0.8, [STATUS_COLORS.get(r["status"], "#57606a") for r in rows]
    )
    plot.axes(x_ticks=None, y_ticks=nice_ticks(lo, top + 0.05 * span, 4))
    _category_labels(plot, [_clip(f"{r['column']} ({r['metric']})", 20) for r in rows], 60)
    plot.title("drift value per column")
    return plot.to_data_uri()
