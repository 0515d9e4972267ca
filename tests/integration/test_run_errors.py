"""How ``batchinfer run`` fails: before Spark when ``validate`` could tell, once (not retried) when a
task hits a deterministic error, and with one line on the console (Spark's trace goes to a file).

Each case is a real ``python -m batchinfer.cli`` child process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support import models
from tests.support.data import job_config, write_partitioned

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["f0", "f1", "f2", "f3"]
DAY = "2026-11-28"

# Runs the CLI in this child, then reports whether a Spark JVM was ever started in it.
PROBE = """
import json, sys
from batchinfer import cli
rc = cli.main(sys.argv[1:])
from pyspark import SparkContext
print(json.dumps({"rc": rc, "spark_started": SparkContext._gateway is not None}))
"""


def _env(tmp_path) -> dict:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "BATCHINFER_LOG_DIR": str(tmp_path / "logs")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("run-errors")
    data = write_partitioned(root / "ev", days=(DAY,), files_per_day=2, rows_per_file=100)
    model, _ = models.linear_classifier(root / "m.onnx", 4)
    return root, data, model


@pytest.mark.parametrize(
    "case, exit_code, message",
    [
        ("gpu", 7, "batchinfer: device error: runtime.device=gpu but this onnxruntime"),
        ("expectation", 2, "unknown Great Expectations expectation 'expect_column_to_be_purple'"),
    ],
)
def test_what_validate_finds_fails_run_before_spark_starts(ws, tmp_path, case, exit_code, message):
    root, data, model = ws
    if case == "gpu":
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            pytest.skip("this onnxruntime has CUDA: device gpu is valid here")
        sections = {"runtime": {"device": "gpu"}}
    else:
        sections = {"checks": {"input": [{"expect": "expect_column_to_be_purple", "column": "f0"}]}}
    out = tmp_path / "out"
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps(job_config(data, model, out, features=FEATURES, **sections)))
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    for command in ("validate", "run"):
        proc = subprocess.run(
            [sys.executable, str(probe), command, str(config)],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=_env(tmp_path),
            timeout=600,
        )
        assert proc.stdout.strip(), proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        assert result == {"rc": exit_code, "spark_started": False}, proc.stderr[-3000:]
        assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()  # no lock, no staging, no manifest


def _spark_events(directory: Path) -> list[dict]:
    """Every event of Spark's event log (v2 layout: a directory of JSON-lines files)."""
    events = []
    for path in sorted(directory.rglob("events_*")):
        events += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert events, f"no Spark event log under {directory}"
    return events


def _null_feature_data(root) -> Path:
    data = write_partitioned(root / "ev-null", days=(DAY,), files_per_day=2, rows_per_file=100)
    for path in (data / f"ds={DAY}").glob("*.parquet"):
        table = pq.read_table(path)
        i = table.schema.get_field_index("f3")
        pq.write_table(table.set_column(i, "f3", pa.nulls(table.num_rows, pa.float32())), path)
    return data


@pytest.mark.slow  # a CLI child process with its own Spark
def test_task_error_is_one_line_on_the_console_once_per_task_and_traced_in_the_run_log(ws, tmp_path):
    """An all-null feature column on local[2,4] (4 attempts allowed per task): each task runs once,
    the console shows the error and its fix, Spark's event log shows no failed attempt, and the
    run's log file holds the task's traceback."""
    root, _, model = ws
    data = _null_feature_data(tmp_path)
    out = tmp_path / "out"
    events = tmp_path / "events"
    events.mkdir()
    spark = {
        "master": "local[2,4]",
        "conf": {
            "spark.eventLog.enabled": True,
            "spark.eventLog.dir": f"file://{events}",
            "spark.eventLog.compress": False,
        },
    }
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps(job_config(data, model, out, features=FEATURES, spark=spark)))
    proc = subprocess.run(
        [sys.executable, "-m", "batchinfer.cli", "run", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_env(tmp_path),
        timeout=600,
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    err = proc.stderr
    for noise in ("Traceback", "ERROR Executor", "WARN TaskSetManager", "at org.apache", "py4j"):
        assert noise not in err, err[-3000:]
    # Progress lines aside (they are log lines on a non-terminal), the error is three lines.
    progress = re.compile(r"^(\S+Z )?batchinfer: (stage|score)")  # timestamped on a non-terminal
    lines = [ln for ln in err.splitlines() if not progress.match(ln)]
    run_id = json.loads((out / "_batchinfer" / "last_run.json").read_text())["run_id"]
    log = out / "_batchinfer" / "runs" / run_id / "spark.log"
    assert lines == [
        "batchinfer: input error: column 'f3' has 100 null value(s) in a batch; input.invalid_features='fail'",
        "  fix: set input.invalid_features to 'fill' or 'quarantine', or clean the data upstream",
        f"  log: {log}",
        f"  report: {log.parent / 'report.html'}",
    ]
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "batchinfer.errors.InputDataError" in text
    assert "deterministic, not retried" in text

    # Spark's own record of every task attempt: both scoring tasks ran once, and none failed.
    task_ends = [e for e in _spark_events(events) if e["Event"] == "SparkListenerTaskEnd"]
    attempts = sorted((e["Task Info"]["Index"], e["Task Info"]["Attempt"]) for e in task_ends)
    assert attempts == [(0, 0), (1, 0)]
    assert [e["Task End Reason"]["Reason"] for e in task_ends] == ["Success", "Success"]
