"""A kept check plan (batchinfer/checks/plan_cache.py), on the embedded engine, in fresh processes.

The first run with a suite plans the tasks' metrics with Great Expectations and keeps them; the
next run's tasks start from the kept plan while GX imports, and GX still decides every
expectation after the pass: the same outcomes on the same data, a failed gate on violating
data, and a kept plan that lacks a metric only moves that expectation to the GX fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.data import job_config, small_workspace

FEATURES = ["f0", "f1", "f2", "f3"]
CHECKS = {
    "input": [
        {"expect": "row_count_between", "min": 100},
        {"expect": "not_null", "column": "f0"},
        {"expect": "in_set", "column": "cat", "values": ["a", "b", "c"]},
        {"expect": "between", "column": "f1", "min": -3, "max": 3, "mostly": 0.95, "severity": "warn"},
    ],
    "output": [
        {"expect": "between", "column": "score", "min": 0, "max": 1},
        {"expect": "median_between", "column": "score", "min": 0, "max": 1},  # a GX fallback
    ],
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return small_workspace(tmp_path_factory.mktemp("plan_cache"))


def _config(ws, name: str, checks=CHECKS) -> Path:
    root, data, model = ws
    cfg = job_config(data, model, root / f"out-{name}", features=FEATURES)
    cfg["runtime"] = {**cfg.get("runtime", {}), "engine": "local"}
    cfg.pop("spark", None)
    cfg["checks"] = checks
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _run(config: Path, cache: Path) -> tuple[int, dict]:
    env = {**os.environ, "BATCHINFER_CACHE_DIR": str(cache)}
    proc = subprocess.run(
        [sys.executable, "-m", "batchinfer.cli", "run", str(config), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return proc.returncode, json.loads(proc.stdout)


def _decisions(manifest: dict) -> list:
    return [
        (o["stage"], o["check"], o["column"], o["passed"], json.dumps(o["observed"], sort_keys=True))
        for o in manifest["checks"]["outcomes"]
    ]


def _paths(manifest: dict) -> list[str]:
    c = manifest["checks"]
    return [
        e["path"]
        for side in ("input_expectations", "output_expectations")
        for e in c[side]["per_expectation"]
    ]


def test_the_next_run_starts_from_the_kept_plan_and_a_damaged_plan_only_moves_expectations_to_gx(
    ws, tmp_path
):
    """Same decisions from a kept plan; then, with f0's and cat's ops deleted from it, those two
    expectations fall back to GX with the true outcome. Never a default for a metric the tasks did
    not compute: f0 has unexpected values here, so a zero standing in for its missing count would
    turn the warning into a pass."""
    checks = json.loads(json.dumps(CHECKS))
    checks["input"][1] = {"expect": "between", "column": "f0", "min": -0.5, "max": 0.5, "severity": "warn"}
    config = _config(ws, "same", checks)
    rc1, first = _run(config, tmp_path)
    assert rc1 == 0 and first["checks"]["plan_source"] == "gx"
    assert [o["passed"] for o in first["checks"]["outcomes"][:2]] == [True, False]  # f0 breaks it
    (kept,) = (tmp_path / "check-plans").glob("*.json")
    rc2, second = _run(config, tmp_path)
    assert rc2 == 0 and second["checks"]["plan_source"] == "cache"
    assert _decisions(second) == _decisions(first)
    assert _paths(second) == _paths(first) == ["single_pass"] * 5 + ["gx_spark"]
    assert second["rows_out"] == first["rows_out"] == 1200

    doc = json.loads(kept.read_text())
    for pair in doc["ops"]["$d"]:  # drop every input op on f0 and cat
        if pair[0] == "input":
            pair[1] = [o for o in pair[1] if o["$t"][1] not in ("f0", "cat")]
    kept.write_text(json.dumps(doc))
    rc3, third = _run(config, tmp_path)
    assert rc3 == 0 and third["checks"]["plan_source"] == "cache"
    assert _decisions(third) == _decisions(first)
    paths = _paths(third)
    assert paths[1:3] == ["gx_spark", "gx_spark"] and paths[0] == paths[3] == "single_pass"


def test_a_kept_plan_on_violating_data_still_fails_the_gate(ws, tmp_path):
    strict = json.loads(json.dumps(CHECKS))
    strict["input"][3] = {"expect": "between", "column": "f1", "min": -0.5, "max": 0.5}  # most rows fail
    rc_cold, cold = _run(_config(ws, "strict-cold", strict), tmp_path)  # keeps the plan
    rc, hot = _run(_config(ws, "strict", strict), tmp_path)
    assert hot["checks"]["plan_source"] == "cache" and cold["checks"]["plan_source"] == "gx"
    assert rc == rc_cold == 5 and hot["status"] == "gate_failed"
    assert _decisions(hot) == _decisions(cold)
    written = [p for p in (ws[0] / "out-strict").rglob("*.parquet") if "_batchinfer" not in p.parts]
    assert written == []  # a failed gate writes nothing
