"""`batchinfer package` builds a wheel + venv-pack archive that local-cluster executors run as their Python."""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import tarfile
import zipfile
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
    # pyspark (~490 MB) is left out by default: Spark puts its own pyspark.zip on the workers'
    # PYTHONPATH, as a real cluster's Spark installation does.
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "batchinfer.cli", "package", "--out", str(dist)),
            *("--compress-level", "0", "--config", "conf/job.yaml", "--json"),
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
    assert info["archive_bytes"] == archive.stat().st_size
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(archive.stat().st_mode) == 0o666 & ~mask  # not venv-pack's 0600
    assert not (dist / "build").exists()  # the staging venv is cleaned up
    with zipfile.ZipFile(info["wheel"]) as whl:
        assert "batchinfer/submit.py" in whl.namelist()  # the spark-submit entry point ships in the wheel
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    site = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"
    assert "bin/python" in names
    assert f"{site}/batchinfer/job.py" in names  # a regular install from the wheel, not editable
    assert f"{site}/batchinfer/submit.py" in names
    assert f"{site}/onnxruntime/__init__.py" in names
    assert not any(n.startswith(f"{site}/pytest/") or n.startswith(f"{site}/pyspark/") for n in names)
    for name in ("standalone", "yarn", "kubernetes"):
        line = info["spark_submit"][name]
        assert f"--archives {archive}#environment" in line and "./environment/bin/python" in line
        assert "jobs/score.py" not in line and "--py-files" not in line
        # Absolute paths only: the lines run from any directory.
        assert f"{ROOT / 'batchinfer' / 'submit.py'} --config " in line
    assert f"--config {ROOT / 'conf' / 'job.yaml'} " in info["spark_submit"]["standalone"]

    config, _, _ = job_yaml(tmp_path, "package-test")
    pip_work = Path(__import__("pyspark").__file__).parent / "work"
    work_before = sorted(pip_work.iterdir()) if pip_work.exists() else []
    # `batchinfer submit` builds and runs the spark-submit line (SPARK_HOME, master, archive, the
    # executors' Python), from a directory that is not the checkout.
    run_env = {k: v for k, v in env.items() if k not in ("SPARK_HOME", "PYSPARK_DRIVER_PYTHON")}
    proc = subprocess.run(
        [
            *(str(Path(sys.executable).parent / "batchinfer"), "submit", str(config)),
            *("--master", "local-cluster[2,1,1024]", "--archive", str(archive)),
            *("--conf", "spark.executor.memory=768m", "--conf", "spark.ui.enabled=false"),
            *("--set", "input.partitions.ds=2026-11-28", "--json"),
        ],
        cwd=tmp_path,
        env=run_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    first = proc.stderr.splitlines()[0]
    assert first.startswith("batchinfer: ")  # the line it runs, printed first
    argv = shlex.split(first[len("batchinfer: ") :])
    assert argv[0].endswith("/bin/spark-submit") and argv[1:3] == ["--master", "local-cluster[2,1,1024]"]
    assert argv[argv.index("--archives") + 1] == f"{archive}#environment"
    assert "spark.pyspark.python=./environment/bin/python" in argv
    manifest = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert manifest["status"] == "succeeded" and manifest["rows_out"] == 600
    assert manifest["spark"]["master"].startswith("local-cluster")
    out = ds.dataset(tmp_path / "out", format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
    assert out.to_table().num_rows == 600
    # The manifest says which Python each worker ran: the archive's, unpacked in each executor's
    # work dir (under SPARK_WORKER_DIR, the test's tmp dir), with its Python and onnxruntime.
    import platform

    import onnxruntime

    workers = manifest["workers"]
    assert workers and all(":" in w for w in workers)
    for w in workers.values():
        assert w["executable"].endswith("environment/bin/python"), w["executable"]
        environment = Path(w["executable"]).parent.parent.resolve()  # not the interpreter symlink
        assert environment.is_relative_to(tmp_path / "worker"), w["executable"]
        assert w["python_version"] == platform.python_version()
        assert w["onnxruntime_version"] == onnxruntime.__version__
    # Nothing new in the pip pyspark's work/ (local-cluster's default, ~1 GB a run with an archive).
    assert (sorted(pip_work.iterdir()) if pip_work.exists() else []) == work_before
    # The job stops its SparkSession: executors shut down cleanly, no launch errors afterwards.
    assert "Failed to launch executor" not in proc.stdout + proc.stderr
