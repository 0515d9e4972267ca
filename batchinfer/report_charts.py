"""Static charts for the run report: matplotlib (Agg) figures embedded as PNG data URIs.

Everything is drawn from counts a run saved (stage timings, the drift counts and the reference
profile's bins), never from the data itself. matplotlib is imported inside the functions, so
importing this module (and ``batchinfer --help``) stays instant.
"""

from __future__ import annotations

import base64
import io
import math

REFERENCE_COLOR = "#8c959f"
CURRENT_COLOR = "#0969da"
STATUS_COLORS = {"passed": "#1a7f37", "warning": "#9a6700", "failed": "#cf222e"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)  # never a GUI backend: runs on drivers and in CI without a display
    import matplotlib.pyplot as plt

    return plt


def _to_data_uri(fig) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def timings_chart(timings: dict[str, float]) -> str | None:
    """One horizontal bar per stage (seconds), in the order the stages ran."""
    stages = [(k, float(v)) for k, v in timings.items() if k != "total" and isinstance(v, (int, float))]
    if not stages:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.32 * len(stages) + 0.7))
    names = [k for k, _ in stages][::-1]
    values = [v for _, v in stages][::-1]
    ax.barh(names, values, color=CURRENT_COLOR)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f} s", va="center", fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(values) * 1.25 or 1)
    ax.spines[["top", "right"]].set_visible(False)
    return _to_data_uri(fig)


def _shares(counts, total: int):
    return [c / total if total else 0.0 for c in counts]


def numeric_overlay(column: str, ref: dict, cur: dict, *, title: str) -> str:
    """Reference vs current densities on the reference's bins, plus out-of-range and null shares.

    ``ref``/``cur`` are the profile JSON entries (``fine_edges``/``fine_counts`` when present,
    else ``edges``/``counts``): ``len(counts) == len(edges) + 1``, the first and last buckets
    being the open-ended ones below and above the reference range.
    """
    plt = _pyplot()
    # Fine (percentile) bins when the batch is large enough to fill them, else the coarse deciles.
    fine = ref.get("fine_edges") or []
    key = "fine" if len(fine) > 1 and int(cur.get("count") or 0) >= 100 * len(fine) else ""
    edges = list(ref[f"{key}_edges" if key else "edges"])
    fig, ax = plt.subplots(figsize=(4.6, 2.5))
    notes = []
    for side, entry, color, fill in (
        ("reference", ref, REFERENCE_COLOR, True),
        ("current", cur, CURRENT_COLOR, False),
    ):
        counts = list(entry.get(f"{key}_counts" if key else "counts") or [])
        total = int(entry.get("count") or sum(counts))
        if len(counts) != len(edges) + 1 or total == 0:
            continue
        inner = counts[1:-1]
        widths = [max(b - a, 1e-12) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        density = [c / total / w for c, w in zip(inner, widths, strict=True)]
        ax.stairs(density, edges, fill=fill, alpha=0.45 if fill else 1.0, color=color, label=side, lw=1.4)
        below, above = counts[0] / total, counts[-1] / total
        if below > 0.001 or above > 0.001:
            notes.append(f"{side}: {below:.1%} below, {above:.1%} above the reference range")
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("density", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False)
    if notes:
        ax.text(0.0, -0.28, "\n".join(notes), transform=ax.transAxes, fontsize=7, va="top")
    ax.spines[["top", "right"]].set_visible(False)
    return _to_data_uri(fig)


def categorical_overlay(column: str, ref: dict, cur: dict, *, title: str) -> str:
    """Bar pairs: share of each reference category, "other" and null, reference vs current."""
    plt = _pyplot()
    cats = [*ref.get("categories", []), "(other)", "(null)"]
    bars = {}
    for side, entry in (("reference", ref), ("current", cur)):
        counts = list(entry.get("counts") or [])
        counts = counts + [0] * (len(cats) - 1 - len(counts))
        values = [*counts[: len(cats) - 1], int(entry.get("null_count") or 0)]
        bars[side] = _shares(values, sum(values))
    fig, ax = plt.subplots(figsize=(4.6, 2.5))
    x = range(len(cats))
    ax.bar([i - 0.2 for i in x], bars["reference"], width=0.4, color=REFERENCE_COLOR, label="reference")
    ax.bar([i + 0.2 for i in x], bars["current"], width=0.4, color=CURRENT_COLOR, label="current")
    ax.set_xticks(list(x), [_clip(c) for c in cats], rotation=45 if len(cats) > 5 else 0, fontsize=7)
    ax.set_ylabel("share", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return _to_data_uri(fig)


def drift_values_chart(rows: list[dict]) -> str | None:
    """One bar per column: its drift value, coloured by status (the summary at a glance)."""
    rows = [r for r in rows if isinstance(r.get("value"), (int, float)) and math.isfinite(r["value"])]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(3.0, 0.45 * len(rows) + 1.5), 2.4))
    labels = [f"{r['column']} ({r['metric']})" for r in rows]
    ax.bar(
        labels, [r["value"] for r in rows], color=[STATUS_COLORS.get(r["status"], "#57606a") for r in rows]
    )
    ax.tick_params(axis="x", rotation=60, labelsize=7)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_ylabel("drift value", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _to_data_uri(fig)


def _clip(text: str, limit: int = 14) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
