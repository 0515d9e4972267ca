"""Results table, JSON file and bar chart for one harness run.

Re-render a saved run: ``python benchmarks/report.py benchmarks/results/<timestamp>.json [--markdown]``
(rewrites the PNG next to it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MB = 1024 * 1024
COLUMNS = (
    "scenario",
    "model",
    "wall s",
    "job s",
    "rows/s",
    "peak RSS MB",
    "x floor",
    "x pbudf",
    "output check",
    "load",
    "steal",
    "CPU s",
)


def _ratio(run: dict, ref: dict | None) -> str:
    if not ref or not run.get("wall_s") or not ref.get("wall_s"):
        return "-"
    return f"{run['wall_s'] / ref['wall_s']:.2f}"


def table_rows(runs: list[dict]) -> list[tuple[str, ...]]:
    """One row per run; ratios are whole-process wall time against the same model's reference."""
    refs = {(r["scenario"], r["model"]): r for r in runs if r.get("status") == "ok"}
    rows = []
    for r in runs:
        mark = "*" if r.get("extrapolated") else ""
        if r.get("status") != "ok":
            rows.append(
                (r["scenario"], r["model"], "-", "-", "-", "-", "-", "-", r.get("status", "?"), "-", "-", "-")
            )
            continue
        job = r.get("job_s")
        rows.append(
            (
                r["scenario"] + mark,
                r["model"],
                f"{r['wall_s']:.1f}{mark}",
                f"{job:.1f}{mark}" if job is not None else "-",
                f"{r['rows'] / job:,.0f}{mark}" if job else "-",
                f"{r['peak_rss'] / MB:,.0f}",
                _ratio(r, refs.get(("floor", r["model"]))),
                _ratio(r, refs.get(("predict_batch_udf", r["model"]))),
                r.get("check", {}).get("summary", "-") if r.get("check") else "-",
                f"{r['loadavg_before'][0]:.1f}" if r.get("loadavg_before") else "-",
                f"{r['steal']:.0%}" if r.get("steal") is not None else "-",
                f"{r['cpu_s']:.1f}" if r.get("cpu_s") is not None else "-",
            )
        )
    return rows


def format_table(runs: list[dict]) -> str:
    rows = [COLUMNS, *table_rows(runs)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if any(r.get("extrapolated") for r in runs):
        lines.append("* extrapolated from a sample (see the run's 'measured' fields)")
    lines.append("load: 1-minute load average when the scenario started (this machine has 2 CPUs)")
    lines.append("steal: share of CPU time the hypervisor gave to other guests during the scenario")
    lines.append("CPU s: CPU seconds the whole machine was busy during the scenario")
    return "\n".join(lines)


def format_markdown(runs: list[dict]) -> str:
    rows = table_rows(runs)
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(out)


def write_json(path: Path, payload: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def write_chart(path: Path, runs: list[dict], title: str) -> Path | None:
    """Stacked bars of wall time (session start / job / rest of the process) and peak RSS."""
    ok = [r for r in runs if r.get("status") == "ok"]
    if not ok:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['scenario']} [{r['model']}]" + (" *" if r.get("extrapolated") else "") for r in ok]
    start = [r.get("session_start_s") or 0.0 for r in ok]
    job = [r.get("job_s") or 0.0 for r in ok]
    rest = [max(0.0, r["wall_s"] - s - j) for r, s, j in zip(ok, start, job, strict=True)]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 0.45 * len(ok) + 1.8), sharey=True)
    y = range(len(ok))
    ax_t.barh(y, start, color="#9ecae1", label="session start")
    ax_t.barh(y, job, left=start, color="#3182bd", label="job")
    ax_t.barh(y, rest, left=[s + j for s, j in zip(start, job, strict=True)], color="#d9d9d9", label="rest")
    for i, r in enumerate(ok):
        if r.get("extrapolated"):
            ax_t.barh(i, r["wall_s"], fill=False, hatch="//", edgecolor="#636363", linewidth=0)
    ax_t.set_yticks(list(y), labels)
    ax_t.invert_yaxis()
    ax_t.set_xlabel("wall time of the process, s")
    ax_t.legend(loc="lower right", fontsize="small")
    ax_m.barh(y, [r["peak_rss"] / MB for r in ok], color="#74c476")
    ax_m.set_xlabel("peak RSS of the process tree, MB")
    fig.suptitle(
        title + ("   (* extrapolated from a sample)" if any(r.get("extrapolated") for r in ok) else "")
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def chart_title(payload: dict) -> str:
    rows, parts = payload.get("rows", 0), payload.get("partitions", "?")
    cpus = payload.get("machine", {}).get("cpus", "?")
    runs = payload.get("runs", [])
    start = runs[0].get("loadavg_before", [0])[0] if runs else 0
    end = payload.get("machine", {}).get("loadavg_end", [0])[0]
    return (
        f"{rows:,} rows x 64 float32, {parts} files, local[2], {cpus} CPUs, load avg {start:.1f} -> {end:.1f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description="Re-render a saved benchmark run.")
    ap.add_argument("json_path", type=Path)
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    payload = json.loads(args.json_path.read_text())
    print(chart_title(payload))
    print(format_markdown(payload["runs"]) if args.markdown else format_table(payload["runs"]))
    write_chart(args.json_path.with_suffix(".png"), payload["runs"], chart_title(payload))


if __name__ == "__main__":
    main()
