"""Arrow batch → numpy tensors → Arrow output columns. Vectorized; no per-row Python.

Pure functions over pyarrow and numpy, used inside executors and tested without Spark.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from batchinfer.errors import InputDataError
from batchinfer.scoring.spec import InputBinding, OutputBinding, ScoringSpec


def _numeric_column(arr, binding: InputBinding, col: str, spec: ScoringSpec) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if arr.null_count:
        if spec.invalid_features == "fill":
            arr = pc.fill_null(arr, pa.scalar(spec.fill_value).cast(arr.type, safe=False))
        else:
            raise InputDataError(
                f"column {col!r} has {arr.null_count} null value(s) in a batch; input.invalid_features="
                f"{spec.invalid_features!r}",
                hint="set input.invalid_features to 'fill' or 'quarantine', or clean the data upstream",
            )
    return arr.to_numpy(zero_copy_only=False)


def _check_finite(tensor: np.ndarray, binding: InputBinding, spec: ScoringSpec) -> np.ndarray:
    if tensor.dtype.kind != "f":
        return tensor
    finite = np.isfinite(tensor)
    if finite.all():
        return tensor
    if spec.invalid_features == "fill":
        tensor = np.where(finite, tensor, np.asarray(spec.fill_value, dtype=tensor.dtype))
        return tensor
    bad = ~finite
    col_idx = int(np.argwhere(bad.reshape(len(tensor), -1).any(axis=0))[0][0]) if tensor.ndim > 1 else 0
    name = (
        binding.columns[col_idx]
        if not binding.array_column and col_idx < len(binding.columns)
        else binding.columns[0]
    )
    raise InputDataError(
        f"column {name!r} has {int(bad.sum())} NaN/inf value(s) in a batch; input.invalid_features="
        f"{spec.invalid_features!r}",
        hint="set input.invalid_features to 'fill' or 'quarantine', or clean the data upstream",
    )


def build_tensor(batch, binding: InputBinding, spec: ScoringSpec) -> np.ndarray:
    """Columns of one Arrow batch → one contiguous tensor of the model's dtype."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = batch.num_rows
    if binding.dtype == "str":
        arrays = [batch.column(c).to_numpy(zero_copy_only=False).astype(object) for c in binding.columns]
        tensor = np.stack(arrays, axis=1) if binding.rank == 2 else arrays[0]
        return tensor
    dtype = np.dtype(binding.dtype)
    if binding.array_column:
        col = binding.columns[0]
        arr = batch.column(col)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.null_count:
            raise InputDataError(
                f"array column {col!r} has {arr.null_count} null row(s) in a batch",
                hint="drop or fill those rows upstream",
            )
        if pa.types.is_fixed_size_list(arr.type):
            width = arr.type.list_size
        else:
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            width = int(lengths[0]) if n else (binding.width or 0)
            if n and not (lengths == width).all():
                bad = int(np.argmax(lengths != width))
                raise InputDataError(
                    f"array column {col!r} has rows of different lengths ({width} and {int(lengths[bad])}); "
                    "a [N, D] tensor needs every row to have D values",
                    hint="pad or truncate the arrays upstream",
                )
        if binding.width is not None and n and width != binding.width:
            raise InputDataError(
                f"array column {col!r} has {width} values per row, the model expects {binding.width}"
            )
        values = arr.flatten().to_numpy(zero_copy_only=False)
        tensor = np.ascontiguousarray(values.astype(dtype, copy=False).reshape(n, width))
        return _check_finite(tensor, binding, spec)
    if binding.rank == 1:
        values = _numeric_column(batch.column(binding.columns[0]), binding, binding.columns[0], spec)
        return _check_finite(np.ascontiguousarray(values.astype(dtype, copy=False)), binding, spec)
    tensor = np.empty((n, len(binding.columns)), dtype=dtype)
    for j, col in enumerate(binding.columns):
        tensor[:, j] = _numeric_column(batch.column(col), binding, col, spec)
    return _check_finite(tensor, binding, spec)


def run_sliced(
    run: Callable[[dict], list], feeds: dict[str, np.ndarray], n: int, batch_rows: int
) -> list[np.ndarray]:
    """Call ``run(feeds)`` on slices of at most ``batch_rows`` rows and concatenate the outputs.

    onnxruntime throughput drops sharply above ~20k rows per call on small CPUs (cache
    effects), so big Arrow batches are cut into slices.
    """
    if n <= batch_rows:
        return [np.asarray(o) for o in run(feeds)]
    parts: list[list[np.ndarray]] = []
    for start in range(0, n, batch_rows):
        stop = min(start + batch_rows, n)
        parts.append([np.asarray(o) for o in run({k: v[start:stop] for k, v in feeds.items()})])
    return [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]


