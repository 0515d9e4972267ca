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
