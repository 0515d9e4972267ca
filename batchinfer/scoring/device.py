"""Which onnxruntime execution providers a task uses, from ``runtime.device`` and Spark resources.

Spark does not set ``CUDA_VISIBLE_DEVICES``: a task reads the GPU address Spark assigned to it
(``TaskContext.resources()["gpu"]``) and passes it to onnxruntime as the CUDA ``device_id``.
"""

from __future__ import annotations

from dataclasses import dataclass

from batchinfer.errors import DeviceError


@dataclass(frozen=True)
class DeviceChoice:
    providers: tuple  # what to ask onnxruntime for, in order
    device_id: int | None
    warning: str | None = None


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


def choose_providers(
    device: str,
    *,
    available: list[str],
    gpu_addresses: list[str],
) -> DeviceChoice:
    """Pure decision: ``cpu``, ``gpu`` (error when impossible) or ``auto`` (CPU with a warning)."""
    cpu = DeviceChoice(("CPUExecutionProvider",), None)
    if device == "cpu":
        return cpu
    has_cuda = "CUDAExecutionProvider" in available
    if has_cuda and gpu_addresses:
        device_id = int(gpu_addresses[0])
        providers = (("CUDAExecutionProvider", {"device_id": str(device_id)}), "CPUExecutionProvider")
        return DeviceChoice(providers, device_id)
    if not has_cuda:
        reason = (
            f"this onnxruntime has no CUDAExecutionProvider (available: {available}); "
            "install onnxruntime-gpu instead of onnxruntime (pip install 'batchinfer[gpu]')"
        )
    else:
        reason = (
            "Spark assigned no GPU to this task; enable GPU scheduling "
            "(spark.executor.resource.gpu.amount / spark.task.resource.gpu.amount, see conf/spark-gpu.conf)"
        )
    if device == "gpu":
        raise DeviceError(
            f"runtime.device=gpu but no GPU can be used: {reason}", hint="or set runtime.device: auto"
        )
    return DeviceChoice(cpu.providers, None, warning=f"runtime.device=auto fell back to CPU: {reason}")
