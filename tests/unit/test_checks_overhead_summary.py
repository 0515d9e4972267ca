"""The arithmetic of benchmarks/checks_overhead.py (its figures go into the docs)."""

from __future__ import annotations

import importlib.util
import statistics
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _module():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("checks_overhead", BENCH / "checks_overhead.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


def _run(job_s, stages, **extra):
    manifest = {"timings": stages, "checks": extra.pop("checks", {})}
    return {
        "job_s": job_s,
        "wall_s": job_s + 10,
        "steal": 0.0,
        "cpu_s": 2 * job_s,
        "peak_rss": 2**30,
        "result": {"manifest": manifest},
        **extra,
    }


def test_pairs_and_summary():
    mod = _module()
    pairs = []
    for plain, checked in ((10.0, 11.0), (10.0, 10.5), (12.0, 12.0), (10.0, 13.0), (8.0, 8.4)):
        p = _run(plain, {"score_and_stage": plain})
        c = _run(
            checked,
            {"score_and_stage": checked, "checks": 0.1, "checks_plan": 0.05},
            checks={"in_task_seconds": 1.5, "single_pass": True},
        )
        pairs.append(mod.pair_record(p, c, "PC"))
    overheads = [0.10, 0.05, 0.0, 0.30, 0.05]
    assert [round(p["overhead"], 6) for p in pairs] == overheads
    assert abs(pairs[0]["driver_checks_s"] - 0.15) < 1e-12
    s = mod.summarize(pairs)
    assert s["median_overhead"] == round(statistics.median(overheads), 4)
    lo, hi = s["ci90_median_overhead"]
    assert min(overheads) <= lo <= s["median_overhead"] <= hi <= max(overheads)
    assert s["stages"]["score_and_stage"] == {"plain": 10.0, "checked": 11.0}
    assert s["stages"]["checks"] == {"plain": None, "checked": 0.1}
    assert s["max_checked_peak_rss_mb"] == 1024
    # the whole command: wall_s is job_s + 10 in these runs
    walls = [
        (c + 10) / (p + 10) - 1
        for p, c in ((10.0, 11.0), (10.0, 10.5), (12.0, 12.0), (10.0, 13.0), (8.0, 8.4))
    ]
    assert [round(p["wall_overhead"], 6) for p in pairs] == [round(w, 6) for w in walls]
    assert s["median_wall_overhead"] == round(statistics.median(walls), 4)
    wlo, whi = s["ci90_median_wall_overhead"]
    assert round(min(walls), 4) <= wlo <= s["median_wall_overhead"] <= whi <= round(max(walls), 4)


def test_bootstrap_interval_is_repeatable_and_narrows_with_more_pairs():
    mod = _module()
    few = [0.02, 0.15, -0.05, 0.11, 0.07, 0.09]
    assert mod.bootstrap_median(few) == mod.bootstrap_median(few)
    lo, hi = mod.bootstrap_median(few)
    lo4, hi4 = mod.bootstrap_median(few * 4)
    assert hi4 - lo4 < hi - lo
