"""Data-quality, quarantine and drift gates inside real jobs: a failed gate writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.dataset as ds
import pytest

from batchinfer.checks.reference import build_reference_profile, reference_overrides
from batchinfer.cli import _print_checks
from batchinfer.errors import ConfigError, GateFailedError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, snapshot, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("gates")
    data = write_partitioned(root / "events", days=("2026-11-27", "2026-11-28"), rows_per_file=1500)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return root, data, model


def cfg_with(data, model, out, **sections):
    return job_config(data, model, out, features=FEATURES, passthrough=["id", "cat", "ds"], **sections)


def test_passing_checks_are_recorded_and_saved(spark, ws, tmp_path):
    root, data, model = ws
    checks = {
        "input": [
            {"expect": "not_null", "column": "f0"},
            {"expect": "in_set", "column": "cat", "values": ["a", "b", "c"]},
            {"expect": "between", "column": "f1", "min": -1, "max": 1, "severity": "warn"},
        ],
        "output": [{"expect": "between", "column": "score", "min": 0, "max": 1}],
    }
    out = tmp_path / "out"
    res = Job.from_config(cfg_with(data, model, out, checks=checks)).run(spark=spark)
    assert res.status == "succeeded"
    c = res.manifest["checks"]
    assert c["gate"]["passed"] and c["gate"]["warnings"] == 1  # f1 outside [-1, 1] sometimes: warn only
    statuses = {(o["stage"], o["column"]): o["status"] for o in c["outcomes"]}
    assert statuses[("input", "f1")] == "warning" and statuses[("output", "score")] == "passed"
    run_dir = out / "_batchinfer" / "runs" / res.run_id
    assert json.loads((run_dir / "gx_input.json").read_text())["success"] is False  # GX's own view
    assert (run_dir / "gx_output.json").exists()


def test_failed_gate_writes_nothing_and_keeps_previous_output(spark, ws, tmp_path):
    root, data, model = ws
    out = tmp_path / "out"
    Job.from_config(cfg_with(data, model, out)).run(spark=spark)
    before = snapshot(out)
    checks = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.5}]}
    with pytest.raises(GateFailedError, match=r"output:expect_column_values_to_be_between\[score\]") as info:
        Job.from_config(cfg_with(data, model, out, checks=checks)).run(spark=spark)
    assert snapshot(out) == before
    manifest = json.loads(
        (out / "_batchinfer" / "runs" / info.value.result.run_id / "manifest.json").read_text()
    )
    assert manifest["status"] == "gate_failed" and manifest["error"]["exit_code"] == 5
    assert manifest["checks"]["gate"]["failed"] == 1


def test_input_gate_stops_before_scoring_with_the_spark_writer(spark, ws, tmp_path):
    """Spark's writer returns no rows, so its checks run as Spark jobs: input checks before scoring.
    (With the direct writer they are computed in the scoring pass: test_single_pass.py.)"""
    root, data, model = ws
    checks = {"input": [{"expect": "in_set", "column": "cat", "values": ["a", "b"]}]}
    cfg = cfg_with(data, model, tmp_path / "out", checks=checks, output={"writer": "spark"})
    with pytest.raises(GateFailedError, match="after the input checks") as info:
        Job.from_config(cfg).run(spark=spark)
    assert "score_and_stage" not in info.value.result.manifest["timings"]
    assert not list((tmp_path / "out").glob("ds=*"))


def test_unknown_expectation_is_a_config_error():
    with pytest.raises(ConfigError, match="checks.input.0"):
        Job.from_config(
            {
                "job": "x",
                "input": {"path": "a"},
                "output": {"path": "b"},
                "model": {
                    "path": "m",
                    "inputs": {"i": {"columns": ["f"]}},
                    "outputs": {"o": {"column": "y"}},
                },
                "checks": {"input": [{"expect": "not_nul", "column": "f"}]},
            }
        )


def test_quarantine_splits_bad_rows_and_enforces_budget(spark, tmp_path):
    def extra(n, rng):
        f1 = rng.normal(size=n).astype(np.float32)
        f1[:3] = np.nan
        f1[3] = np.inf
        return {"f1": f1}

    data = write_partitioned(tmp_path / "ev", days=("2026-11-28",), rows_per_file=500, extra=extra)
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 4)
    q = {"enabled": True, "path": str(tmp_path / "quarantine"), "max_fraction": 0.01}
    cfg = cfg_with(data, model, tmp_path / "out", quarantine=q, input={"invalid_features": "quarantine"})
    res = Job.from_config(cfg).run(spark=spark)
    qsum = res.manifest["checks"]["quarantine"]
    assert qsum["rows_quarantined"] == 8 and qsum["rows_total"] == 1000
    assert res.rows_out == 992
    bad = (
        ds.dataset(tmp_path / "quarantine", partitioning="hive", ignore_prefixes=["_", "."])
        .to_table()
        .to_pandas()
    )
    assert len(bad) == 8 and set(bad["_quarantine_reason"]) == {"f1 is NaN", "f1 is infinite"}
    committed = snapshot(tmp_path / "quarantine")
    assert "ds=2026-11-28/_SUCCESS" in committed
    # A failed gate writes nothing anywhere: neither a quarantine over budget...
    cfg["quarantine"]["max_fraction"] = 0.001
    with pytest.raises(GateFailedError, match="quarantine"):
        Job.from_config(cfg).run(spark=spark)
    assert snapshot(tmp_path / "quarantine") == committed
    # ...nor a quarantine within budget when a later (output) gate fails.
    cfg["quarantine"]["max_fraction"] = 0.01
    cfg["checks"] = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.001}]}
    with pytest.raises(GateFailedError, match="output"):
        Job.from_config(cfg).run(spark=spark)
    assert snapshot(tmp_path / "quarantine") == committed


def test_drift_gate_flags_a_planted_shift(spark, tmp_path, capsys):
    data = write_partitioned(tmp_path / "ev", days=("2026-11-27",), rows_per_file=4000, seed=1)
    write_partitioned(
        tmp_path / "ev",
        days=("2026-11-28",),
        rows_per_file=4000,
        seed=2,
        extra=lambda n, rng: {"f2": (rng.normal(size=n) + 1.5).astype(np.float32)},
    )
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 4)
    profile_path = tmp_path / "profile.json"
    base = cfg_with(data, model, tmp_path / "out")
    job = Job.from_config(base, overrides=reference_overrides("ds=2026-11-27"))
    build_reference_profile(job, spark=spark).save(profile_path)
    profile = json.loads(profile_path.read_text())
    assert {"f0", "f1", "f2", "f3", "cat", "score", "label"} <= set(profile["columns"])

    cfg = cfg_with(data, model, tmp_path / "out", drift={"reference": str(profile_path)})
    same = Job.from_config(cfg, overrides=["input.partitions.ds=2026-11-27"]).run(spark=spark)
    assert same.manifest["checks"]["drift"]["drifted"] == []
    _print_checks(same.manifest)  # a passing drift-only run: the drift line, no empty table
    printed = capsys.readouterr().out
    assert printed.startswith("drift: ") and "(no checks)" not in printed
    with pytest.raises(GateFailedError, match=r"failed after the drift checks .*drift:psi\[f2\]") as info:
        Job.from_config(cfg, overrides=["input.partitions.ds=2026-11-28"]).run(spark=spark)
    drift = info.value.result.manifest["checks"]["drift"]
    assert drift["drifted"] == ["f2"]
    assert not (tmp_path / "out" / "ds=2026-11-28").exists()


def test_drift_adds_no_spark_job(spark, tmp_path):
    """Drift is counted inside the scoring pass: the run has as many Spark jobs as without it."""
    data = write_partitioned(tmp_path / "ev", days=("2026-11-27",), rows_per_file=2000, seed=3)
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 4)
    base = cfg_with(data, model, tmp_path / "out")
    profile_path = tmp_path / "profile.json"
    build_reference_profile(Job.from_config(base), spark=spark).save(profile_path)

    def jobs_of(result):
        return len(spark.sparkContext.statusTracker().getJobIdsForGroup(f"batchinfer-{result.run_id}"))

    plain = Job.from_config(base).run(spark=spark)
    with_drift = Job.from_config(
        cfg_with(data, model, tmp_path / "out", drift={"reference": str(profile_path)})
    )
    drifted = with_drift.run(spark=spark)
    assert drifted.manifest["checks"]["drift"]["columns"] == 5  # f0..f3 and cat
    assert drifted.manifest["checks"]["prediction_drift"]["columns"] == 2  # score and label
    assert jobs_of(drifted) == jobs_of(plain) >= 1
    counts = json.loads(
        (tmp_path / "out" / "_batchinfer" / "runs" / drifted.run_id / "drift_input_counts.json").read_text()
    )
    assert counts["row_count"] == drifted.rows_out == 4000  # every scored row counted exactly once
