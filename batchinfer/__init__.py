"""batchinfer: offline batch scoring of ONNX models on Apache Spark.

The public API is small and lazy: importing ``batchinfer`` starts no Spark and imports no
onnxruntime.

>>> import batchinfer
>>> result = batchinfer.run_job("conf/demo.yaml", dry_run=True)  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Job", "JobResult", "load_config", "run_job", "__version__"]


def __getattr__(name: str):
    if name in ("Job", "JobResult", "run_job"):
        from batchinfer import job

        return getattr(job, name)
    if name == "load_config":
        from batchinfer.config import load_config

        return load_config
    raise AttributeError(f"module 'batchinfer' has no attribute {name!r}")
