"""A worker's reported peak RSS belongs to the run, not to the process (Python workers are reused
across jobs of one SparkSession: a notebook, a long-lived driver)."""

from __future__ import annotations

import numpy as np
import pytest

from batchinfer.job import Job
from batchinfer.scoring.batch_size import MemoryMeter
from tests.support import models
from tests.support.data import job_config, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]
EARLIER_MB = 600  # what "an earlier run" held in this process, then freed


def _score_once(plan) -> dict:
    """One task of ``plan`` in this process, as a worker runs it; its stats bucket."""
    import pyarrow as pa

    from batchinfer.scoring.rowgroups import read_row_groups, row_group_tasks
    from batchinfer.scoring.tensors import output_arrow_schema
    from batchinfer.scoring.udf import make_scorer
    from batchinfer.task import ModelBytes, TaskStats, running

    spec, schema = plan.spec, plan.selection.schema
    out_schema = output_arrow_schema(spec, pa.schema([schema.field(c) for c in spec.read_columns]))
    scorer = make_scorer(spec, ModelBytes(plan.model.content), out_schema, TaskStats())
    batches = read_row_groups(
        row_group_tasks(plan),
        list(spec.read_columns),
        list(plan.selection.partition_keys),
        spec.batch_rows,
        None,
    )
    with running(None) as bucket:
        rows = sum(b.num_rows for b in scorer(batches))
    assert rows == plan.selection.rows
    (stats,) = bucket.values()
    return stats


def test_a_reused_worker_reports_this_runs_peak_not_an_earlier_one(tmp_path):
    meter = MemoryMeter()
    if not meter.resettable:
        pytest.skip("needs Linux /proc/self/clear_refs")
    data = write_partitioned(tmp_path / "events", rows_per_file=200)
    model = models.linear_classifier(tmp_path / "m.onnx", 4)[0]
    plan = Job.from_config(job_config(data, model, tmp_path / "out", features=FEATURES)).plan()
    _score_once(plan)  # imports and the session: the worker's steady state
    earlier = np.ones(EARLIER_MB * 2**20 // 8)  # an earlier run's peak, touched page by page
    del earlier
    lifetime_mb = meter.peak() / 2**20  # the process's high-water mark now includes it
    current_mb = meter.rss() / 2**20
    assert lifetime_mb - current_mb > EARLIER_MB * 0.9
    reported = _score_once(plan)["peak_rss_mb"]
    assert current_mb * 0.9 <= reported < current_mb + EARLIER_MB / 2, (reported, current_mb, lifetime_mb)
