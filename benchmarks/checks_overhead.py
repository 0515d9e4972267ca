"""What the checks add to a job: plain and checked runs in pairs, with the spread of the figure.

One run of the 2M-row job varies by several percent from the next on a shared 2-core machine,
more than the checks cost, so one pair says little. This runs ``--pairs`` pairs of the same
job, without checks (``batchinfer``) and with ~10 expectations + drift on all 64 features
(``checks_overhead``), each in its own process as ``run.py`` runs them, in ABBA order (pair
k runs the checked job first when k is odd) so that a drift of the machine over the session
falls on both sides alike. Per model it prints and saves:

- every pair: both job times (``job_s``: the run minus Spark's start), the overhead, the CPU's
  steal time during each run;
- the median overhead and a 90 % bootstrap interval of that median, the mean, the range; the
  same median and interval for the whole command's wall time (what a user waits: Python and
  Spark start, the run, the report, exit);
- the per-stage breakdown (median over the pairs): each manifest stage of both runs, the checks'
  in-task seconds (summed over the tasks), the driver's share, peak RSS, whole-command wall time.

A figure, not a test: run it on an otherwise idle machine (``head -1 /proc/stat`` shows steal).

    .venv/bin/python benchmarks/checks_overhead.py --pairs 12 --models int8,fp32
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datagen  # noqa: E402
import run as bench  # noqa: E402

PLAIN, CHECKED = "batchinfer", "checks_overhead"


def bootstrap_median(values: list[float], *, level: float = 0.90, draws: int = 4000, seed: int = 1) -> tuple:
    """A percentile bootstrap interval of the median (resampling the pairs)."""
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    lo = medians[int((1 - level) / 2 * draws)]
    hi = medians[min(draws - 1, int((1 + level) / 2 * draws))]
    return lo, hi


def _stages(row: dict) -> dict:
    return dict(row["result"]["manifest"].get("timings") or {})


def pair_record(plain: dict, checked: dict, order: str) -> dict:
    manifest = checked["result"]["manifest"]
    checks = manifest.get("checks") or {}
    c_stages, p_stages = _stages(checked), _stages(plain)
    return {
        "order": order,
        "plain_job_s": plain["job_s"],
        "checked_job_s": checked["job_s"],
        "overhead": checked["job_s"] / plain["job_s"] - 1,
        # the whole command (Python start, Spark start, the run, the report, exit), as a user waits
        "wall_overhead": checked["wall_s"] / plain["wall_s"] - 1,
        "plain_wall_s": plain["wall_s"],
        "checked_wall_s": checked["wall_s"],
        "plain_steal": plain.get("steal"),
        "checked_steal": checked.get("steal"),
        "plain_cpu_s": plain.get("cpu_s"),
        "checked_cpu_s": checked.get("cpu_s"),
        "plain_stages": p_stages,
        "checked_stages": c_stages,
        "in_task_seconds": checks.get("in_task_seconds"),
        "driver_checks_s": c_stages.get("checks_plan", 0.0) + c_stages.get("checks", 0.0),
        "checked_peak_rss_mb": round(checked["peak_rss"] / 2**20),
        "plain_peak_rss_mb": round(plain["peak_rss"] / 2**20),
        "single_pass": checks.get("single_pass"),
    }


def summarize(pairs: list[dict]) -> dict:
    over = [p["overhead"] for p in pairs]
    lo, hi = bootstrap_median(over) if len(over) > 1 else (over[0], over[0])
    wall = [p["wall_overhead"] for p in pairs if p.get("wall_overhead") is not None]
    wall_lo, wall_hi = bootstrap_median(wall) if len(wall) > 1 else (wall or [None]) * 2

    def med(key):
        vals = [p[key] for p in pairs if p.get(key) is not None]
        return round(statistics.median(vals), 3) if vals else None

    def med_stage(side, stage):
        vals = [p[f"{side}_stages"][stage] for p in pairs if stage in p[f"{side}_stages"]]
        return round(statistics.median(vals), 3) if vals else None

    stages = sorted({s for p in pairs for side in ("plain", "checked") for s in p[f"{side}_stages"]})
    return {
        "pairs": len(pairs),
        "median_overhead": round(statistics.median(over), 4),
        "ci90_median_overhead": [round(lo, 4), round(hi, 4)],
        "mean_overhead": round(statistics.fmean(over), 4),
        "min_overhead": round(min(over), 4),
        "max_overhead": round(max(over), 4),
        "median_wall_overhead": round(statistics.median(wall), 4) if wall else None,
        "ci90_median_wall_overhead": [wall_lo, wall_hi]
        if wall_lo is None
        else [round(wall_lo, 4), round(wall_hi, 4)],
        "median_plain_job_s": med("plain_job_s"),
        "median_checked_job_s": med("checked_job_s"),
        "median_in_task_seconds": med("in_task_seconds"),
        "median_driver_checks_s": med("driver_checks_s"),
        "median_plain_wall_s": med("plain_wall_s"),
        "median_checked_wall_s": med("checked_wall_s"),
        "median_plain_cpu_s": med("plain_cpu_s"),
        "median_checked_cpu_s": med("checked_cpu_s"),
        "max_checked_peak_rss_mb": max(p["checked_peak_rss_mb"] for p in pairs),
        "max_steal": max(max(p["plain_steal"] or 0, p["checked_steal"] or 0) for p in pairs),
        "stages": {s: {"plain": med_stage("plain", s), "checked": med_stage("checked", s)} for s in stages},
    }


def print_model(model: str, pairs: list[dict], summary: dict) -> None:
    print(f"\n{model}: {summary['pairs']} pairs")
    print(
        f"  {'#':>2} {'order':5} {'plain s':>8} {'checks s':>8} {'overhead':>9} {'in-task':>8} {'steal':>11}"
    )
    for i, p in enumerate(pairs):
        steal = f"{(p['plain_steal'] or 0):.0%}/{(p['checked_steal'] or 0):.0%}"
        print(
            f"  {i:>2} {p['order']:5} {p['plain_job_s']:8.2f} {p['checked_job_s']:8.2f} "
            f"{p['overhead']:+9.1%} {p['in_task_seconds'] or 0:8.2f} {steal:>11}"
        )
    lo, hi = summary["ci90_median_overhead"]
    print(
        f"  median overhead {summary['median_overhead']:+.1%} (90% bootstrap interval {lo:+.1%} .. {hi:+.1%}), "
        f"mean {summary['mean_overhead']:+.1%}, range {summary['min_overhead']:+.1%} .. {summary['max_overhead']:+.1%}"
    )
    if summary.get("median_wall_overhead") is not None:
        wlo, whi = summary["ci90_median_wall_overhead"]
        print(
            f"  whole command: median overhead {summary['median_wall_overhead']:+.1%} "
            f"(90% bootstrap interval {wlo:+.1%} .. {whi:+.1%})"
        )
    print(f"  {'stage (median s)':24} {'plain':>8} {'checked':>8}")
    for stage, v in summary["stages"].items():
        p, c = v["plain"], v["checked"]
        print(f"  {stage:24} {'' if p is None else f'{p:8.2f}':>8} {'' if c is None else f'{c:8.2f}':>8}")
    print(
        f"  in-task checks {summary['median_in_task_seconds']} s (summed over tasks), driver checks "
        f"{summary['median_driver_checks_s']} s, whole command {summary['median_plain_wall_s']} -> "
        f"{summary['median_checked_wall_s']} s, peak RSS with checks <= {summary['max_checked_peak_rss_mb']} MB"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--models", default="int8,fp32")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--timeout", type=float, default=900)
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]

    workdir = args.workdir or HERE / ".data" / f"r{args.rows}_p{args.partitions}_s{args.seed}"
    inputs = datagen.prepare(workdir, args.rows, args.partitions, args.seed, models=tuple(models))
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log_dir = workdir / "logs" / f"overhead-{stamp}"
    outputs_dir = workdir / "outputs"
    outputs_dir.mkdir(parents=True, exist_ok=True)

    results: dict = {}
    pairs_by_model: dict[str, list[dict]] = {m: [] for m in models}
    for k in range(args.pairs):
        order = (CHECKED, PLAIN) if k % 2 else (PLAIN, CHECKED)
        for model in models:
            ctx = bench.Context(inputs, model, outputs_dir)
            runs = {}
            for name in order:
                print(f"[{dt.datetime.now():%H:%M:%S}] pair {k} {name} [{model}] ...", flush=True)
                runs[name] = bench.run_scenario(name, ctx, log_dir, args.timeout, False)
                if runs[name].get("status") != "ok":
                    print(f"    {runs[name].get('status')}", flush=True)
            if all(r.get("status") == "ok" and r.get("job_s") for r in runs.values()):
                rec = pair_record(runs[PLAIN], runs[CHECKED], "PC" if order[0] == PLAIN else "CP")
                pairs_by_model[model].append(rec)
                print(f"    overhead {rec['overhead']:+.1%}", flush=True)

    for model, pairs in pairs_by_model.items():
        if not pairs:
            continue
        summary = summarize(pairs)
        results[model] = {"summary": summary, "pairs": pairs}
        print_model(model, pairs, summary)

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"checks_overhead-{stamp}.json"
    meta = {"rows": args.rows, "partitions": args.partitions, "timestamp": stamp, "cpus": os.cpu_count()}
    path.write_text(json.dumps({"meta": meta, "models": results}, indent=1, default=str))
    print(f"\nsaved {path}")
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
