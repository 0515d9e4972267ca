"""Static charts for the run report: matplotlib (Agg) figures embedded as PNG data URIs, and
the stage timings as CSS bars.

Everything is drawn from counts a run saved (stage timings, the drift counts and the reference
profile's bins), never from the data itself. matplotlib is imported inside the functions, so
importing this module (and ``batchinfer --help``) stays instant; figures are rendered with Agg
outside pyplot, so the process's backend (a notebook's inline one) is left as it was.
"""

from __future__ import annotations

import base64
import io
import math

REFERENCE_COLOR = "#8c959f"
CURRENT_COLOR = "#0969da"
BAR_PX = 160  # the longest stage's bar, in CSS pixels
STATUS_COLORS = {"passed": "#1a7f37", "warning": "#9a6700", "failed": "#cf222e"}


def _figure(width: float, height: float, *, left: float = 0.13, bottom: float = 0.16):
    """A figure outside pyplot: Agg rendering without touching the process's backend (a notebook
    keeps its inline backend) and without pyplot's global figure registry (thread-safe).

    Fixed margins instead of ``bbox_inches="tight"``: that option draws every figure twice,
    and drawing is what a report costs."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left, right=0.97, top=0.88, bottom=bottom)
    ax = fig.subplots()
    ax.locator_params(axis="y", nbins=4)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(labelsize=7)
    return fig, ax


def _to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def timing_bars(timings: dict[str, float]) -> list[dict]:
    """One bar per stage (seconds), in the order the stages ran, as HTML widths (no figure).

    Drawn by the template with CSS: a run without drift then never imports matplotlib, which was
    most of a small run's report time (about 1 s of import and drawing for one bar chart)."""
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
    edges = list(ref[f"{key}edges"])
    fig, ax = _figure(4.2, 2.3)
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
        ax.stairs(density, edges, fill=fill, alpha=0.45 if fill else 1.0, color=color, label=side, lw=1.4)
    ax.locator_params(axis="x", nbins=6)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return _to_data_uri(fig)


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
    fig, ax = _figure(4.2, 2.3, bottom=0.3 if rotate else 0.16)
    x = range(len(cats))
    ax.bar([i - 0.2 for i in x], bars["reference"], width=0.4, color=REFERENCE_COLOR, label="reference")
    ax.bar([i + 0.2 for i in x], bars["current"], width=0.4, color=CURRENT_COLOR, label="current")
    ax.set_xticks(list(x), [_clip(c) for c in cats], rotation=45 if rotate else 0, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    return _to_data_uri(fig)


def drift_values_chart(rows: list[dict]) -> str | None:
    """One bar per column: its drift value, coloured by status (the summary at a glance)."""
    rows = [r for r in rows if isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])]
    if not rows:
        return None
    fig, ax = _figure(max(3.0, 0.4 * len(rows) + 1.2), 2.8, bottom=0.48)
    labels = [_clip(f"{r['column']} ({r['metric']})", 20) for r in rows]
    ax.bar(
        labels, [r["value"] for r in rows], color=[STATUS_COLORS.get(r["status"], "#57606a") for r in rows]
    )
    ax.tick_params(axis="x", rotation=60)
    ax.set_title("drift value per column", fontsize=9)
    return _to_data_uri(fig)


def _clip(text: str, limit: int = 14) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
