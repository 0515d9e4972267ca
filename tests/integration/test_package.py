"""`batchinfer package` builds a wheel + venv-pack archive that local-cluster executors run as their Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from tests.support.data import job_yaml

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_package_then_spark_submit_on_local_cluster(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "PYTHONPATH")
    }
    env["SPARK_WORKER_DIR"] = str(tmp_path / "worker")
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable  # spark-submit finds SPARK_HOME (pip pyspark) with it
    dist = tmp_path / "dist"
    # pyspark (~490 MB) is left out to keep the test fast: Spark puts its own pyspark.zip on the
    # workers' PYTHONPATH, as a real cluster's Spark installation does.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "batchinfer.cli",
            "package",
            "--out",
            str(dist),
            "--compress-level",
            "0",
            "--exclude",
            "pyspark",
            "--config",
            "conf/job.yaml",
            "--json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    info = json.loads(proc.stdout)
    archive = Path(info["archive"])
    assert Path(info["wheel"]).name == "batchinfer-0.1.0-py3-none-any.whl"
    assert archive == dist / "env.tar.gz" and archive.exists()
    assert not (dist / "build").exists()  # the staging venv is cleaned up
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    assert "bin/python" in names
    assert f"{site}/batchinfer/job.py" in names  # a regular install from the wheel, not editable
    assert f"{site}/onnxruntime/__init__.py" in names
    assert not any(n.startswith(f"{site}/pytest/") or n.startswith(f"{site}/pyspark/") for n in names)
    for name in ("standalone", "yarn", "kubernetes"):
        line = info["spark_submit"][name]
        assert f"--archives {archive}#environment" in line and "./environment/bin/python" in line
        assert "jobs/score.py --config" in line and "--py-files" not in line

    config, _, _ = job_yaml(tmp_path, "package-test")
    spark_submit = Path(sys.executable).parent / "spark-submit"
    proc = subprocess.run(
        [
            str(spark_submit),
            "--master",
            "local-cluster[2,1,1024]",
            "--archives",
            f"{archive}#environment",
            "--conf",
            f"spark.pyspark.driver.python={sys.executable}",
            "--conf",
            "spark.pyspark.python=./environment/bin/python",
            "--conf",
            "spark.executor.memory=768m",
            "--conf",
            "spark.ui.enabled=false",
            str(ROOT / "jobs" / "score.py"),
            "--config",
            str(config),
            "--set",
            "input.partitions.ds=2026-11-28",
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    manifest = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert manifest["status"] == "succeeded" and manifest["rows_out"] == 600
    assert manifest["spark"]["master"].startswith("local-cluster")
    out = ds.dataset(tmp_path / "out", format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
    assert out.to_table().num_rows == 600
    # spark.pyspark.python is the relative ./environment/bin/python: the executors' Python workers
    # could only start (and score) from the archive Spark unpacked in each executor's work dir.
