"""batchinfer.airflow: operator arguments from a job config, exit-code mapping; no Airflow needed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batchinfer import airflow as bi
from batchinfer.errors import (
    EXIT_CODES,
    ConfigError,
    DeviceError,
    GateFailedError,
    InputDataError,
    ModelError,
    OutputError,
)

ROOT = Path(__file__).resolve().parents[2]


def test_module_imports_neither_airflow_nor_the_job_stack():
    code = (
        "import sys, batchinfer.airflow; "
        "bad = [m for m in ('airflow', 'pyspark', 'pydantic', 'onnxruntime', 'pandas', 'yaml', 'batchinfer.config') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "message, code",
    [
        ("Cannot execute: spark-submit --master yarn jobs/score.py. Error code is: 5.", 5),
        ("Cannot execute: spark-submit ... Error code is: 1.\n...log tail...", 1),
        ("Cannot execute: x. Error code is: 1. Kubernetes spark exit code is: 3", 3),
        ("Cannot execute: x. Error code is: 0. Kubernetes spark exit code is: 0", 0),
        ("Task received SIGTERM signal", None),
    ],
)
def test_exit_code_from_spark_submit_errors(message, code):
    assert bi.exit_code_from_error(Exception(message)) == code


def test_only_infrastructure_failures_are_retried():
    assert bi.should_retry(1) and bi.should_retry(None) and bi.should_retry(137)
    assert not bi.should_retry(bi.EXIT_MANIFEST_NOT_WRITTEN)  # committed: a retry would only redo it
    for err in (ConfigError, InputDataError, ModelError, GateFailedError, OutputError, DeviceError):
        assert not bi.should_retry(err.exit_code), err
    # The literal copy of the exit codes stays in step with batchinfer.errors.
    assert set(bi.OUTCOMES) == set(EXIT_CODES)
    assert bi.outcome_of(GateFailedError.exit_code) == "gate_failed"
    assert bi.outcome_of(ConfigError.exit_code) == "config_error"
    assert bi.outcome_of(None) == bi.outcome_of(99) == "infrastructure_failure"


def test_spark_submit_kwargs_from_layered_config():
    kwargs = bi.spark_submit_kwargs(
        ROOT / "conf" / "base" / "churn.yaml",
        env="prod",
        overrides=["input.partitions.ds={{ ds }}"],
        manifest_out="/m/{{ ds }}.json",
        archive="hdfs:///apps/batchinfer/env.tar.gz",
    )
    assert kwargs["application"] == str(ROOT / "batchinfer" / "submit.py")  # in the wheel: any directory
    assert kwargs["name"] == "churn-scoring-prod"
    assert kwargs["archives"] == "hdfs:///apps/batchinfer/env.tar.gz#environment"
    assert kwargs["conf"]["spark.pyspark.python"] == "./environment/bin/python"
    assert kwargs["conf"]["spark.executor.memory"] == "8g"
    assert kwargs["conf"]["spark.sql.shuffle.partitions"] == "200"  # prod overrides base
    assert kwargs["conf"]["spark.dynamicAllocation.enabled"] == "true"
    assert kwargs["application_args"] == [
        "--config",
        str(ROOT / "conf" / "base" / "churn.yaml"),
        "--env",
        "prod",
        "--set",
        "input.partitions.ds={{ ds }}",
        "--manifest-out",
        "/m/{{ ds }}.json",
    ]


def test_spark_submit_kwargs_base_only_and_env_values_stay_off_the_command_line(tmp_path):
    cfg = tmp_path / "job.yaml"
    cfg.write_text(
        "job: j\nspark:\n  conf:\n    spark.a: 1\n    spark.secret: ${env:TOKEN}\n    spark.b: false\n"
    )
    kwargs = bi.spark_submit_kwargs(cfg, config_arg="job.yaml")
    assert kwargs["conf"] == {"spark.a": "1", "spark.b": "false"}
    assert kwargs["name"] == "batchinfer:j"
    assert kwargs["application_args"] == ["--config", "job.yaml"]
    assert "archives" not in kwargs


def test_manifest_outcome_and_branch(tmp_path):
    path = tmp_path / "manifest.json"
    assert bi.read_manifest(path) is None and bi.read_manifest(None) is None
    path.write_text("{not json")
    assert bi.read_manifest(path) is None
    for doc, outcome in [
        ({"status": "succeeded"}, "succeeded"),
        ({"status": "gate_failed", "error": {"exit_code": 5}}, "gate_failed"),
        ({"status": "failed", "error": {"exit_code": 3}}, "input_error"),
        ({"status": "failed", "error": {"exit_code": 1}}, "infrastructure_failure"),
    ]:
        path.write_text(json.dumps(doc))
        assert bi.outcome_from_manifest(bi.read_manifest(path)) == outcome
    branches = {"on_success": "publish", "on_gate_failed": "alert_gate", "on_failure": "alert"}
    assert bi.branch_for("succeeded", **branches) == "publish"
    assert bi.branch_for("dry_run", **branches) == "publish"
    assert bi.branch_for("gate_failed", **branches) == "alert_gate"
    assert bi.branch_for("config_error", **branches) == "alert"
    assert bi.branch_for(None, **branches) == "alert"


def test_spark_conf_overrides_travel_to_spark_submit_conf():
    # spark-submit's --conf beats the job config, so a --set on spark.conf must reach --conf too.
    kwargs = bi.spark_submit_kwargs(
        ROOT / "conf" / "base" / "churn.yaml",
        overrides=["spark.conf.spark.sql.shuffle.partitions=8", "input.partitions.ds={{ ds }}"],
    )
    assert kwargs["conf"]["spark.sql.shuffle.partitions"] == "8"
    assert "--set" in kwargs["application_args"]


ATTEMPT = "dag/run/score/2/abcd"


def _m(status, code=None, attempt=ATTEMPT, **extra):
    doc = {"status": status, "run_id": "r1", "attempt": attempt, **extra}
    if code is not None:
        doc["error"] = {"exit_code": code, "message": "why", "hint": None}
    return doc


@pytest.mark.parametrize(
    "code, manifest, action, outcome",
    [
        (0, _m("succeeded"), "success", "succeeded"),
        (0, _m("dry_run"), "success", "dry_run"),
        (0, None, "success", "succeeded"),  # cluster mode: no readable manifest, exit 0 says committed
        (8, None, "success", "succeeded"),  # committed; the --manifest-out copy failed
        (5, _m("gate_failed", 5), "fail", "gate_failed"),
        (5, None, "fail", "gate_failed"),
        (1, _m("failed", 1), "retry", "infrastructure_failure"),
        (1, _m("failed", 3), "fail", "input_error"),  # YARN cluster mode says 1; the manifest knows
        (1, _m("gate_failed", 5), "fail", "gate_failed"),
        (None, None, "retry", "infrastructure_failure"),  # killed driver: no code at all
        (2, None, "fail", "config_error"),
        (7, None, "fail", "device_error"),
        # Stale manifests (another try's attempt) never decide:
        (1, _m("succeeded", attempt="dag/run/score/1/ffff"), "retry", "infrastructure_failure"),
        (2, _m("gate_failed", 5, attempt="dag/old/score/1/0"), "fail", "config_error"),
        (None, _m("succeeded", attempt=None), "retry", "infrastructure_failure"),
    ],
)
def test_decide_trusts_only_this_tries_manifest(code, manifest, action, outcome):
    decision = bi.decide(code, manifest, attempt=ATTEMPT, output="/data/out")
    assert (decision.action, decision.outcome) == (action, outcome), decision.message
    mine = manifest is not None and manifest.get("attempt") == ATTEMPT
    assert (decision.manifest is not None) == mine


def test_decide_messages():
    d = bi.decide(6, None, attempt=ATTEMPT, output="/data/out")
    assert d.action == "fail" and d.outcome == "output_error"
    assert "clear a stale lock with `batchinfer unlock /data/out`, then clear this task" in d.message
    d = bi.decide(1, None, attempt=ATTEMPT)
    assert d.message == "batchinfer infrastructure failure or unknown outcome (exit code 1); retrying"
    d = bi.decide(5, _m("gate_failed", 5), attempt=ATTEMPT)
    assert d.message.startswith("batchinfer check gate failed (run r1): why; not retried")


def test_find_run_record_by_attempt(tmp_path):
    out = tmp_path / "out"
    runs = out / "_batchinfer" / "runs"
    for run_id, attempt in (("20261128T000000Z-a", "other"), ("20261128T000100Z-b", ATTEMPT)):
        (runs / run_id).mkdir(parents=True)
        (runs / run_id / "manifest.json").write_text(
            json.dumps(_m("succeeded", attempt=attempt, run_id=run_id))
        )
    (out / "_batchinfer" / "last_run.json").write_text(json.dumps(_m("succeeded", attempt="newer")))
    assert bi.find_run_record(out, ATTEMPT)["run_id"] == "20261128T000100Z-b"
    assert bi.find_run_record(out, "missing") is None
    assert bi.find_run_record("s3a://bucket/out", ATTEMPT) is None  # remote: not read from Airflow
    assert bi.find_run_record(f"file://{out}", ATTEMPT)["run_id"] == "20261128T000100Z-b"
    assert bi.local_output_path("s3a://${env:B}/x") is None


def test_operator_is_exported_lazily():
    code = "import batchinfer.airflow as bi, sys; print('airflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        bi.Nope  # noqa: B018
