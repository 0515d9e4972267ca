"""Which onnxruntime execution providers a task uses, from ``runtime.device`` and Spark resources.

Spark does not set ``CUDA_VISIBLE_DEVICES``: a task reads the GPU address Spark assigned to it
(``TaskContext.resources()["gpu"]``) and passes it to onnxruntime as the CUDA ``device_id``.

Three steps, each a small function so that tests can drive them without a GPU:

1. :func:`choose_providers` (pure): ``runtime.device`` + available providers + the task's GPU
   addresses → what to ask onnxruntime for (or a :class:`~batchinfer.errors.DeviceError`).
2. the session is created (:mod:`batchinfer.scoring.session`);
3. :func:`check_providers_in_use` (pure): onnxruntime silently drops a requested provider it
   cannot load (a CPU build asked for CUDA just runs on CPU), so the providers the session
   reports (``get_providers()``) are compared with the request: ``gpu`` → error, ``auto`` → warning.

Example::

    >>> choose_providers("auto", available=["CPUExecutionProvider"], gpu_addresses=["0"]).warning
    'runtime.device=auto fell back to CPU: ...'  # doctest: +SKIP
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

from batchinfer.errors import DeviceError

CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
CPU = "CPUExecutionProvider"

# Rows per onnxruntime call (and per coalesced Arrow batch) when CUDA is the provider in use and
# runtime.gpu_batch_rows is not set: a GPU needs far larger batches than a CPU core to be busy.
DEFAULT_GPU_BATCH_ROWS = 65_536

# Test seam, read in the executor: a Spark local property (set on the driver with
# ``sc.setLocalProperty``, so it applies to one job only) that makes ``available_providers`` list
# CUDA (and TensorRT) as available on a CPU-only onnxruntime. onnxruntime then drops the provider
# silently, which is exactly the case :func:`check_providers_in_use` must catch.
FAKE_CUDA_PROPERTY = "batchinfer.test.fakeCudaProvider"

_INSTALL_HINT = (
    "install exactly one onnxruntime build: pip install 'batchinfer[cpu]' (onnxruntime) "
    "or pip install 'batchinfer[gpu]' (onnxruntime-gpu)"
)


@dataclass(frozen=True)
class DeviceChoice:
    providers: tuple  # what to ask onnxruntime for, in order
    device_id: int | None
    warning: str | None = None
    gpu_addresses: tuple = ()  # what Spark assigned to the task (for the manifest)

    @property
    def requested(self) -> list[str]:
        """Provider names, without their options."""
        return [p if isinstance(p, str) else p[0] for p in self.providers]


def import_onnxruntime():
    """``import onnxruntime`` with a clear error when neither onnxruntime build is installed."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise DeviceError(
            "onnxruntime is not installed in this Python environment", hint=_INSTALL_HINT
        ) from exc
    return onnxruntime


def installed_runtimes() -> list[str]:
    """Installed onnxruntime distributions (``onnxruntime``, ``onnxruntime-gpu``; both is broken)."""
    from importlib import metadata

    found = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
        found.append(dist)
    return found


def _fake_cuda_requested() -> bool:
    try:
        from pyspark import TaskContext
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return False
    ctx = TaskContext.get()
    return ctx is not None and (ctx.getLocalProperty(FAKE_CUDA_PROPERTY) or "") == "true"


def _fake_cuda_on_driver() -> bool:
    """The test seam as the driver sees it: set on this thread of an already running SparkContext."""
    import sys

    if "pyspark" not in sys.modules:  # validate never imports pyspark for this
        return False
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    return sc is not None and (sc.getLocalProperty(FAKE_CUDA_PROPERTY) or "") == "true"


def available_providers() -> list[str]:
    """The providers this process's onnxruntime offers (plus the test seam's fake CUDA)."""
    available = list(import_onnxruntime().get_available_providers())
    if _fake_cuda_requested():
        available += [p for p in (TENSORRT, CUDA) if p not in available]
    return available


def task_gpu_addresses() -> list[str]:
    """GPU addresses Spark assigned to the current task ([] outside a task or without GPU scheduling)."""
    try:
        from pyspark import TaskContext
    except ImportError:  # pragma: no cover - pyspark is a dependency
        return []
    ctx = TaskContext.get()
    if ctx is None:
        return []
    resources = ctx.resources() or {}
    gpu = resources.get("gpu")
    return list(gpu.addresses) if gpu is not None else []


def default_trt_cache_dir() -> str:
    return os.path.join(tempfile.gettempdir(), "batchinfer-trt-cache")


