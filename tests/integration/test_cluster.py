"""Separate executor JVMs (local-cluster) and spark-submit: the paths a real cluster takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from batchinfer.spark import local_cluster_spark_home
from tests.support import models
from tests.support.data import job_yaml, write_partitioned

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _env(tmp_path) -> dict:
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["SPARK_WORKER_DIR"] = str(tmp_path / "worker")
    # local-cluster workers use $SPARK_HOME/work (not SPARK_WORKER_DIR): keep it in tmp_path.
    env["SPARK_HOME"] = local_cluster_spark_home(worker_dir=env["SPARK_WORKER_DIR"])
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_local_cluster_broadcast_path(tmp_path):
    data = write_partitioned(tmp_path / "events", files_per_day=3, rows_per_file=400)
    model, _ = models.linear_classifier(tmp_path / "model.onnx", 4)
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.cluster_job", str(data), str(model), str(tmp_path / "out")],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["status"] == "succeeded" and res["master"].startswith("local-cluster")
    assert res["rows_out"] == res["rows_in"] == 2 * 3 * 400
    assert res["rows_without_model_file"] == 2 * 3 * 400  # executors scored with the model file gone
    # Executor Python workers are separate processes from the driver.
    assert all(int(w.split(":")[1]) != os.getpid() for w in res["workers"])


def test_spark_submit_end_to_end(tmp_path):
    config, _, _ = job_yaml(
        tmp_path,
        "submit-test",
        extra="spark: {master: 'local[*]', conf: {spark.sql.shuffle.partitions: 4, spark.executor.cores: 1}}\n",
    )
    spark_submit = Path(sys.executable).parent / "spark-submit"
    proc = subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            *("--conf", "spark.sql.shuffle.partitions=16", "--conf", "spark.ui.showConsoleProgress=true"),
            str(ROOT / "jobs" / "score.py"),
            "--config",
            str(config),
            "--set",
            "input.partitions.ds=2026-11-28",
            "--json",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert manifest["status"] == "succeeded" and manifest["rows_out"] == 600
    assert manifest["spark"]["master"] == "local[2]"
    # spark-submit's --conf beats the config's spark.conf and batchinfer's defaults; the config's
    # other values still apply; each override and the ignored master are one notice line.
    conf = manifest["spark"]["conf"]
    assert conf["spark.sql.shuffle.partitions"] == "16" and conf["spark.ui.showConsoleProgress"] == "true"
    assert conf["spark.executor.cores"] == "1"
    logged = (proc.stdout + proc.stderr).splitlines()
    assert (
        "batchinfer: notice: spark.conf.spark.sql.shuffle.partitions=4 in the job config is overridden by "
        "spark-submit (--conf or spark-defaults.conf): spark.sql.shuffle.partitions=16"
    ) in logged
    assert (
        "batchinfer: notice: spark.master=local[*] in the job config is ignored under spark-submit: "
        "the master is local[2] (spark-submit --master)"
    ) in logged
    out = ds.dataset(
        tmp_path / "out", format="parquet", partitioning="hive", ignore_prefixes=["_", "."]
    ).to_table()
    assert out.num_rows == 600

    # A gate-free failure path through spark-submit keeps the documented exit code.
    proc = subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local[1]",
            str(ROOT / "jobs" / "score.py"),
            "--config",
            str(config),
            "--set",
            "input.partitions.ds=2031-01-01",
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 3, proc.stderr[-2000:]
    # spark-submit's Python runner merges the driver's stderr into stdout.
    assert "partition ds=2031-01-01 not found" in proc.stdout + proc.stderr
