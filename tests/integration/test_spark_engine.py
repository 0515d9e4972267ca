"""The classic Spark engine schedules one Spark task per row group, on a real local SparkSession."""

from __future__ import annotations

import hashlib
import json

import pytest

pytestmark = pytest.mark.spark


class _ProbeTask:
    """A task that reports which Spark partition ran which task rows, and the broadcast model."""

    def __init__(self, model) -> None:
        self.model = model

    def with_model(self, model):
        return _ProbeTask(model)

    def run(self, rows):
        from pyspark import TaskContext

        rows = list(rows)
        digest = hashlib.sha256(self.model.value).hexdigest()
        part = TaskContext.get().partitionId()
        return [
            {
                "file": f"{part}|{r[0]}|{r[1]}|{r[2]}",
                "rows": len(rows),
                "kind": "probe",
                "partial": digest.encode(),
            }
            for r in rows
        ]


def test_each_spark_task_runs_exactly_its_row_group_in_one_job(spark):
    from batchinfer.engines.spark import SparkEngine
    from batchinfer.task import ModelBytes

    content = b"model bytes, broadcast once"
    task_rows = [
        (f"file:///data/part-{i % 3}.parquet", i // 3, json.dumps({"ds": f"2026-12-0{i % 3}"}))
        for i in range(7)
    ]
    sc = spark.sparkContext
    group = "test-spark-engine-one-task-per-row-group"
    sc.setJobGroup(group, "probe")
    try:
        rows = SparkEngine(spark).run(_ProbeTask(ModelBytes(content)), task_rows)
        jobs = sc.statusTracker().getJobIdsForGroup(group)
    finally:
        sc.setJobGroup("", "")
    seen = sorted(tuple(r["file"].split("|")) for r in rows)
    assert seen == sorted((str(i), u, str(g), p) for i, (u, g, p) in enumerate(task_rows))  # task i: row i
    assert all(r["rows"] == 1 for r in rows)  # one row group per Spark task, alone
    assert {bytes(r["partial"]).decode() for r in rows} == {hashlib.sha256(content).hexdigest()}
    assert len(jobs) == 1  # the task list is no Python pass of its own
    stages = sc.statusTracker().getJobInfo(jobs[0]).stageIds
    assert len(stages) == 1