def choose_providers(
    device: str,
    *,
    available: list[str],
    gpu_addresses: list[str],
    tensorrt: bool = False,
    trt_cache_dir: str | None = None,
) -> DeviceChoice:
    """Pure decision: ``cpu``, ``gpu`` (error when impossible) or ``auto`` (CPU with a warning).

    With CUDA available and a GPU address assigned, the task asks for CUDA on that device
    (TensorRT first when ``tensorrt``), with CPU last for the operators CUDA lacks.
    """
    addresses = tuple(gpu_addresses)
    cpu = DeviceChoice((CPU,), None, gpu_addresses=addresses)
    if device == "cpu":
        return cpu
    if device not in ("auto", "gpu"):
        raise ValueError(f"runtime.device must be auto, cpu or gpu, got {device!r}")
    has_cuda = CUDA in available
    if has_cuda and addresses:
        try:
            device_id = int(addresses[0])
        except ValueError as exc:
            raise DeviceError(
                f"Spark assigned GPU address {addresses[0]!r}, which is not a CUDA device index",
                hint="make the GPU discovery script print device indices (nvidia-smi --query-gpu=index)",
            ) from exc
        cuda = (CUDA, {"device_id": str(device_id)})
        providers: tuple = (cuda, CPU)
        warning = None
        if tensorrt and TENSORRT in available:
            trt = (
                TENSORRT,
                {
                    "device_id": str(device_id),
                    "trt_engine_cache_enable": "True",
                    "trt_engine_cache_path": trt_cache_dir or default_trt_cache_dir(),
                },
            )
            providers = (trt, cuda, CPU)
        elif tensorrt:
            warning = (
                f"runtime.tensorrt is on but this onnxruntime has no {TENSORRT} "
                f"(available: {available}); running on CUDA without TensorRT"
            )
        return DeviceChoice(providers, device_id, warning, addresses)
    if not has_cuda:
        reason = (
            f"this onnxruntime has no {CUDA} (available: {available}); "
            "install onnxruntime-gpu instead of onnxruntime (pip install 'batchinfer[gpu]')"
        )
    else:
        reason = (
            "Spark assigned no GPU to this task; enable GPU scheduling "
            "(spark.executor.resource.gpu.amount / spark.task.resource.gpu.amount, see conf/spark-gpu.conf)"
        )
    if device == "gpu":
        raise DeviceError(
            f"runtime.device=gpu but no GPU can be used: {reason}",
            hint="fix the cause above, or set runtime.device: auto to fall back to CPU",
        )
    return DeviceChoice(
        cpu.providers,
        None,
        warning=f"runtime.device=auto fell back to CPU: {reason}",
        gpu_addresses=addresses,
    )


def uses_cuda(providers_in_use: list[str]) -> bool:
    """True when the session really runs on the GPU (CUDA or TensorRT among its providers)."""
    return CUDA in providers_in_use or TENSORRT in providers_in_use


def check_providers_in_use(device: str, choice: DeviceChoice, providers_in_use: list[str]) -> str | None:
    """Compare what the session runs with what was asked (onnxruntime drops providers silently).

    Returns a warning (or None); raises DeviceError when ``device=gpu`` and CUDA is not in use.
    """
    requested = choice.requested
    if CUDA not in requested or uses_cuda(providers_in_use):
        if TENSORRT in requested and TENSORRT not in providers_in_use:
            return f"{TENSORRT} was requested but onnxruntime did not load it; running on {providers_in_use}"
        return None
    reason = (
        f"{CUDA} was requested on device {choice.device_id} but onnxruntime runs on {providers_in_use} "
        "(it drops a provider it cannot load: CUDA/cuDNN libraries missing, driver too old, or a CPU build)"
    )
    if device == "gpu":
        raise DeviceError(
            f"runtime.device=gpu but no GPU is in use: {reason}",
            hint="check that onnxruntime-gpu matches the CUDA/cuDNN on the executors (see docs/gpu.md), or set runtime.device: auto",
        )
    return f"runtime.device=auto fell back to CPU: {reason}"


def effective_batch_rows(providers_in_use: list[str], batch_rows: int, gpu_batch_rows: int | None) -> int:
    """Rows per onnxruntime call: ``gpu_batch_rows`` (default 65,536) on a GPU, else ``batch_rows``."""
    if not uses_cuda(providers_in_use):
        return batch_rows
    return gpu_batch_rows if gpu_batch_rows is not None else max(batch_rows, DEFAULT_GPU_BATCH_ROWS)


def coalesce_batches(batches, min_rows: int):
    """Merge consecutive Arrow record batches until each holds at least ``min_rows`` rows.

    Spark hands Python at most ``maxRecordsPerBatch`` rows (Parquet's 4096 in practice) per
    batch; a GPU wants far more per call. Row order is kept.
    """
    import pyarrow as pa

    pending: list = []
    rows = 0
    for batch in batches:
        if batch.num_rows >= min_rows and not pending:
            yield batch
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows >= min_rows:
            yield pa.Table.from_batches(pending).combine_chunks().to_batches(max_chunksize=rows)[0]
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches(max_chunksize=rows)[0]


def driver_device_problem(device: str) -> str | None:
    """What ``batchinfer validate`` can tell on the driver: None, or why ``device=gpu`` cannot work.

    The driver's environment stands for the executors' (the usual case: one packed environment
    for both). Only ``gpu`` is checked: ``auto`` falls back and ``cpu`` needs nothing.
    """
    if device != "gpu":
        return None
    runtimes = installed_runtimes()
    if not runtimes:
        return f"onnxruntime is not installed; {_INSTALL_HINT}"
    if len(runtimes) > 1:
        return (
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other's files: "
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'batchinfer[gpu]'"
        )
    try:
        available = list(import_onnxruntime().get_available_providers())
    except DeviceError as exc:
        return exc.message
    if CUDA not in available and not _fake_cuda_on_driver():
        return (
            f"runtime.device=gpu but this onnxruntime ({runtimes[0]}) has no {CUDA} "
            f"(available: {available}); pip install 'batchinfer[gpu]' in a clean environment, "
            "or set runtime.device: auto"
        )
    return None
