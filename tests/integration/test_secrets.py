"""Values read with ``${env:NAME}`` never leave the process: not in errors, hints, logs or manifests.

Each case is a real ``python -m batchinfer.cli`` child whose config takes a secret from its
environment into a place that ends up in an error message.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.support import models
from tests.support.data import job_config, write_partitioned

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok-5f9e2b7c"
FEATURES = ["f0", "f1", "f2", "f3"]


def _cli(*args, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "BATCHINFER_SECRET": SECRET, "PYSPARK_PYTHON": sys.executable}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["BATCHINFER_LOG_DIR"] = str(tmp_path / "logs")
    return subprocess.run(
        [sys.executable, "-m", "batchinfer.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=600,
    )


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    data = write_partitioned(root / "ev", days=("2026-11-28",), files_per_day=1, rows_per_file=50)
    model, _ = models.linear_classifier(root / "m.onnx", 4)
    return root, data, model


@pytest.mark.parametrize(
    "where, exit_code, message",
    [
        ("input.partitions", 3, "batchinfer: input error: partition ds=*** not found under"),
        ("input.path", 3, "/***/events"),
        ("model.path", 4, "batchinfer: model error: model file "),
        ("runtime.batch_rows", 2, "runtime.batch_rows: must be auto or a whole number of rows"),
    ],
)
def test_a_secret_in_a_plan_time_error_is_redacted(ws, tmp_path, where, exit_code, message):
    root, data, model = ws
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES)
    ref = "${env:BATCHINFER_SECRET}"
    if where == "input.partitions":
        cfg["input"]["partitions"] = {"ds": ref}
    elif where == "input.path":
        cfg["input"]["path"] = f"{root}/{ref}/events"
    elif where == "model.path":
        cfg["model"]["path"] = f"{root}/{ref}.onnx"
    else:
        cfg["runtime"]["batch_rows"] = ref
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps(cfg))
    for command in ("validate", "run"):
        proc = _cli(command, str(config), tmp_path=tmp_path)
        assert proc.returncode == exit_code, proc.stderr
        assert SECRET not in proc.stderr and SECRET not in proc.stdout
        assert message in proc.stderr and "***" in proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.slow  # a CLI child process with its own Spark
def test_a_secret_in_a_task_error_is_redacted_on_stderr_manifests_and_spark_log(ws, tmp_path):
    """After planning: the partition value is the secret, and a corrupt data page names its file."""
    root, _, model = ws
    data = write_partitioned(tmp_path / "ev", days=(SECRET,), files_per_day=2, rows_per_file=2000)
    bad = data / f"ds={SECRET}" / "part-1.parquet"
    offset = pq.read_metadata(bad).row_group(0).column(1).data_page_offset
    raw = bytearray(bad.read_bytes())
    raw[offset : offset + 40] = b"\xff" * 40
    bad.write_bytes(bytes(raw))
    out = tmp_path / "out"
    cfg = job_config(data, model, out, features=FEATURES, spark={"master": "local[2]"})
    cfg["input"]["partitions"] = {"ds": "${env:BATCHINFER_SECRET}"}
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps(cfg))
    manifest_out = tmp_path / "manifest-out.json"
    proc = _cli("run", str(config), "--json", "--manifest-out", str(manifest_out), tmp_path=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "batchinfer: input error: corrupt or unreadable Parquet file " in proc.stderr
    assert "ds=***/part-1.parquet" in proc.stderr
    manifest = json.loads(proc.stdout)
    assert manifest["error"]["type"] == "InputDataError" and "ds=***/" in manifest["error"]["message"]
    texts = {"stdout": proc.stdout, "stderr": proc.stderr, "--manifest-out": manifest_out.read_text()}
    for p in (out / "_batchinfer").rglob("*"):
        if p.is_file():
            texts[str(p.relative_to(out))] = p.read_text(errors="replace")
    run_dir = f"_batchinfer/runs/{manifest['run_id']}"
    assert {f"{run_dir}/manifest.json", f"{run_dir}/spark.log"} <= set(texts)
    assert "ds=***/part-1.parquet" in texts[f"{run_dir}/spark.log"]  # the task's trace is kept, redacted
    assert [name for name, text in texts.items() if SECRET in text] == []
