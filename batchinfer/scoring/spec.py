"""What a scoring task needs to score a batch: the plan's bindings, small and picklable.

:mod:`batchinfer.plan` builds these from the config, the data schema and the model signature;
the tasks unpickle them on every worker, so this module imports nothing heavy (no config, no
pydantic): a Python worker starts with only what scoring needs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputBinding:
    """Columns → one ONNX input tensor."""

    name: str
    columns: tuple[str, ...]
    array_column: bool  # one list column → [N, D]
    dtype: str  # numpy dtype of the tensor
    width: int | None  # F or D when known statically
    rank: int


@dataclass(frozen=True)
class OutputBinding:
    """One output column, derived from one ONNX output (several columns may share an output)."""

    name: str
    column: str
    # "scalar" | "array" | "select" | "argmax" | "max" | "top_k" (labels) | "top_k_scores"
    mode: str
    select: int | None
    classes: tuple[str, ...] | None
    dtype: str  # numpy dtype of the output tensor
    arrow_type: str  # "float32", "int64", "string", "list<float32>", ...
    k: int | None = None  # top_k only


@dataclass(frozen=True)
class ScoringSpec:
    """Everything an executor needs to score a batch; small and picklable."""

    model_sha256: str
    inputs: tuple[InputBinding, ...]
    outputs: tuple[OutputBinding, ...]
    passthrough: tuple[str, ...]
    batch_rows: int
    threads_per_task: int
    device: str
    invalid_features: str
    fill_value: float
    # GPU executors (docs/gpu.md); defaults keep a CPU spec unchanged.
    gpu_batch_rows: int | None = None
    # runtime.batch_rows: auto (scoring/batch_size.py): batch_rows is then the most rows per call,
    # and each worker sizes its calls to worker_memory bytes.
    batch_auto: bool = False
    worker_memory: int | None = None
    tensorrt: bool = False
    trt_cache_dir: str | None = None
    # Opt-in custom hooks, "module:function" names imported on the executors (scoring/custom.py).
    preprocess: str | None = None
    postprocess: str | None = None
    # From a model card (batchinfer/model/card.py apply_card): re-scored by every worker's session.
    canary: dict | None = None
    on_canary_mismatch: str = "fail"

    @property
    def output_names(self) -> list[str]:
        """The ONNX outputs to fetch, each once, in the order of the first column using it."""
        return list(dict.fromkeys(b.name for b in self.outputs))

    @property
    def feature_columns(self) -> list[str]:
        cols: list[str] = []
        for b in self.inputs:
            cols.extend(c for c in b.columns if c not in cols)
        return cols

    @property
    def read_columns(self) -> list[str]:
        cols = list(self.passthrough)
        cols.extend(c for c in self.feature_columns if c not in cols)
        return cols
