"""The one per-row-group task: read → row rules → score → partial metrics → staged files.

Every engine (classic Spark, Spark Connect, the embedded process pool) runs this same function
over a slice of the plan's task list and hands its result rows back to the driver; nothing here
knows which engine runs it. A task returns **data**, never side channels:

- ``output`` / ``quarantine`` rows: a staged file (under the attempt's own directory) and its rows;
- one ``metrics`` row: the gates' partial metrics (expectations, drift counts), when checks run;
- one ``stats`` row: what this worker did (sessions created, providers used, rows, seconds,
  canary result, deterministic task errors), JSON-encoded.

Only the results of successful attempts reach the driver, so a retried or killed attempt counts
nothing twice (its files stay in its attempt directory and are deleted with the staging).

>>> task = ScoringTask.from_plan(plan, sink=sink, model=ModelBytes(plan.model.content))  # doctest: +SKIP
>>> rows = task.run([(uri, 0, '{"ds": "2026-11-28"}')], Attempt("local", 0, 0))  # doctest: +SKIP
"""

from __future__ import annotations

import contextvars
import json
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# (file URI, row group index, partition values as JSON)
TaskRow = tuple[str, int, str]

_ATTEMPT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("batchinfer_attempt", default=None)
_STATS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("batchinfer_task_stats", default=None)


@dataclass(frozen=True)
class Attempt:
    """Which try of which task this is: names the attempt directory, drives the test faults."""

    stage: int | str
    partition: int
    attempt: int

    @property
    def tag(self) -> str:
        return f"{self.stage}-{self.partition}-{self.attempt}"


def current_attempt() -> Attempt | None:
    """The running task's attempt: set by the embedded engine, else Spark's TaskContext."""
    attempt = _ATTEMPT.get()
    if attempt is not None:
        return attempt
    if "pyspark" not in sys.modules:  # not inside a Spark worker: do not import Spark for nothing
        return None
    from pyspark import TaskContext

    ctx = TaskContext.get()
    if ctx is None:
        return None
    return Attempt(ctx.stageId(), ctx.partitionId(), ctx.attemptNumber())


@contextmanager
def running(attempt: Attempt | None):
    """Run the body as ``attempt`` (engines without a TaskContext) and collect its worker stats."""
    bucket: dict = {}
    tokens = (_ATTEMPT.set(attempt) if attempt is not None else None, _STATS.set(bucket))
    try:
        yield bucket
    finally:
        _STATS.reset(tokens[1])
        if tokens[0] is not None:
            _ATTEMPT.reset(tokens[0])


class TaskStats:
    """Where the scorer reports per-worker stats: the running task's bucket (no accumulators)."""

    def add(self, value: dict) -> None:
        from batchinfer.scoring.udf import _merge_stats

        bucket = _STATS.get()
        if bucket is None:  # outside ``running``: nowhere to report to
            return
        merged = _merge_stats(bucket, value)
        bucket.clear()
        bucket.update(merged)


@dataclass(frozen=True)
class ModelBytes:
    """The model as plain bytes (embedded engine, tests): the same ``.value`` a broadcast has."""

    value: bytes


