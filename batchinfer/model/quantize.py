"""int8 / fp16 conversion of an fp32 ONNX model.

Three methods:

``dynamic-int8``
    Weights int8, activation scales computed per batch at run time. No data needed; fast on
    CPU, but a row's score depends on the other rows of its batch (``model verify`` measures
    it and records it in the card; see docs/quantization.md).
``static-int8``
    Weights and activations int8 (QDQ), activation ranges calibrated once on real rows fed
    through the job's input mapping. Deterministic across batchings. Naive MinMax calibration
    loses accuracy, so the defaults are percentile calibration, per-channel weights and the
    last layer kept in float.
``fp16``
    Float16 weights and compute for GPU executors; inputs and outputs stay float32
    (``keep_io_types``) so the job's columns still fit.

Target CPUs (``target_cpu``): x86 CPUs without VNNI (AVX2-only) multiply uint8 activations by
int8 weights in saturating int16 pairs, so a model quantized for a VNNI CPU can lose accuracy
there. ``avx2`` keeps weights to 7 bits (``reduce_range``), which cannot saturate; ``arm64``
uses int8 activations (S8S8 dot products); ``avx512-vnni`` uses full-range weights; ``auto``
picks the recipe for the CPU running the command. See docs/quantization.md for the figures.

Quantizing never proves the model is still good: run ``batchinfer model verify`` (the gate).

>>> quantize_model("m.onnx", "m.int8.onnx", QuantizeOptions(method="dynamic-int8"))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batchinfer.errors import ConfigError, ModelError

log = logging.getLogger("batchinfer")

METHODS = ("dynamic-int8", "static-int8", "fp16")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
TARGET_CPUS = ("auto", "avx2", "avx512-vnni", "arm64")
# Ops whose weights make up a "layer"; the last ones may be kept in float.
LAYER_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose")
# Quantized with the layers: onnxruntime then drops a ReLU after a quantized layer and gives the
# layer's output the ReLU's range [0, max] (without it, uint8 levels go to values ReLU drops).
LAYER_ACTIVATIONS = ("Relu", "Clip")


@dataclass(frozen=True)
class QuantizeOptions:
    """How to quantize. Defaults per method are chosen in :meth:`resolved` (measured, see README)."""

    method: str
    calibration: str = "percentile"
    percentile: float = 99.999
    per_channel: bool | None = None  # None: the method's default
    keep_float_last: int | None = None  # the last N layers (MatMul/Gemm/Conv) stay float
    keep_float_first: int = 0  # the first N layers stay float (raw features: the coarsest int8 step)
    exclude_nodes: tuple[str, ...] = ()
    activation_type: str = "uint8"  # static int8 activations: uint8 (x86 U8S8 kernels) or int8
    preprocess: bool = True
    calibration_rows: int = 5000
    calibration_batch_rows: int = 1000
    seed: int = 0
    target_cpu: str = "auto"  # auto: the CPU running the quantization (see resolve_target_cpu)
    reduce_range: bool | None = None  # None: the target's default (7-bit weights for avx2)
    # Op types that get Q/DQ (static int8). "layers": only weight layers (MatMul/Gemm/Conv), so
    # activations and outputs (Sigmoid, Softmax, Concat, the probabilities) stay float;
    # "all": every op onnxruntime can quantize (it then rounds the probabilities to 1/255).
    quantize_ops: str = "layers"

    def __post_init__(self) -> None:
        problems = []
        if self.method not in METHODS:
            problems.append(("--method", f"must be one of {list(METHODS)}, got {self.method!r}"))
        if self.calibration not in CALIBRATION_METHODS:
            problems.append(
                ("--calibration", f"must be one of {list(CALIBRATION_METHODS)}, got {self.calibration!r}")
            )
        if not (0 < self.percentile <= 100):
            problems.append(("--percentile", f"must be in (0, 100], got {self.percentile}"))
        if self.keep_float_last is not None and self.keep_float_last < 0:
            problems.append(("--keep-float-last", f"must be >= 0, got {self.keep_float_last}"))
        if self.keep_float_first < 0:
            problems.append(("--keep-float-first", f"must be >= 0, got {self.keep_float_first}"))
        if self.activation_type not in ("uint8", "int8"):
            problems.append(("--activation-type", f"must be uint8 or int8, got {self.activation_type!r}"))
        if self.quantize_ops not in ("layers", "all"):
            problems.append(("--quantize-ops", f"must be layers or all, got {self.quantize_ops!r}"))
        if self.target_cpu not in TARGET_CPUS:
            problems.append(("--target-cpu", f"must be one of {list(TARGET_CPUS)}, got {self.target_cpu!r}"))
        if self.calibration_rows < 1 or self.calibration_batch_rows < 1:
            problems.append(("--calibration-rows", "calibration rows and batch rows must be >= 1"))
        if problems:
            raise ConfigError("invalid quantization options", problems=problems)

    def resolved(self) -> QuantizeOptions:
        """Fill the per-method and per-target defaults (``auto`` becomes this CPU's target)."""
        from dataclasses import replace

        if self.method == "static-int8":
            per_channel = True if self.per_channel is None else self.per_channel
            keep = 1 if self.keep_float_last is None else self.keep_float_last
        else:
            per_channel = False if self.per_channel is None else self.per_channel
            keep = 0 if self.keep_float_last is None else self.keep_float_last
        target = resolve_target_cpu(self.target_cpu)
        reduce = (target == "avx2") if self.reduce_range is None else self.reduce_range
        activation = self.activation_type
        if target == "arm64" and self.activation_type == "uint8" and self.method == "static-int8":
            activation = "int8"  # S8S8: ARM's signed dot product; x86 keeps U8S8
        return replace(
            self,
            per_channel=per_channel,
            keep_float_last=keep,
            target_cpu=target,
            reduce_range=reduce,
            activation_type=activation,
        )

    def parameters(self) -> dict:
        """What the card records: only the options the method uses."""
        o = self.resolved()
        if o.method == "fp16":
            return {"keep_io_types": True, "exclude_nodes": list(o.exclude_nodes)}
        params = {
            "weight_type": "int8",
            "target_cpu": o.target_cpu,
            "reduce_range": o.reduce_range,
            "per_channel": o.per_channel,
            "keep_float_last": o.keep_float_last,
            "keep_float_first": o.keep_float_first,
            "exclude_nodes": list(o.exclude_nodes),
            "preprocess": o.preprocess,
        }
        if o.method == "static-int8":
            params.update(
                {
                    "format": "QDQ",
                    "quantize_ops": o.quantize_ops,
                    "activation_type": o.activation_type,
                    "calibration": o.calibration,
                    "calibration_rows": o.calibration_rows,
                    "seed": o.seed,
                }
            )
            if o.calibration == "percentile":
                params["percentile"] = o.percentile
        return params


def resolve_target_cpu(target: str, int8_path: str | None = None) -> str:
    """The recipe for ``target``; ``auto`` maps this CPU's int8 kernel family to one.

    Only CPUs whose int8 products are summed exactly (VNNI, AMX, ARM dot product) get
    full-range weights; everything else on x86 gets the saturation-safe ``avx2`` recipe.

    >>> resolve_target_cpu("auto", "avx2"), resolve_target_cpu("auto", "amx")
    ('avx2', 'avx512-vnni')
    """
    if target != "auto":
        return target
    if int8_path is None:
        from batchinfer.scoring.hardware import cpu_record

        int8_path = cpu_record()["int8_path"]
    if int8_path.startswith("arm64"):
        return "arm64"
    if int8_path in ("amx", "avx512-vnni", "avx-vnni"):
        return "avx512-vnni"
    return "avx2"


@dataclass
class QuantizeResult:
    path: Path
    method: str
    parameters: dict
    excluded_nodes: list[str]
    notes: list[str] = field(default_factory=list)
    calibration_batches: int = 0
    calibration_rows: int = 0


def _feeds_reader(feeds: Iterable[dict]):
    """An onnxruntime CalibrationDataReader over an iterable of feed dicts (streamed once)."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it: Iterator[dict] = iter(feeds)
            self.batches = 0
            self.rows = 0

        def get_next(self):
            item = next(self._it, None)
            if item is not None:
                self.batches += 1
                self.rows += len(next(iter(item.values())))
            return item

    return _Reader()


def uniform_batches(feeds: Iterable[dict], batch_rows: int) -> Iterator[dict]:
    """Re-cut a stream of feed dicts into batches of exactly ``batch_rows`` rows.

    onnxruntime's histogram calibrators (percentile, entropy) stack every batch's activations
    into one array and fail on batches of different sizes; the sampler yields per-file batches
    of any size. The last partial batch is dropped unless it is the only one.
    """
    import numpy as np

    pending: dict[str, list] = {}
    held = 0
    emitted = 0
    for item in feeds:
        for k, v in item.items():
            pending.setdefault(k, []).append(v)
        held += len(next(iter(item.values())))
        while held >= batch_rows:
            joined = {k: np.concatenate(v, axis=0) for k, v in pending.items()}
            yield {k: v[:batch_rows] for k, v in joined.items()}
            emitted += 1
            pending = {k: [v[batch_rows:]] for k, v in joined.items()}
            held -= batch_rows
    if held and not emitted:
        yield {k: np.concatenate(v, axis=0) for k, v in pending.items()}


def flatten_gemm_bias(model) -> int:
    """Reshape Gemm bias initializers [1, N] → [N] (same broadcast); returns how many changed.

    skl2onnx writes [1, N] intercepts; onnxruntime 1.32's per-channel QDQ quantizer indexes
    the bias per channel and fails on a 2-D one ("truth value of an array ... is ambiguous").
    """
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    uses: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 3:
            continue
        t = inits.get(node.input[2])
        if t is None or uses.get(t.name, 0) != 1 or len(t.dims) != 2 or t.dims[0] != 1:
            continue
        arr = numpy_helper.to_array(t).reshape(-1)
        t.CopyFrom(numpy_helper.from_array(arr, t.name))
        changed += 1
    return changed


def name_nodes(model) -> None:
    """Give every unnamed node a unique name: exclusion lists address nodes by name."""
    seen = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in seen:
                name += "_"
            node.name = name
            seen.add(name)


def fused_names(model, names) -> list[str]:
    """Map node names of the original model onto the pre-processed one.

    onnxruntime's pre-processing fuses MatMul+Add into a Gemm named ``"<MatMul name>/MatMulAddFusion"``:
    a name the user read from ``model inspect --nodes`` still addresses that layer.
    """
    present = {n.name for n in model.graph.node}
    out = []
    for name in names:
        if name in present:
            out.append(name)
            continue
        fused = [n for n in present if n.startswith(f"{name}/")]
        out.extend(sorted(fused) or [name])
    return out


def first_layer_nodes(model, count: int) -> list[str]:
    """Names of the first ``count`` weight layers (MatMul/Gemm/Conv), in graph order."""
    if count <= 0:
        return []
    return [n.name for n in model.graph.node if n.op_type in LAYER_OPS][:count]


def last_layer_nodes(model, count: int) -> list[str]:
    """Names of the last ``count`` weight layers (MatMul/Gemm/Conv), in graph (topological) order."""
    if count <= 0:
        return []
    layers = [n.name for n in model.graph.node if n.op_type in LAYER_OPS]
    return layers[-count:]


def _preprocess(src: Path, dst: Path, notes: list[str]) -> Path:
    """onnxruntime's recommended pre-processing (symbolic shape inference + optimization).

    Falls back to skipping symbolic shape inference (it rejects some ai.onnx.ml graphs), then
    to the raw model, noting what happened.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    attempts = [{}, {"skip_symbolic_shape": True}]
    last_error = None
    for kwargs in attempts:
        try:
            quant_pre_process(str(src), str(dst), **kwargs)
            if kwargs:
                notes.append("pre-processing ran without symbolic shape inference (it failed on this graph)")
            return dst
        except Exception as exc:  # the pre-processor raises plain exceptions of many kinds
            last_error = exc
    notes.append(f"pre-processing skipped: {type(last_error).__name__}: {str(last_error)[:200]}")
    return src


def quantize_model(
    model_path: str | Path,
    out_path: str | Path,
    options: QuantizeOptions,
    *,
    calibration_feeds: Iterable[dict] | None = None,
) -> QuantizeResult:
    """Write a quantized copy of ``model_path`` to ``out_path``.

    ``calibration_feeds`` (static int8 only) yields feed dicts built with the job's mapping,
    e.g. ``DataMapping.iter_feeds(...)``. The output is loaded with onnxruntime before return.
    """
    import onnx

    from batchinfer.model.artifact import read_signature

    opts = options.resolved()
    src, out = Path(model_path), Path(out_path)
    if not src.is_file():
        raise ModelError(f"model file {src} not found", hint="check the MODEL argument; is this a typo?")
    if src.resolve() == out.resolve():
        raise ConfigError(
            f"--out {out} is the input model itself", hint="write the quantized model to a new file"
        )
    if opts.method == "static-int8" and calibration_feeds is None:
        raise ConfigError(
            "static-int8 needs calibration data",
            hint="give --config JOB.yaml (the job's input mapping) or --data PARQUET --columns f0,f1,...",
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    try:
        onnx.load_model(str(src), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"model file {src} is not a valid ONNX model: {exc}") from exc

    with tempfile.TemporaryDirectory(prefix="batchinfer-quantize-") as tmp:
        if opts.method == "fp16":
            result = _to_fp16(src, out, opts, notes)
        else:
            work = src
            if opts.preprocess:
                work = _preprocess(src, Path(tmp) / "pre.onnx", notes)
            model = onnx.load_model(str(work))
            name_nodes(model)
            flatten_gemm_bias(model)
            requested = fused_names(model, opts.exclude_nodes)
            edges = first_layer_nodes(model, opts.keep_float_first) + last_layer_nodes(
                model, opts.keep_float_last
            )
            excluded = list(dict.fromkeys(requested + edges))
            unknown = sorted(set(requested) - {n.name for n in model.graph.node})
            if unknown:
                raise ConfigError(
                    f"--exclude-nodes names nodes the model does not have: {unknown}",
                    hint="list node names with `batchinfer model inspect MODEL --nodes`",
                )
            named = Path(tmp) / "named.onnx"
            onnx.save_model(model, str(named))
            result = _to_int8(named, out, opts, excluded, calibration_feeds, notes)
            result.parameters["target_cpu_requested"] = options.target_cpu
    read_signature(out.read_bytes(), path=str(out))  # the result must load, now, not in the job
    return result


def _to_int8(src: Path, out: Path, opts: QuantizeOptions, excluded, feeds, notes) -> QuantizeResult:
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_dynamic, quantize_static

    params = opts.parameters()
    params["excluded_nodes"] = excluded
    if opts.method == "dynamic-int8":
        try:
            quantize_dynamic(
                str(src),
                str(out),
                per_channel=opts.per_channel,
                reduce_range=opts.reduce_range,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=excluded or None,
            )
        except Exception as exc:
            raise ModelError(f"dynamic int8 quantization (for {out}) failed: {exc}") from exc
        return QuantizeResult(out, opts.method, params, excluded, notes)

    reader = _feeds_reader(uniform_batches(feeds, opts.calibration_batch_rows))
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[opts.calibration]
    extra = {"CalibPercentile": opts.percentile} if opts.calibration == "percentile" else {}

    try:
        # onnxruntime's calibrators print progress to stdout; keep stdout clean for --json.
        with contextlib.redirect_stdout(sys.stderr):
            _quantize_static(quantize_static, src, out, reader, opts, method, excluded, extra)
    except Exception as exc:
        if reader.batches == 0:
            raise ConfigError(
                "static-int8 calibration got no rows",
                hint="check the calibration data path, partition filter and columns",
            ) from exc
        raise ModelError(f"static int8 quantization (for {out}) failed: {exc}") from exc
    if reader.batches == 0:
        raise ConfigError(
            "static-int8 calibration got no rows", hint="check the calibration data and mapping"
        )
    params["calibration_rows"] = reader.rows
    return QuantizeResult(out, opts.method, params, excluded, notes, reader.batches, reader.rows)


def _quantize_static(quantize_static, src, out, reader, opts, method, excluded, extra) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType

    quantize_static(
        str(src),
        str(out),
        reader,
        quant_format=QuantFormat.QDQ,
        per_channel=opts.per_channel,
        reduce_range=opts.reduce_range,
        activation_type=QuantType.QUInt8 if opts.activation_type == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=excluded or None,
        op_types_to_quantize=list(LAYER_OPS + LAYER_ACTIVATIONS) if opts.quantize_ops == "layers" else None,
        calibrate_method=method,
        extra_options=extra,
    )


def _to_fp16(src: Path, out: Path, opts: QuantizeOptions, notes) -> QuantizeResult:
    """fp16 with float32 inputs/outputs kept; ai.onnx.ml ops stay float32 (they have no fp16)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_model(str(src))
    name_nodes(model)
    try:
        converted = convert_float_to_float16(
            model, keep_io_types=True, node_block_list=list(opts.exclude_nodes) or None
        )
    except Exception as exc:
        raise ModelError(f"fp16 conversion of {src} failed: {exc}") from exc
    onnx.save_model(converted, str(out))
    notes.append("fp16 targets GPU executors; on CPU onnxruntime runs it slower than fp32 (casts)")
    return QuantizeResult(out, opts.method, opts.parameters(), list(opts.exclude_nodes), notes)
