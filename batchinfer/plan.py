"""Resolve a job config against the data schema and the model signature, before any heavy work.

``build_plan`` collects every mismatch (missing column, wrong type, feature count, unknown ONNX
input/output, unsupported output kind...) and raises one typed error listing them all, each
naming the field/column with expected vs got.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchinfer.config import JobConfig
from batchinfer.errors import InputDataError, ModelError, OutputError
from batchinfer.io.source import InputSelection
from batchinfer.model.artifact import ModelArtifact, TensorSpec

# What the tasks unpickle lives in a light module (no config, no pydantic on the workers).
from batchinfer.scoring.spec import InputBinding, OutputBinding, ScoringSpec


@dataclass
class JobPlan:
    config: JobConfig
    model: ModelArtifact
    selection: InputSelection
    spec: ScoringSpec
    notes: list[str] = field(default_factory=list)
    card: dict | None = None  # the model card, when the config points at one
    batching: object = None  # scoring.batch_size.BatchPolicy: runtime.batch_rows / worker_memory
    # Stores only Spark's Hadoop FileSystem reaches: which roles, and the reader/writer chosen.
    storage: dict = field(default_factory=dict)

    @property
    def batch_policy(self):
        """What the workers do about batch sizes (a model card may have pinned a fixed size)."""
        from batchinfer.scoring.batch_size import BatchPolicy

        if self.spec.batch_auto and self.batching is not None:
            return self.batching
        return BatchPolicy(auto=False, max_rows=self.spec.batch_rows)

    @property
    def output_columns(self) -> list[str]:
        cols = list(self.spec.passthrough) + [o.column for o in self.spec.outputs]
        lin = self.config.output.lineage
        cols += [c for c in (lin.model_digest, lin.run_id) if c]
        return cols

    def summary(self) -> dict:
        return {
            "input": self.selection.summary(),
            "model": self.model.summary(),
            "read_columns": self.spec.read_columns,
            "output_columns": self.output_columns,
            "inputs": {
                b.name: {"columns": list(b.columns), "dtype": b.dtype, "width": b.width}
                for b in self.spec.inputs
            },
            "outputs": {  # by output column: several columns may derive from one ONNX output
                o.column: {"output": o.name, "mode": o.mode, "type": o.arrow_type} for o in self.spec.outputs
            },
            "batching": {**self.batch_policy.to_dict(), "description": self.batch_policy.describe()},
            **({"storage": self.storage} if self.storage else {}),
        }


_NUMERIC_KINDS = {"float": "float", "double": "float", "halffloat": "float"}


def _arrow_kind(t) -> str:
    """Coarse kind of an Arrow type: 'float', 'int', 'bool', 'string', 'list', 'decimal', 'other'."""
    import pyarrow as pa

    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    if pa.types.is_decimal(t):
        return "decimal"
    return "other"


def _tensor_kind(dtype: str) -> str:
    if dtype.startswith("float"):
        return "float"
    if dtype.startswith("int") or dtype.startswith("uint"):
        return "int"
    return {"bool": "bool", "str": "string"}.get(dtype, "other")


_ACCEPTS = {
    "float": {"float", "int", "bool", "decimal"},  # widening to float is safe
    "int": {"int", "bool"},  # float → int would truncate silently: refused
    "bool": {"bool"},
    "string": {"string"},
}


def _bind_input(
    name, cfg, spec: TensorSpec, schema, problems: list, model_problems: list, where: str
) -> InputBinding | None:
    if spec.dtype is None:
        model_problems.append(
            (where, f"ONNX input {name!r} has type {spec.onnx_type}; only tensors are supported")
        )
        return None
    if spec.rank is not None and spec.rank >= 1 and spec.dim(0) is not None:
        model_problems.append(
            (
                where,
                f"ONNX input {name!r} has a fixed batch dimension {spec.shape}; batch scoring needs a "
                "dynamic first axis: re-export with a symbolic batch size (e.g. None / 'N')",
            )
        )
        return None
    tkind = _tensor_kind(spec.dtype)
    accepted = _ACCEPTS.get(tkind, set())
    if cfg.column is not None:
        col = cfg.column
        idx = schema.get_field_index(col)
        if idx < 0:
            problems.append((f"{where}.column", f"column {col!r} not found in the input data"))
            return None
        t = schema.field(idx).type
        if _arrow_kind(t) != "list":
            problems.append(
                (
                    f"{where}.column",
                    f"column {col!r} has type {t}, expected an array column for a [N, D] tensor; "
                    "use 'columns: [...]' to stack scalar columns",
                )
            )
            return None
        vkind = _arrow_kind(t.value_type)
        if vkind not in accepted:
            problems.append(
                (
                    f"{where}.column",
                    f"column {col!r} holds {t.value_type}, but input {name!r} is {spec.onnx_type}",
                )
            )
            return None
        width = t.list_size if hasattr(t, "list_size") else None
        expected = spec.dim(1)
        if width is not None and expected is not None and width != expected:
            problems.append(
                (
                    f"{where}.column",
                    f"array column {col!r} has {width} values per row, model input "
                    f"{name!r} expects {expected}",
                )
            )
        if spec.rank is not None and spec.rank != 2:
            problems.append(
                (where, f"ONNX input {name!r} has rank {spec.rank}; an array column feeds a rank-2 input")
            )
            return None
        return InputBinding(name, (col,), True, spec.dtype, expected or width, 2)

    cols = list(cfg.columns)
    dupes = sorted({c for c in cols if cols.count(c) > 1})
    if dupes:
        problems.append((f"{where}.columns", f"columns {dupes} are listed twice"))
    ok = True
    for i, col in enumerate(cols):
        idx = schema.get_field_index(col)
        if idx < 0:
            problems.append((f"{where}.columns[{i}]", f"column {col!r} not found in the input data"))
            ok = False
            continue
        t = schema.field(idx).type
        kind = _arrow_kind(t)
        if kind not in accepted:
            fix = (
                "cast it upstream"
                if kind != "string"
                else "encode it as a number upstream, or use a string input"
            )
            problems.append(
                (
                    f"{where}.columns[{i}]",
                    f"column {col!r} has type {t}, but ONNX input {name!r} is {spec.onnx_type}; {fix}",
                )
            )
            ok = False
    rank = spec.rank if spec.rank is not None else 2
    if rank not in (1, 2):
        problems.append(
            (where, f"ONNX input {name!r} has rank {rank}; scalar columns feed rank-1 or rank-2 inputs")
        )
        return None
    if rank == 1 and len(cols) != 1:
        problems.append(
            (
                f"{where}.columns",
                f"ONNX input {name!r} is rank 1 ([N]); give exactly one column, got {len(cols)}",
            )
        )
        return None
    expected = spec.dim(1) if rank == 2 else None
    if expected is not None and expected != len(cols):
        problems.append(
            (
                f"{where}.columns",
                f"ONNX input {name!r} expects {expected} features per row ({spec.shape}), "
                f"config gives {len(cols)} columns",
            )
        )
        ok = False
    if not ok:
        return None
    return InputBinding(name, tuple(cols), False, spec.dtype, len(cols), rank)


def _bind_output(name, cfg, spec: TensorSpec, problems: list, where: str) -> list[OutputBinding]:
    """The output columns one config mapping derives from ONNX output ``name`` (empty on a problem)."""
    if spec.dtype is None or spec.onnx_type.startswith("seq") or spec.onnx_type.startswith("map"):
        problems.append(
            (
                where,
                f"ONNX output {name!r} is {spec.onnx_type} (e.g. a ZipMap of class → probability), which "
                "batch scoring cannot serve; re-export without ZipMap (skl2onnx: options={id(model): "
                "{'zipmap': False}}) or map another output",
            )
        )
        return []
    rank = spec.rank if spec.rank is not None else 2
    arrow_scalar = {"str": "string"}.get(spec.dtype, spec.dtype)
    if rank >= 1 and spec.dim(0) is not None and spec.dim(0) != 1:
        problems.append(
            (where, f"ONNX output {name!r} has a fixed first dimension {spec.shape}; expected batch-first")
        )
        return []
    if rank > 2:
        problems.append(
            (where, f"ONNX output {name!r} has rank {rank}; only [N] and [N, C] outputs are supported")
        )
        return []
    derived = [
        k
        for k, on in (
            ("select", cfg.select is not None),
            ("argmax", cfg.argmax),
            ("max", cfg.max),
            ("top_k", cfg.top_k is not None),
        )
        if on
    ]
    if derived:
        if rank != 2:
            problems.append(
                (where, f"'{derived[0]}' needs a [N, C] output, but {name!r} has shape {spec.shape}")
            )
            return []
        if spec.dtype == "str":
            problems.append(
                (where, f"'{derived[0]}' needs a numeric output, but {name!r} is {spec.onnx_type}")
            )
            return []
    width = spec.dim(1) if rank == 2 else None
    if cfg.select is not None:
        if width is not None and cfg.select >= width:
            problems.append(
                (
                    f"{where}.select",
                    f"select={cfg.select} is out of range for output {name!r} with "
                    f"{width} columns (valid: 0..{width - 1})",
                )
            )
            return []
        return [OutputBinding(name, cfg.column, "select", cfg.select, None, spec.dtype, arrow_scalar)]
    if cfg.argmax or cfg.top_k is not None:
        if cfg.classes is not None and width is not None and len(cfg.classes) != width:
            problems.append(
                (
                    f"{where}.classes",
                    f"{len(cfg.classes)} class names given, output {name!r} has {width} columns",
                )
            )
            return []
        classes = tuple(cfg.classes) if cfg.classes else None
        label_type = "string" if classes else "int64"
        if cfg.argmax:
            return [OutputBinding(name, cfg.column, "argmax", None, classes, spec.dtype, label_type)]
        if width is not None and cfg.top_k > width:
            problems.append(
                (
                    f"{where}.top_k",
                    f"top_k={cfg.top_k} is more than the {width} classes of output {name!r} "
                    f"(valid: 1..{width})",
                )
            )
            return []
        labels, scores = cfg.columns
        return [
            OutputBinding(name, labels, "top_k", None, classes, spec.dtype, f"list<{label_type}>", cfg.top_k),
            OutputBinding(
                name, scores, "top_k_scores", None, None, spec.dtype, f"list<{arrow_scalar}>", cfg.top_k
            ),
        ]
    if cfg.max:
        return [OutputBinding(name, cfg.column, "max", None, None, spec.dtype, arrow_scalar)]
    if rank == 2:
        if spec.dim(1) == 1:
            return [OutputBinding(name, cfg.column, "select", 0, None, spec.dtype, arrow_scalar)]
        return [OutputBinding(name, cfg.column, "array", None, None, spec.dtype, f"list<{arrow_scalar}>")]
    return [OutputBinding(name, cfg.column, "scalar", None, None, spec.dtype, arrow_scalar)]


def build_plan(config: JobConfig, model: ModelArtifact, selection: InputSelection) -> JobPlan:
    """Check the config against data schema and model signature; raise one typed error listing all."""
    sig = model.signature
    schema = selection.schema
    data_problems: list[tuple[str, str]] = []
    model_problems: list[tuple[str, str]] = []
    has_data = bool(selection.files)

    for i, col in enumerate(config.input.passthrough):
        if has_data and schema.get_field_index(col) < 0:
            data_problems.append((f"input.passthrough[{i}]", f"column {col!r} not found in the input data"))

    graph_inputs = {t.name for t in sig.inputs}
    for name in config.model.inputs:
        if name not in graph_inputs:
            model_problems.append(
                (
                    f"model.inputs.{name}",
                    f"the model has no input {name!r} (model inputs: {sorted(graph_inputs)})",
                )
            )
    for name in sorted(graph_inputs - set(config.model.inputs)):
        model_problems.append(
            (
                "model.inputs",
                f"model input {name!r} is not mapped to any column (every model input needs columns)",
            )
        )
    graph_outputs = {t.name for t in sig.outputs}
    for name in config.model.outputs:
        if name not in graph_outputs:
            model_problems.append(
                (
                    f"model.outputs.{name}",
                    f"the model has no output {name!r} (model outputs: {sorted(graph_outputs)})",
                )
            )

    inputs: list[InputBinding] = []
    for name, cfg in config.model.inputs.items():
        spec = sig.input(name)
        if spec is None:
            continue
        if not has_data:
            continue
        binding = _bind_input(name, cfg, spec, schema, data_problems, model_problems, f"model.inputs.{name}")
        if binding is not None:
            inputs.append(binding)
    outputs: list[OutputBinding] = []
    for name, mappings in config.model.outputs.items():
        spec = sig.output(name)
        if spec is None:
            continue
        for i, cfg in enumerate(mappings):
            where = f"model.outputs.{name}" + (f"[{i}]" if len(mappings) > 1 else "")
            outputs.extend(_bind_output(name, cfg, spec, model_problems, where))

    if model_problems:
        raise ModelError(
            f"model {model.path} does not match the job config: "
            + "; ".join(f"{p}: {m}" for p, m in model_problems + data_problems),
            hint="compare with `batchinfer model inspect MODEL`",
        )
    if data_problems:
        # Column-type problems are config/data mismatches: report them as input errors with paths.
        raise InputDataError(
            f"input data {selection.root.uri} does not match the job config: "
            + "; ".join(f"{p}: {m}" for p, m in data_problems),
            hint="fix the column names/types in the config, or the data upstream",
        )

    from batchinfer.scoring.batch_size import batch_policy
    from batchinfer.spark import launched_by_spark_submit, session_conf

    # The Spark settings the config gives (batchinfer's local defaults included); the job re-reads
    # them from the running session (scoring/batch_size.py policy_for_session).
    master = config.spark.master or (None if launched_by_spark_submit() else "local[*]")
    engine = "local" if config.runtime.engine == "local" else "spark"
    policy = batch_policy(config.runtime, session_conf(config), master, engine=engine)
    spec = ScoringSpec(
        model_sha256=model.sha256,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        passthrough=tuple(config.input.passthrough),
        batch_rows=policy.max_rows,
        batch_auto=policy.auto,
        worker_memory=policy.worker_memory,
        threads_per_task=config.runtime.threads_per_task,
        device=config.runtime.device,
        gpu_batch_rows=config.runtime.gpu_batch_rows,
        tensorrt=config.runtime.tensorrt,
        trt_cache_dir=config.runtime.trt_cache_dir,
        invalid_features=config.input.invalid_features,
        fill_value=config.input.fill_value,
        preprocess=config.model.preprocess,
        postprocess=config.model.postprocess,
    )
    _check_custom_hooks(config)
    return JobPlan(config=config, model=model, selection=selection, spec=spec, batching=policy)


def _check_custom_hooks(config: JobConfig) -> None:
    """Import the opt-in pre/post-processing hooks now, so a bad name fails before Spark starts."""
    from batchinfer.scoring.custom import resolve_hook

    for field_name in ("preprocess", "postprocess"):
        name = getattr(config.model, field_name)
        if name is not None:
            resolve_hook(name, f"model.{field_name}")


def check_output_location(config: JobConfig) -> None:
    """The output (and the quarantine) may not equal, contain or sit inside the input.

    Compared as the filesystem resolves them (symlinks, ``..``, bind mounts) or, on object
    stores, as normalised bucket/key prefixes: a second path to the input would let the commit
    replace the input's partitions with scored files.
    """
    from batchinfer.io.filesystem import overlap

    how = {
        "same": "both name the same directory",
        "inside": "it sits inside it",
        "contains": "it contains it",
    }
    targets = [("output.path", config.output.path)]
    if config.quarantine.enabled and config.quarantine.path:
        targets.append(("quarantine.path", config.quarantine.path))
    for field_name, path in targets:
        found = overlap(config.input.path, path)
        if found is not None:
            raise OutputError(
                f"{field_name} {path} overlaps input.path {config.input.path}: {how[found]} "
                "(resolved through symlinks, '..' and mounts)",
                hint=f"write to a directory outside the input: {field_name} must not equal, contain, "
                "or sit inside input.path",
            )
