"""Small partitioned Parquet datasets for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_partitioned(
    root,
    *,
    days=("2026-11-27", "2026-11-28"),
    files_per_day=2,
    rows_per_file=500,
    n_features=4,
    seed=0,
    extra=None,
) -> Path:
    """root/ds=<day>/part-<i>.parquet with id (unique int64), f0..f{n-1} float32, cat string."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    next_id = 0
    for day in days:
        for i in range(files_per_day):
            n = rows_per_file
            cols = {"id": np.arange(next_id, next_id + n, dtype=np.int64)}
            next_id += n
            for j in range(n_features):
                cols[f"f{j}"] = rng.normal(size=n).astype(np.float32)
            cols["cat"] = rng.choice(["a", "b", "c"], size=n)
            if extra:
                cols.update(extra(n, rng))
            d = root / f"ds={day}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(cols), d / f"part-{i}.parquet")
    return root


def snapshot(root) -> dict[str, bytes]:
    """Relative path → bytes of every visible file under root (for byte-identical checks)."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and not rel.startswith("_batchinfer"):
            out[rel] = p.read_bytes()
    return out


def job_config(data, model, out, *, features, passthrough=("id", "ds"), outputs=None, **sections) -> dict:
    cfg = {
        "job": "test-job",
        "input": {"path": str(data), "passthrough": list(passthrough)},
        "model": {
            "path": str(model),
            "inputs": {"input": {"columns": list(features)}},
            "outputs": outputs
            or {"probabilities": {"column": "score", "select": 1}, "label": {"column": "label"}},
        },
        "output": {"path": str(out), "partition_by": ["ds"]},
        "runtime": {"batch_rows": 300},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def small_workspace(root) -> tuple[Path, Path, Path]:
    """(root, data, model): two days x two 300-row files and a 4-feature linear model under root."""
    from tests.support import models

    root = Path(root)
    data = write_partitioned(root / "events", files_per_day=2, rows_per_file=300)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return root, data, model


def job_yaml(tmp_path, job: str, *, files_per_day=2, rows_per_file=300, extra: str = ""):
    """A small dataset, a linear model and a job YAML on them: (config path, data dir, model path)."""
    from tests.support import models

    tmp_path = Path(tmp_path)
    data = write_partitioned(tmp_path / "events", files_per_day=files_per_day, rows_per_file=rows_per_file)
    model, _ = models.linear_classifier(tmp_path / "model.onnx", 4)
    config = tmp_path / "job.yaml"
    config.write_text(
        f"""
job: {job}
input: {{path: {data}, passthrough: [id, ds]}}
model:
  path: {model}
  inputs: {{input: {{columns: [f0, f1, f2, f3]}}}}
  outputs: {{probabilities: {{column: score, select: 1}}}}
output: {{path: {tmp_path / "out"}, partition_by: [ds]}}
{extra}"""
    )
    return config, data, model
