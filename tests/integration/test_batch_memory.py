"""batch_rows: auto in a real job: a model with big activations completes within worker_memory.

The model holds a [N, 65536] float32 intermediate (256 KiB per row): a fixed batch of 10,000
rows would need 2.5 GiB in one onnxruntime call, more than the 1 GiB the job gives each worker.
With ``batch_rows: auto`` the worker measures the cost of a row on its first calls and sizes its
calls to fit; the manifest records the size it chose, what it measured and the worker's peak RSS.
"""

from __future__ import annotations

import numpy as np
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from batchinfer.job import Job
from batchinfer.scoring.batch_size import HEADROOM, KiB, MiB
from tests.support import models
from tests.support.data import job_config

pytestmark = pytest.mark.spark
ROWS = 10_000
WORKER_MEMORY_MB = 1024
FEATURES = [f"f{i}" for i in range(64)]


def test_auto_batches_fit_a_memory_hungry_model_in_worker_memory(spark, tmp_path):
    rng = np.random.default_rng(5)
    data = tmp_path / "ev" / "ds=2026-11-28"
    data.mkdir(parents=True)
    x = rng.normal(size=(ROWS, len(FEATURES))).astype(np.float32)
    table = {"id": np.arange(ROWS, dtype=np.int64), **{f: x[:, i] for i, f in enumerate(FEATURES)}}
    import pyarrow as pa

    pq.write_table(pa.table(table), data / "part-0.parquet", row_group_size=ROWS)  # one task
    model = models.wide_activation_model(tmp_path / "wide.onnx", n_features=len(FEATURES))
    cfg = job_config(
        tmp_path / "ev",
        model,
        tmp_path / "out",
        features=FEATURES,
        outputs={"score": {"column": "score"}},
        runtime={"batch_rows": "auto", "worker_memory": f"{WORKER_MEMORY_MB}m"},
    )
    result = Job.from_config(cfg).run(spark=spark)

    m = result.manifest
    assert m["status"] == "succeeded" and result.rows_out == ROWS
    assert m["batching"]["mode"] == "auto"
    assert m["batching"]["worker_memory_bytes"] == WORKER_MEMORY_MB * MiB
    assert m["batching"]["worker_memory_source"] == "runtime.worker_memory"
    (worker,) = [w for w in m["workers"].values() if w.get("rows")]
    memory = worker["batch_memory"]
    (chosen,) = worker["batch_rows"]
    per_row = memory["bytes_per_row"]
    # The model really costs ~256 KiB per row (the measured line may over-estimate, never far under),
    assert 200 * KiB <= per_row <= 1024 * KiB
    # so a fixed 10,000-row call would not fit the worker's memory...
    assert 10_000 * per_row > WORKER_MEMORY_MB * MiB
    # ...while the chosen calls do, on top of what the worker held before scoring.
    assert 1 <= chosen < 10_000 and memory["retries"] == 0
    assert (
        memory["baseline_rss_bytes"] + memory["fixed_bytes"] + chosen * per_row
        <= HEADROOM * WORKER_MEMORY_MB * MiB
    )
    # The worker's peak RSS (since it started sizing batches) stayed within worker_memory. The
    # budget covers the whole worker process, baseline included: no allowance on top.
    assert memory["peak_reset"] and worker["peak_rss_mb"] <= WORKER_MEMORY_MB
    # Every row scored once, correctly (score = 0.5 × the sum of the features).
    out = ds.dataset(tmp_path / "out", partitioning="hive", ignore_prefixes=["_", "."]).to_table()
    got = dict(zip(out.column("id").to_pylist(), out.column("score").to_pylist(), strict=True))
    assert len(got) == ROWS
    expected = 0.5 * x.sum(axis=1)
    np.testing.assert_allclose([got[i] for i in range(ROWS)], expected, rtol=1e-3, atol=1e-3)
