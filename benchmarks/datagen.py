"""Benchmark inputs: a seeded Parquet dataset and an MLP exported to ONNX (fp32, int8).

Layout under ``workdir`` (reused when its ``meta.json`` matches the request)::

    data/part-00000.parquet ...   id int64 + f0..f63 float32, one file per partition
    sample/part-00000.parquet ... every k-th row of data/ (for the per-row UDF scenario)
    models/mlp_fp32.onnx, models/mlp_int8.onnx, models/mlp_int8s.onnx (built on demand)

Run alone: ``python benchmarks/datagen.py --rows 200000 --partitions 4``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

N_FEATURES = 64
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
ONNX_INPUT = "input"
ROW_GROUP_ROWS = 100_000
TRAIN_ROWS = 20_000
CALIBRATION_ROWS = 20_000

# Model variants the harness knows. "int8" is dynamic quantization (what most users reach for,
# and ~2x fp32 here), whose scores depend on batch composition; "int8s" is static QDQ int8,
# bit-stable across batchings but less accurate with naive calibration (see README).
MODEL_KINDS = ("fp32", "int8", "int8s")


@dataclass(frozen=True)
class BenchInputs:
    """Paths of one generated benchmark input set."""

    workdir: Path
    rows: int
    partitions: int
    seed: int
    sample_rows: int

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def sample_dir(self) -> Path:
        return self.workdir / "sample"

    @property
    def sample_step(self) -> int:
        """sample/ holds the rows whose id is a multiple of this."""
        return max(1, self.rows // max(1, self.sample_rows))

    def model_path(self, kind: str) -> Path:
        return self.workdir / "models" / f"mlp_{kind}.onnx"


def _partition_bounds(rows: int, partitions: int) -> list[tuple[int, int]]:
    edges = np.linspace(0, rows, partitions + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _features(seed: int, partition: int, n: int) -> np.ndarray:
    """Feature matrix [64, n] (feature-major so each column is contiguous)."""
    rng = np.random.default_rng([seed, partition])
    return rng.standard_normal((N_FEATURES, n), dtype=np.float32)


def _target(x_rows: np.ndarray, seed: int) -> np.ndarray:
    """A nonlinear binary target so the MLP has something to learn."""
    rng = np.random.default_rng([seed, 999])
    w = rng.standard_normal(N_FEATURES).astype(np.float32)
    z = np.sin(x_rows[:, 0] * 2) + x_rows[:, 1] * x_rows[:, 2] + 0.3 * (x_rows @ w) / 8
    return (z + 0.2 * rng.standard_normal(len(z)) > 0).astype(np.int64)


def _table(ids: np.ndarray, x: np.ndarray) -> pa.Table:
    cols = {"id": pa.array(ids, pa.int64())}
    cols.update({name: pa.array(x[i]) for i, name in enumerate(FEATURES)})
    return pa.table(cols)


def write_dataset(inputs: BenchInputs) -> None:
    """Write data/ (all rows) and sample/ (every k-th id, ~sample_rows rows), one file per partition."""
    inputs.data_dir.mkdir(parents=True, exist_ok=True)
    inputs.sample_dir.mkdir(parents=True, exist_ok=True)
    step = inputs.sample_step
    for p, (lo, hi) in enumerate(_partition_bounds(inputs.rows, inputs.partitions)):
        ids = np.arange(lo, hi, dtype=np.int64)
        x = _features(inputs.seed, p, hi - lo)
        name = f"part-{p:05d}.parquet"
        # Random floats do not dictionary-encode; pyarrow would still write a ~1 MB dictionary
        # page per column chunk before falling back, making files 1.5x larger than the data.
        pq.write_table(
            _table(ids, x), inputs.data_dir / name, row_group_size=ROW_GROUP_ROWS, use_dictionary=False
        )
        keep = ids % step == 0
        sample = _table(ids[keep], np.ascontiguousarray(x[:, keep]))
        pq.write_table(sample, inputs.sample_dir / name, use_dictionary=False)


def _training_rows(inputs: BenchInputs, n: int) -> np.ndarray:
    """The first n rows of the dataset as a [n, 64] float32 matrix."""
    table = pq.read_table(inputs.data_dir / "part-00000.parquet", columns=FEATURES).slice(0, n)
    return np.column_stack([table.column(f).to_numpy() for f in FEATURES]).astype(np.float32)


def build_fp32(inputs: BenchInputs) -> Path:
    """Train an MLP 64→256→256→2 briefly and export it with skl2onnx (opset 17, no zipmap)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x = _training_rows(inputs, TRAIN_ROWS)
    y = _target(x, inputs.seed)
    clf = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=8, random_state=inputs.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    onx = convert_sklearn(
        clf,
        initial_types=[(ONNX_INPUT, FloatTensorType([None, N_FEATURES]))],
        options={id(clf): {"zipmap": False}},
        target_opset=17,
    )
    path = inputs.model_path("fp32")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def build_int8_dynamic(inputs: BenchInputs) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = inputs.model_path("int8")
    with _quiet_root_logger():  # "consider pre-processing" warning: not relevant to this MLP
        quantize_dynamic(str(inputs.model_path("fp32")), str(path), weight_type=QuantType.QInt8)
    return path


def build_int8_static(inputs: BenchInputs) -> Path:
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    calib = _training_rows(inputs, CALIBRATION_ROWS)

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(np.array_split(calib, max(1, len(calib) // 1000)))

        def get_next(self):
            batch = next(self._batches, None)
            return None if batch is None else {ONNX_INPUT: batch}

    path = inputs.model_path("int8s")
    with _quiet_root_logger():
        quantize_static(
            str(inputs.model_path("fp32")),
            str(path),
            _Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    return path


_BUILDERS = {"fp32": build_fp32, "int8": build_int8_dynamic, "int8s": build_int8_static}


def prepare(
    workdir: Path,
    rows: int,
    partitions: int,
    seed: int = 7,
    sample_rows: int = 40_000,
    models: tuple[str, ...] = ("fp32", "int8"),
    log=print,
) -> BenchInputs:
    """Generate (or reuse) the dataset and the requested models; returns their paths."""
    inputs = BenchInputs(workdir, rows, partitions, seed, min(sample_rows, rows))
    meta_path = workdir / "meta.json"
    meta = {
        "format": 2,
        "rows": rows,
        "partitions": partitions,
        "seed": seed,
        "sample_rows": inputs.sample_rows,
    }
    if not (meta_path.exists() and json.loads(meta_path.read_text()) == meta):
        t0 = time.perf_counter()
        log(f"generating {rows} rows x {N_FEATURES} features in {partitions} files under {workdir} ...")
        for sub in ("data", "sample", "models"):
            for f in (workdir / sub).glob("*") if (workdir / sub).exists() else []:
                f.unlink()
        write_dataset(inputs)
        meta_path.write_text(json.dumps(meta))
        log(f"  data written in {time.perf_counter() - t0:.1f} s")
    for kind in ("fp32", *models):
        if not inputs.model_path(kind).exists():
            t0 = time.perf_counter()
            _BUILDERS[kind](inputs)
            log(f"  model {kind} built in {time.perf_counter() - t0:.1f} s")
    return inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--models", default="fp32,int8")
    args = ap.parse_args()
    workdir = (
        args.workdir or Path(__file__).parent / ".data" / f"r{args.rows}_p{args.partitions}_s{args.seed}"
    )
    prepare(workdir, args.rows, args.partitions, args.seed, models=tuple(args.models.split(",")))


if __name__ == "__main__":
    main()