def _arrow_array(values: np.ndarray, binding: OutputBinding, n: int):
    import pyarrow as pa

    if values.shape[:1] != (n,):
        raise ValueError(
            f"model output {binding.name!r} returned shape {values.shape} for a batch of {n} rows; "
            "expected a batch-first output"
        )
    if binding.mode == "select":
        return pa.array(np.ascontiguousarray(values[:, binding.select]))
    if binding.mode == "argmax":
        idx = values.argmax(axis=1).astype(np.int64)
        if binding.classes:
            return pa.DictionaryArray.from_arrays(pa.array(idx), pa.array(list(binding.classes))).cast(
                pa.string()
            )
        return pa.array(idx)
    if binding.mode == "max":
        return pa.array(np.ascontiguousarray(values.max(axis=1)))
    if binding.mode in ("top_k", "top_k_scores"):
        return _top_k_array(values, binding, n)
    if binding.mode == "array":
        flat = np.ascontiguousarray(values.reshape(n, -1))
        width = flat.shape[1]
        offsets = pa.array(np.arange(0, (n + 1) * width, width, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array(flat.reshape(-1)))
    if values.ndim > 1:
        values = values.reshape(n)
    if values.dtype == object:
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(np.ascontiguousarray(values))


def top_k_indices(values: np.ndarray, k: int) -> np.ndarray:
    """[N, k] class indexes of the ``k`` largest values per row, best first (ties: lower index first)."""
    order = np.argsort(-values, axis=1, kind="stable")
    return np.ascontiguousarray(order[:, :k])


def _top_k_array(values: np.ndarray, binding: OutputBinding, n: int):
    """``top_k``: the k best labels (class names or indexes); ``top_k_scores``: their values."""
    import pyarrow as pa

    k = int(binding.k or 1)
    idx = top_k_indices(values, k)
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
    if binding.mode == "top_k_scores":
        flat = pa.array(np.take_along_axis(values, idx, axis=1).reshape(-1))
    elif binding.classes:
        flat = pa.DictionaryArray.from_arrays(
            pa.array(idx.reshape(-1).astype(np.int32)), pa.array(list(binding.classes))
        ).cast(pa.string())
    else:
        flat = pa.array(idx.reshape(-1).astype(np.int64))
    return pa.ListArray.from_arrays(offsets, flat)


def build_output_batch(batch, spec: ScoringSpec, outputs: list[np.ndarray], schema):
    """Passthrough columns (unchanged) + the output columns, in ``schema`` order.

    ``outputs`` are the ONNX outputs in ``spec.output_names`` order (each fetched once, however
    many columns derive from it).
    """
    import pyarrow as pa

    n = batch.num_rows
    by_name = dict(zip(spec.output_names, outputs, strict=True))
    columns = [batch.column(c) for c in spec.passthrough]
    for binding in spec.outputs:
        columns.append(_arrow_array(by_name[binding.name], binding, n))
    arrays = []
    for arr, fld in zip(columns, schema, strict=False):
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        arrays.append(arr if arr.type == fld.type else arr.cast(fld.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def score_batch(batch, spec: ScoringSpec, run: Callable[[dict], list], schema):
    """One Arrow batch in, one Arrow batch out: the whole per-batch scoring path."""
    feeds = {b.name: build_tensor(batch, b, spec) for b in spec.inputs}
    outputs = run_sliced(run, feeds, batch.num_rows, spec.batch_rows)
    return build_output_batch(batch, spec, outputs, schema)


def output_arrow_schema(spec: ScoringSpec, input_schema):
    """The Arrow schema of scored batches (before lineage columns are added in Spark)."""
    import pyarrow as pa

    types = {
        # Spark has no float16 or unsigned types: widen them.
        "float32": pa.float32(),
        "float64": pa.float64(),
        "float16": pa.float32(),
        "int64": pa.int64(),
        "int32": pa.int32(),
        "int16": pa.int16(),
        "int8": pa.int8(),
        "uint8": pa.int16(),
        "bool": pa.bool_(),
        "string": pa.string(),
    }
    fields = [input_schema.field(c) for c in spec.passthrough]
    for b in spec.outputs:
        t = b.arrow_type
        if t.startswith("list<"):
            fields.append(pa.field(b.column, pa.list_(types[t[5:-1]])))
        else:
            fields.append(pa.field(b.column, types[t]))
    return pa.schema(fields)
