"""The direct-read scoring path: executors read Parquet row groups with pyarrow themselves.

In the Spark-reader path every feature column travels JVM → Python through Arrow, which costs
more than the model itself (see benchmarks/README.md). Here Spark only schedules: the driver
already knows every file and row group from the footers it checked while planning, so it hands
out ``(file, row group)`` tasks; each Python worker reads its row groups straight from storage
(only the columns the job needs), scores them with the same per-batch code as the Spark-reader
path (:func:`batchinfer.scoring.udf.make_scorer`), and only the passthrough and output columns
cross back into the JVM for the partitioned write.

Used when nothing needs the input as a Spark DataFrame (no input expectations, quarantine or
input drift); ``runtime.reader: spark`` forces the Spark reader.
"""

from __future__ import annotations

import json
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from batchinfer.plan import JobPlan


def row_group_tasks(plan: JobPlan) -> list[tuple[str, int, str]]:
    """(file URI, row group index, partition values as JSON) for every selected row group."""
    tasks = []
    for f in plan.selection.files:
        part = json.dumps(dict(f.partition))
        groups = f.row_groups or ((f.rows,) if f.rows else ())
        tasks.extend((f.uri, i, part) for i in range(len(groups)))
    return tasks


def _naming_file(batches, uri: str, group: int):
    """Re-raise a decoding error (corrupt data page) as an InputDataError naming the file."""
    from batchinfer.errors import InputDataError

    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, ValueError) as exc:  # pyarrow: OSError / ArrowInvalid (a ValueError)
            raise InputDataError(
                f"corrupt or unreadable Parquet file {uri} (row group {group}: {str(exc).splitlines()[0]})",
                hint="repair or remove the file; input.on_corrupt_file: skip only skips files whose "
                "footer is unreadable",
            ) from None
        yield batch


def read_row_groups(
    task_rows, columns: list[str], partition_keys: list[str], batch_rows: int, sample_fraction: float | None
):
    """Worker side: ``(file, row group, partition JSON)`` task rows in, input Arrow batches out.

    Columns come in ``columns`` order; partition columns are filled from the task's values.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchinfer.io.filesystem import resolve

    open_files: dict[str, object] = {}
    data_cols = [c for c in columns if c not in partition_keys]
    for uri, group, part in task_rows:
        pf = open_files.get(uri)
        if pf is None:
            loc = resolve(uri)
            pf = open_files[uri] = pq.ParquetFile(loc.path, filesystem=loc.fs)
            if len(open_files) > 8:  # keep a few handles, not one per file of the partition
                open_files.pop(next(iter(open_files)))
        values = json.loads(part)
        batches = pf.iter_batches(batch_size=batch_rows, row_groups=[group], columns=data_cols)
        for batch in _naming_file(batches, uri, group):
            if sample_fraction is not None and sample_fraction < 1.0:
                seed = zlib.crc32(f"{uri}:{group}".encode())
                keep = np.random.default_rng(seed).random(batch.num_rows) < sample_fraction
                batch = batch.filter(pa.array(keep))
            n = batch.num_rows
            arrays = []
            for c in columns:
                if c in values:
                    arrays.append(pa.array([values[c]] * n, pa.string()))
                else:
                    arrays.append(batch.column(c))
            yield pa.RecordBatch.from_arrays(arrays, names=columns)


def task_rows_by_index(id_batches, tasks: list):
    """Arrow batches of ``spark.range`` ids -> the task row tuples (file, row group, partition)."""
    for batch in id_batches:
        for i in batch.column(0).to_pylist():
            yield tasks[i]


def _reader(
    columns: list[str], partition_keys: list[str], batch_rows: int, sample_fraction: float | None, tasks: list
):
    """Executor side (Spark's writer path): batches of task ids in, input Arrow batches out."""
    from batchinfer.io import storage

    storage_options = storage.active()  # the driver's spark.hadoop.fs.* settings, for the tasks

    def read(id_batches):
        from batchinfer.io import storage

        storage.configure(storage_options)
        yield from read_row_groups(
            task_rows_by_index(id_batches, tasks), columns, partition_keys, batch_rows, sample_fraction
        )

    return read


def score_row_groups(
    spark,
    plan: JobPlan,
    *,
    run_id: str,
    sample_fraction: float | None = None,
    session_factory=None,
    extra_columns=(),
    wrap=None,
    task_errors=False,
):
    """Lazily score the plan's row groups for Spark's writer; returns a ``ScoredFrame``.

    With the direct writer the engines run :class:`batchinfer.task.ScoringTask` instead.
    """
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    from batchinfer.scoring.tensors import output_arrow_schema
    from batchinfer.scoring.udf import ScoredFrame, _stats_param, make_scorer, with_lineage

    spec = plan.spec
    schema = plan.selection.schema
    in_schema = pa.schema([schema.field(c) for c in spec.read_columns])
    out_schema = output_arrow_schema(spec, in_schema)
    tasks = row_group_tasks(plan)
    sc = spark.sparkContext
    # One Spark task per row group: small tasks balance well across workers (a reused Python
    # worker costs milliseconds per task), and the number of tasks tracks the data size.
    # spark.range with n slices: partition i holds exactly id i, the index of its task (the task
    # list travels with the function: no Python pass over a DataFrame of task rows).
    slices = max(1, len(tasks))
    task_df = spark.range(0, len(tasks), 1, slices)
    model_bc = sc.broadcast(plan.model.content)
    stats = sc.accumulator({}, _stats_param())
    scorer = make_scorer(spec, model_bc, out_schema, stats, session_factory, task_errors=task_errors)
    if wrap is not None:
        scorer = wrap(scorer)
    columns = [*spec.read_columns, *[c for c in extra_columns if c not in spec.read_columns]]
    read = _reader(columns, plan.selection.partition_keys, spec.batch_rows, sample_fraction, list(tasks))

    def score_tasks(task_batches):
        return scorer(read(task_batches))

    scored = task_df.mapInArrow(score_tasks, from_arrow_schema(out_schema))
    return ScoredFrame(with_lineage(scored, plan, run_id), stats, model_bc)


def reader_for(config) -> str:
    """``runtime.reader``: auto picks the direct reader unless quarantine must filter the rows first.

    Input expectations do not need the Spark reader: Spark then reads only the columns they
    look at, and the workers still read the rows they score themselves.
    """
    choice = config.runtime.reader
    if choice == "auto":
        # With the direct writer the scoring task splits off quarantined rows itself
        # (checks/single_pass.py); Spark's writer needs them filtered in Spark first.
        legacy = config.quarantine.enabled and config.output.writer == "spark"
        return "spark" if legacy else "pyarrow"
    return choice
