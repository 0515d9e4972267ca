"""GPU check: is CUDA really in use, and how much faster is the benchmark model on GPU than CPU?

On a machine with an NVIDIA GPU and ``onnxruntime-gpu`` (``pip install 'batchinfer[gpu]'``)::

    python benchmarks/gpu_check.py                 # 1M rows x 64 features, a few minutes
    python benchmarks/gpu_check.py --rows 200000   # quicker

It measures, on the benchmark MLP from ``benchmarks/datagen.py``:

1. raw onnxruntime: rows/s on CPU (all cores) and on CUDA device 0, same rows, after a warm-up;
   it checks ``session.get_providers()`` on the CUDA session (onnxruntime silently falls back
   to CPU when it cannot load CUDA) and that both give the same labels;
2. the whole job (``batchinfer`` on ``local-cluster`` with Spark GPU scheduling from
   ``conf/gpu/getGpusResources.sh``), once with ``runtime.device: cpu`` and once with ``gpu``,
   and checks that the manifest lists ``CUDAExecutionProvider`` for every executor.

Without a usable GPU it prints why and exits 0 (nothing to measure). ``--simulate`` runs the
whole script on CPU (a fake discovery script, ``device: auto``) to check the script itself; its
figures are CPU figures and say so.

Prints one JSON object; ``--out PATH`` also writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def gpu_unavailable_reason() -> str | None:
    """None when onnxruntime can create a session on CUDA device 0; else why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed (pip install 'batchinfer[gpu]')"
    available = ort.get_available_providers()
    if CUDA not in available:
        return f"this onnxruntime has no {CUDA} (available: {available}); install onnxruntime-gpu"
    if shutil.which("nvidia-smi") is None:
        return "nvidia-smi not found: no NVIDIA driver on this machine"
    proc = subprocess.run(
        ["nvidia-smi", "--query-gpu=index,name,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        return f"nvidia-smi lists no GPU ({proc.stderr.strip()[:200]})"
    return None


def _features(data_dir: Path, rows: int):
    import numpy as np
    import pyarrow.dataset as ds
    from datagen import FEATURES

    table = ds.dataset(data_dir, format="parquet").to_table(columns=FEATURES)
    x = np.stack([table.column(c).to_numpy() for c in FEATURES], axis=1).astype(np.float32)
    return x[:rows]


def raw_throughput(model: Path, x, providers: list, batch_rows: int, repeats: int = 2) -> dict:
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(model), sess_options=opts, providers=providers)
    name = session.get_inputs()[0].name
    session.run(None, {name: x[:batch_rows]})  # warm-up: CUDA context, kernels, memory arena
    best = float("inf")
    labels = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        outs = [session.run(None, {name: x[i : i + batch_rows]})[0] for i in range(0, len(x), batch_rows)]
        best = min(best, time.perf_counter() - t0)
        labels = np.concatenate(outs)
    return {
        "providers_in_use": session.get_providers(),
        "batch_rows": batch_rows,
        "seconds": round(best, 3),
        "rows_per_s": round(len(x) / best),
        "labels": labels,
    }


def write_discovery_script(workdir: Path, simulate: bool) -> Path:
    if not simulate:
        return ROOT / "conf" / "gpu" / "getGpusResources.sh"
    script = workdir / "fake-gpus.sh"
    script.write_text('#!/usr/bin/env bash\necho \'{"name":"gpu","addresses":["0"]}\'\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def job_run(inputs, workdir: Path, device: str, discovery: Path, cores: int) -> dict:
    """One whole batchinfer job in a subprocess (a fresh Spark application per device)."""
    from batchinfer_config import write_job_config

    tag = f"job-{device}"
    spark_conf = {
        "spark.executor.cores": str(cores),
        "spark.executor.memory": "4g",
        "spark.worker.resource.gpu.amount": "1",
        "spark.worker.resource.gpu.discoveryScript": str(discovery),
        "spark.executor.resource.gpu.amount": "1",
        # Fractional: all `cores` tasks of the executor share the one GPU (one session each).
        "spark.task.resource.gpu.amount": str(round(1.0 / cores, 4)),
    }
    config = write_job_config(
        workdir / f"{tag}.yaml",
        data_dir=inputs.data_dir,
        model_path=inputs.model_path("fp32"),
        out_dir=workdir / f"out-{tag}",
        job=f"gpu-check-{device}",
        master=f"local-cluster[1,{cores},6144]",
        spark_conf=spark_conf,
        extra={"runtime": {"device": device}},
    )
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable, SPARK_WORKER_DIR=str(workdir / "spark-worker"))
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "batchinfer.cli", "run", str(config), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"device": device, "exit_code": proc.returncode, "error": (proc.stderr or proc.stdout)[-2000:]}
    manifest = json.loads(proc.stdout[proc.stdout.index("{") :])
    workers = manifest.get("workers", {})
    score_s = manifest.get("timings", {}).get("score_and_stage")
    return {
        "device": device,
        "exit_code": 0,
        "wall_s": round(wall, 1),
        "score_and_stage_s": score_s,
        "rows": manifest.get("rows_out"),
        "rows_per_s_score_and_stage": round(manifest["rows_out"] / score_s) if score_s else None,
        "providers": manifest.get("providers"),
        "warnings": manifest.get("warnings"),
        "workers_on_cuda": sum(1 for w in workers.values() if CUDA in w.get("providers", [])),
        "workers": len(workers),  # executor Python workers (one per task slot)
        "device_ids": sorted({d for w in workers.values() for d in w.get("device_ids", [])}),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--cores", type=int, default=4, help="executor cores = tasks sharing the GPU")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--skip-job", action="store_true", help="raw onnxruntime only (no Spark)")
    ap.add_argument(
        "--simulate", action="store_true", help="run on CPU to check this script (no GPU figures)"
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    reason = gpu_unavailable_reason()
    if reason and not args.simulate:
        print(f"gpu_check: no usable GPU, nothing measured: {reason}", file=sys.stderr)
        print(json.dumps({"gpu": False, "reason": reason}))
        return 0

    from datagen import prepare

    workdir = args.workdir or HERE / ".data" / f"gpu_r{args.rows}_p{args.partitions}"
    inputs = prepare(
        workdir, args.rows, args.partitions, models=("fp32",), log=lambda m: print(m, file=sys.stderr)
    )
    model = inputs.model_path("fp32")
    result: dict = {"gpu": not args.simulate, "simulated_on_cpu": args.simulate, "rows": args.rows}
    if not args.simulate:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        result["nvidia_smi"] = smi.stdout.strip().splitlines()

    import numpy as np

    x = _features(inputs.data_dir, args.rows)
    cpu = raw_throughput(model, x, [CPU], 10_000)
    gpu_providers = [(CUDA, {"device_id": "0"}), CPU] if not args.simulate else [CPU]
    gpu = raw_throughput(model, x, gpu_providers, 65_536)
    agree = float(np.mean(cpu.pop("labels") == gpu.pop("labels")))
    result["raw_onnxruntime"] = {
        "cpu": cpu,
        "gpu": gpu,
        "cuda_in_use": gpu["providers_in_use"][0] == CUDA,
        "label_agreement": round(agree, 6),
        "speedup": round(gpu["rows_per_s"] / cpu["rows_per_s"], 2),
    }

    if not args.skip_job:
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
            tmp_dir = Path(tmp)
            discovery = write_discovery_script(tmp_dir, args.simulate)
            # --simulate: "auto" stands in for "gpu" (which would fail without CUDA, by design).
            gpu_device = "auto" if args.simulate else "gpu"
            runs = {
                "cpu": job_run(inputs, tmp_dir, "cpu", discovery, args.cores),
                "gpu": job_run(inputs, tmp_dir, gpu_device, discovery, args.cores),
            }
        result["job"] = runs
        ok = runs["gpu"].get("exit_code") == 0
        result["job"]["cuda_in_all_workers"] = ok and runs["gpu"]["workers_on_cuda"] == runs["gpu"]["workers"]
        if ok and runs["cpu"].get("score_and_stage_s") and runs["gpu"].get("score_and_stage_s"):
            result["job"]["speedup_score_and_stage"] = round(
                runs["cpu"]["score_and_stage_s"] / runs["gpu"]["score_and_stage_s"], 2
            )

    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    if args.simulate:
        return 0
    cuda_ok = result["raw_onnxruntime"]["cuda_in_use"] and result.get("job", {}).get(
        "cuda_in_all_workers", True
    )
    if not cuda_ok:
        print("gpu_check: CUDA was requested but not used (see providers above)", file=sys.stderr)
    return 0 if cuda_ok else 7


if __name__ == "__main__":
    sys.exit(main())
