"""Run in a subprocess by tests/integration/test_gpu_cluster.py: GPU scheduling simulated on CPU.

local-cluster with one worker holding two fake GPUs ("0", "1", from a discovery script that
needs no nvidia-smi) and two one-core executor JVMs, each given one of them. (Two workers would
each discover the same two addresses, so both executors would get "0".) Spark itself is real; only onnxruntime's provider list is faked
(through the ``batchinfer.test.fakeCudaProvider`` local property, see
``batchinfer.scoring.device``), and for one run the session factory claims CUDA is in use.

Usage: python -m tests.support.gpu_job DATA MODEL WORKDIR
Prints one JSON line: a result per scenario.
"""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import sys
import time
from pathlib import Path

DISCOVERY = """#!/usr/bin/env bash
echo '{"name":"gpu","addresses":["0","1"]}'
"""


def fake_cuda_session(digest, load_bytes, **kwargs):
    """Session factory for the 'CUDA really in use' path: a real CPU session reported as CUDA."""
    from batchinfer.scoring.session import get_session

    handle = get_session(digest, load_bytes, **kwargs)
    return dataclasses.replace(handle, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def _summary(result) -> dict:
    m = result.manifest
    workers = m["workers"]
    return {
        "status": result.status,
        "rows_out": result.rows_out,
        "providers": m.get("providers"),
        "warnings": m.get("warnings"),
        "workers": {
            w: {
                k: info.get(k)
                for k in (
                    "providers",
                    "requested_providers",
                    "gpu_addresses",
                    "device_ids",
                    "batch_rows",
                    "batches",
                    "rows",
                )
            }
            for w, info in workers.items()
        },
    }


def main(data: str, model: str, workdir: str) -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    work = Path(workdir)
    os.environ.setdefault("SPARK_WORKER_DIR", str(work / "spark-worker"))
    script = work / "getGpus.sh"
    script.write_text(DISCOVERY)
    script.chmod(script.stat().st_mode | stat.S_IEXEC)

    from pyspark.sql import SparkSession

    from batchinfer import errors
    from batchinfer.job import Job
    from batchinfer.scoring.device import FAKE_CUDA_PROPERTY
    from tests.support.data import job_config

    spark = (
        SparkSession.builder.master("local-cluster[1,2,2048]")
        .config("spark.executor.cores", "1")
        .config("spark.executor.memory", "768m")
        .config("spark.task.maxFailures", "1")  # a DeviceError is deterministic: fail fast
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "300")
        .config("spark.worker.resource.gpu.amount", "2")
        .config("spark.worker.resource.gpu.discoveryScript", str(script))
        .config("spark.executor.resource.gpu.amount", "1")
        .config("spark.task.resource.gpu.amount", "1")
        .getOrCreate()
    )
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    # Both executors registered before the first job, so both get tasks (and their own GPU).
    deadline = time.time() + 90
    while sc._jsc.sc().getExecutorMemoryStatus().size() < 3 and time.time() < deadline:
        time.sleep(0.5)

    out: dict = {}

    def run(name: str, device: str, *, fake_cuda: bool, session_factory=None) -> None:
        sc.setLocalProperty(FAKE_CUDA_PROPERTY, "true" if fake_cuda else None)
        cfg = job_config(
            data,
            model,
            str(work / f"out-{name}"),
            features=["f0", "f1", "f2", "f3"],
            runtime={"device": device, "gpu_batch_rows": 1000},
        )
        t0 = time.perf_counter()
        try:
            result = Job.from_config(cfg).run(spark=spark, session_factory=session_factory)
            out[name] = _summary(result)
        except errors.BatchInferError as exc:
            out[name] = {
                "error": type(exc).__name__,
                "is_device_error": isinstance(exc, errors.DeviceError),
                "exit_code": exc.exit_code,
                "message": exc.message,
                "hint": exc.hint,
                "manifest_status": getattr(getattr(exc, "result", None), "status", None),
            }
        out[name]["seconds"] = round(time.perf_counter() - t0, 1)

    run("fake_auto", "auto", fake_cuda=True)  # CUDA asked per device, silently dropped → warning
    run("fake_gpu", "gpu", fake_cuda=True)  # ... → DeviceError
    run("cuda_in_use", "gpu", fake_cuda=True, session_factory=fake_cuda_session)
    run("no_cuda_auto", "auto", fake_cuda=False)  # CPU onnxruntime: CPU + warning
    run("no_cuda_gpu", "gpu", fake_cuda=False)  # CPU onnxruntime: DeviceError
    print(json.dumps(out))
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