@dataclass(frozen=True)
class ScoringTask:
    """Everything a worker needs to run tasks; small and picklable apart from the model source."""

    spec: object  # batchinfer.plan.ScoringSpec
    out_schema: object  # pyarrow.Schema of the scored batches
    columns: tuple[str, ...]  # read columns (scoring inputs, passthrough, what the checks need)
    partition_keys: tuple[str, ...]
    sink: object  # batchinfer.io.direct_writer.DirectParquetSink
    model: object  # anything with ``.value`` -> model bytes (a broadcast, ModelBytes, an artifact)
    sample_fraction: float | None = None
    session_factory: object = None
    storage_options: object = None  # batchinfer.io.storage options of the driver
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_plan(cls, plan, *, sink, model, extra_columns=(), sample_fraction=None, session_factory=None):
        import pyarrow as pa

        from batchinfer.io import storage
        from batchinfer.scoring.tensors import output_arrow_schema

        spec = plan.spec
        schema = plan.selection.schema
        in_schema = pa.schema([schema.field(c) for c in spec.read_columns])
        columns = (*spec.read_columns, *[c for c in extra_columns if c not in spec.read_columns])
        return cls(
            spec=spec,
            out_schema=output_arrow_schema(spec, in_schema),
            columns=tuple(columns),
            partition_keys=tuple(plan.selection.partition_keys),
            sink=sink,
            model=model,
            sample_fraction=sample_fraction,
            session_factory=session_factory,
            storage_options=storage.active(),
        )

    def with_model(self, model) -> ScoringTask:
        from dataclasses import replace

        return replace(self, model=model)

    def run(self, task_rows: Iterable[TaskRow], attempt: Attempt | None = None) -> list[dict]:
        """Run the task over ``task_rows``; return its result rows (file, rows, kind, partial)."""
        from batchinfer.io import storage
        from batchinfer.scoring.rowgroups import read_row_groups
        from batchinfer.scoring.udf import make_scorer

        storage.configure(self.storage_options)
        attempt = attempt or current_attempt() or Attempt("local", 0, 0)
        with running(attempt) as bucket:
            scorer = make_scorer(
                self.spec, self.model, self.out_schema, TaskStats(), self.session_factory, task_errors=True
            )
            batches = read_row_groups(
                task_rows,
                list(self.columns),
                list(self.partition_keys),
                self.spec.batch_rows,
                self.sample_fraction,
            )
            rows = self.sink.write_task(scorer, self.out_schema, batches, attempt)
        rows.append({"file": "", "rows": 0, "kind": "stats", "partial": encode_stats(bucket)})
        return rows


def by_index(task, task_rows: list):
    """The ``mapInArrow`` function over ``spark.range(0, n, 1, n)``: partition i holds id i, the
    index of its (file, row group) in ``task_rows``; ``task.run`` over them, one batch of result
    rows out.

    The task list travels with the function, so Spark runs no Python before the scoring tasks
    (a DataFrame made from a Python RDD of task rows converts them in Python workers of their
    own: a second set of worker processes, started and importing, for a few rows)."""
    task_rows = [tuple(r) for r in task_rows]

    def run_batches(batches: Iterator) -> Iterator:
        import pyarrow as pa

        from batchinfer.io.direct_writer import RESULT_ARROW_SCHEMA
        from batchinfer.scoring.rowgroups import task_rows_by_index

        rows = task.run(task_rows_by_index(batches, task_rows))
        yield pa.RecordBatch.from_pylist(rows, schema=RESULT_ARROW_SCHEMA())

    return run_batches


def encode_stats(bucket: dict) -> bytes:
    return json.dumps(bucket, default=str).encode()


@dataclass
class TaskResults:
    """The driver's view of every successful task's result rows."""

    rows: list[dict]

    @classmethod
    def from_rows(cls, rows) -> TaskResults:
        return cls([r if isinstance(r, dict) else r.asDict() for r in rows])

    def of_kind(self, kind: str) -> list[dict]:
        return [r for r in self.rows if (r.get("kind") or "output") == kind]

    def workers(self) -> dict:
        """Per-worker stats merged over the tasks (task errors included, see ``raise_task_errors``)."""
        from batchinfer.scoring.udf import _merge_stats

        merged: dict = {}
        for row in self.of_kind("stats"):
            if row.get("partial"):
                merged = _merge_stats(merged, json.loads(bytes(row["partial"]).decode()))
        return merged

    def task_errors(self) -> list[dict]:
        records = [r for info in self.workers().values() for r in info.get("task_errors", [])]
        records.sort(key=lambda r: (r.get("partition", 0), r.get("attempt", 0)))
        return records

    def raise_task_errors(self, log=None) -> None:
        """Raise the first deterministic error a task reported (bad features, canary over budget, ...)."""
        from batchinfer.errors import error_from_dict

        records = self.task_errors()
        if records:
            if log is not None:
                log(records)
            raise error_from_dict(records[0])

    def manifest_workers(self) -> dict:
        """Worker stats as the manifest keeps them (task errors are reported as the run's error)."""
        workers = self.workers()
        for info in workers.values():
            info.pop("task_errors", None)
        return workers
