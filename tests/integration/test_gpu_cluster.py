"""GPU executors without a GPU: real Spark GPU scheduling (local-cluster, fake discovery script).

One subprocess (tests/support/gpu_job.py) runs five jobs in one local-cluster application:
onnxruntime's provider list is faked per job through a Spark local property, Spark is not mocked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchinfer.spark import local_cluster_spark_home
from tests.support import models
from tests.support.data import write_partitioned

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("gpu")
    data = write_partitioned(tmp / "events", files_per_day=3, rows_per_file=1000)
    model, _ = models.linear_classifier(tmp / "model.onnx", 4)
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["SPARK_WORKER_DIR"] = str(tmp / "spark-worker")
    # local-cluster workers use $SPARK_HOME/work (not SPARK_WORKER_DIR): keep it in tmp.
    env["SPARK_HOME"] = local_cluster_spark_home(worker_dir=env["SPARK_WORKER_DIR"])
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "tests.support.gpu_job", str(data), str(model), str(tmp)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _assert_own_gpu_per_executor(workers: dict) -> None:
    """Each executor's tasks saw one address, asked CUDA for that device id; ids {0, 1} overall."""
    assert len(workers) >= 2
    for info in workers.values():
        assert len(info["gpu_addresses"]) == 1
        assert info["device_ids"] == [int(info["gpu_addresses"][0])]
        assert info["requested_providers"] == [CUDA, CPU]
    assert {d for info in workers.values() for d in info["device_ids"]} == {0, 1}


def test_each_task_asks_cuda_for_its_own_gpu_and_a_silent_cpu_fallback_is_recorded(runs):
    res = runs["fake_auto"]  # CUDA listed as available, but this onnxruntime cannot load it
    assert res["status"] == "succeeded" and res["rows_out"] == 6000
    _assert_own_gpu_per_executor(res["workers"])
    # The session really runs on CPU: the manifest says so per executor and warns.
    assert res["providers"] == [CPU]
    assert all(info["providers"] == [CPU] for info in res["workers"].values())
    assert len(res["warnings"]) == 2  # one per device: "... requested on device 0 / 1 but ..."
    for warning in res["warnings"]:
        assert warning.startswith("runtime.device=auto fell back to CPU: CUDAExecutionProvider was requested")


def test_gpu_with_cuda_silently_dropped_is_a_device_error(runs):
    res = runs["fake_gpu"]
    assert res["error"] == "DeviceError" and res["is_device_error"] and res["exit_code"] == 7
    assert "no GPU is in use" in res["message"] and "but onnxruntime runs on" in res["message"]
    assert res["hint"].endswith("or set runtime.device: auto")
    assert res["manifest_status"] == "failed"


def test_cuda_in_use_records_cuda_and_uses_gpu_batch_rows(runs):
    res = runs["cuda_in_use"]
    assert res["status"] == "succeeded" and res["rows_out"] == 6000 and res["warnings"] == []
    _assert_own_gpu_per_executor(res["workers"])
    assert CUDA in res["providers"]
    for info in res["workers"].values():
        assert info["providers"][0] == CUDA
        # runtime.gpu_batch_rows=1000: Spark's 300-row batches are merged, one per 1000-row file.
        assert info["batch_rows"] == [1000]
    assert sum(info["batches"] for info in res["workers"].values()) == 6
    cpu_batches = sum(info["batches"] for info in runs["fake_auto"]["workers"].values())
    assert cpu_batches > 6


def test_auto_without_cuda_build_runs_on_cpu_with_a_warning(runs):
    res = runs["no_cuda_auto"]
    assert res["status"] == "succeeded" and res["rows_out"] == 6000 and res["providers"] == [CPU]
    assert "has no CUDAExecutionProvider" in res["warnings"][0]
    for info in res["workers"].values():
        assert info["requested_providers"] == [CPU] and info["device_ids"] == []
        assert info["batch_rows"] == [300]


def test_gpu_without_cuda_build_is_a_device_error(runs):
    res = runs["no_cuda_gpu"]
    assert res["error"] == "DeviceError" and res["exit_code"] == 7
    assert "has no CUDAExecutionProvider" in res["message"] and "batchinfer[gpu]" in res["message"]
