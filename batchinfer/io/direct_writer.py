"""The direct writer: Python workers write the scored rows to staging Parquet themselves.

With Spark's writer every scored row crosses back into the JVM (Arrow → rows → Parquet
encoder), and a fresh JVM pays seconds of warm-up for that path. Here the worker that scored a
batch also writes it, with pyarrow, and only one small row per written file (its path and row
count) goes back to the driver.

Exactly once, with retries: a task attempt writes under
``<staging>/_attempts/<stage>-<partition>-<attempt>-<uuid>/``; the driver collects the file
list, which Spark returns only for successful attempts, and moves exactly those files into the
Hive-partitioned staging layout (``<staging>/ds=.../part-*.parquet``), the same layout Spark's
writer produces. Files of failed or killed attempts are never moved and are deleted with
``_attempts``. The commit protocol (:mod:`batchinfer.io.sink`) then proceeds unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

RESULT_SCHEMA = "file string, rows long"
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def partition_dir(keys: list[str], values: tuple) -> str:
    """``ds=2026-11-28/country=DE`` with Hive's escaping and null marker."""
    parts = []
    for key, value in zip(keys, values, strict=True):
        text = _NULL_PARTITION if value is None else quote(str(value), safe=" -_.~+:@,;()!$'*")
        parts.append(f"{key}={text}")
    return "/".join(parts)


@dataclass(frozen=True)
class DirectParquetSink:
    """Executor side: write scored batches; driver side: publish the successful attempts' files."""

    staging_uri: str
    partition_by: tuple[str, ...]
    compression: str | None
    lineage: tuple[tuple[str, str], ...]  # (column, constant value)

    def wrap(self, scorer, out_schema):
        """The mapInArrow function: scored batches are written, file rows are yielded."""
        from batchinfer.io import storage

        sink = self
        storage_options = storage.active()  # the driver's spark.hadoop.fs.* settings, for the tasks

        def write_partition(batches):
            import uuid

            import pyarrow as pa
            import pyarrow.compute as pc
            import pyarrow.parquet as pq
            from pyspark import TaskContext

            from batchinfer.io import storage
            from batchinfer.io.filesystem import resolve

            storage.configure(storage_options)
            ctx = TaskContext.get()
            tag = (
                f"{ctx.stageId()}-{ctx.partitionId()}-{ctx.attemptNumber()}" if ctx is not None else "local"
            ) + f"-{uuid.uuid4().hex[:8]}"
            base = resolve(sink.staging_uri).join("_attempts", tag)
            part_no = ctx.partitionId() if ctx is not None else 0
            keys = list(sink.partition_by)
            data_fields = [f for f in out_schema if f.name not in keys]
            data_fields += [pa.field(name, pa.string()) for name, _ in sink.lineage]
            file_schema = pa.schema(data_fields)
            writers: dict[tuple, list] = {}  # partition values → [writer, relative path, rows]

            def writer_for(values: tuple):
                entry = writers.get(values)
                if entry is None:
                    sub = partition_dir(keys, values) if keys else ""
                    name = f"part-{part_no:05d}-{uuid.uuid4().hex}.parquet"
                    rel = f"{sub}/{name}" if sub else name
                    loc = base.join(rel)
                    loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
                    stream = loc.fs.open_output_stream(loc.path)
                    writer = pq.ParquetWriter(stream, file_schema, compression=sink.compression or "none")
                    entry = writers[values] = [writer, rel, 0, stream]
                return entry

            def write(batch, values: tuple):
                n = batch.num_rows
                if n == 0:
                    return
                cols = [batch.column(f.name) for f in data_fields[: len(data_fields) - len(sink.lineage)]]
                cols += [pa.array([value] * n, pa.string()) for _, value in sink.lineage]
                entry = writer_for(values)
                entry[0].write_batch(pa.RecordBatch.from_arrays(cols, schema=file_schema))
                entry[2] += n

            try:
                for out in scorer(batches):
                    if not keys:
                        write(out, ())
                        continue
                    table = pa.Table.from_batches([out])
                    groups = table.group_by(keys).aggregate([]).to_pylist()
                    if len(groups) == 1:
                        write(out, tuple(groups[0][k] for k in keys))
                        continue
                    for g in groups:
                        mask = None
                        for k in keys:
                            col = out.column(k)
                            cond = (
                                pc.is_null(col) if g[k] is None else pc.fill_null(pc.equal(col, g[k]), False)
                            )
                            mask = cond if mask is None else pc.and_(mask, cond)
                        write(out.filter(mask), tuple(g[k] for k in keys))
            finally:
                for writer, _, _, stream in writers.values():
                    writer.close()
                    stream.close()
            files = [f"{tag}/{rel}" for _, rel, _, _ in writers.values()]
            rows = [n for _, _, n, _ in writers.values()]
            yield pa.RecordBatch.from_pydict(
                {"file": files, "rows": rows}, schema=pa.schema([("file", pa.string()), ("rows", pa.int64())])
            )

        return write_partition

    def publish(self, written_rows) -> int:
        """Driver: move the successful attempts' files into the staging layout; return the row count."""
        from batchinfer.io.filesystem import resolve

        staging = resolve(self.staging_uri)
        attempts = staging.join("_attempts")
        total = 0
        for row in written_rows:
            tag, _, rel = row["file"].partition("/")
            dst = staging.join(rel)
            dst.fs.create_dir(dst.path.rsplit("/", 1)[0], recursive=True)
            dst.fs.move(attempts.join(tag, rel).path, dst.path)
            total += row["rows"]
        from pyarrow import fs as pafs

        if attempts.fs.get_file_info(attempts.path).type != pafs.FileType.NotFound:
            attempts.fs.delete_dir(attempts.path)
        return total
