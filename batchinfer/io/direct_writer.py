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

RESULT_SCHEMA = "file string, rows long, kind string, partial binary"
_NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"


def RESULT_ARROW_SCHEMA():  # noqa: N802 -- a constant, built lazily (pyarrow is imported on use)
    import pyarrow as pa

    return pa.schema(
        [("file", pa.string()), ("rows", pa.int64()), ("kind", pa.string()), ("partial", pa.binary())]
    )


def _row(file: str, rows: int, kind: str, partial: bytes | None = None) -> dict:
    return {"file": file, "rows": rows, "kind": kind, "partial": partial}


def _kind(row) -> str:
    try:
        return row["kind"] or "output"
    except (KeyError, ValueError, IndexError):
        return "output"


class PartitionedFiles:
    """Executor side: Hive-partitioned Parquet files under one attempt directory."""

    def __init__(self, base, keys, data_fields, compression, lineage, part_no) -> None:
        import pyarrow as pa

        self.base, self.keys, self.lineage, self.part_no = base, list(keys), tuple(lineage), part_no
        self.compression = compression
        self.data_fields = list(data_fields)
        fields = self.data_fields + [pa.field(name, pa.string()) for name, _ in self.lineage]
        self.file_schema = pa.schema(fields)
        self.writers: dict[tuple, list] = {}  # partition values -> [writer, relative path, rows, stream]

    def _writer_for(self, values: tuple):
        import uuid

        import pyarrow.parquet as pq

        entry = self.writers.get(values)
        if entry is None:
            sub = partition_dir(self.keys, values) if self.keys else ""
            name = f"part-{self.part_no:05d}-{uuid.uuid4().hex}.parquet"
            rel = f"{sub}/{name}" if sub else name
            loc = self.base.join(rel)
            loc.fs.create_dir(loc.path.rsplit("/", 1)[0], recursive=True)
            stream = loc.fs.open_output_stream(loc.path)
            writer = pq.ParquetWriter(stream, self.file_schema, compression=self.compression or "none")
            entry = self.writers[values] = [writer, rel, 0, stream]
        return entry

    def _write(self, batch, values: tuple) -> None:
        import pyarrow as pa

        n = batch.num_rows
        if n == 0:
            return
        cols = [batch.column(f.name) for f in self.data_fields]
        cols += [pa.array([value] * n, pa.string()) for _, value in self.lineage]
        entry = self._writer_for(values)
        entry[0].write_batch(pa.RecordBatch.from_arrays(cols, schema=self.file_schema))
        entry[2] += n

    def write(self, out) -> None:
        """Write one batch, split by its partition values."""
        import pyarrow as pa
        import pyarrow.compute as pc

        keys = self.keys
        if not keys:
            self._write(out, ())
            return
        table = pa.Table.from_batches([out])
        groups = table.group_by(keys).aggregate([]).to_pylist()
        if len(groups) == 1:
            self._write(out, tuple(groups[0][k] for k in keys))
            return
        for g in groups:
            mask = None
            for k in keys:
                col = out.column(k)
                cond = pc.is_null(col) if g[k] is None else pc.fill_null(pc.equal(col, g[k]), False)
                mask = cond if mask is None else pc.and_(mask, cond)
            self._write(out.filter(mask), tuple(g[k] for k in keys))

    def close(self) -> list[tuple[str, int]]:
        """Close every file; return (relative path, rows) per file."""
        for writer, _, _, stream in self.writers.values():
            writer.close()
            stream.close()
        return [(rel, n) for _, rel, n, _ in self.writers.values()]


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
    checks: object = None  # batchinfer.checks.single_pass.TaskChecks: quarantine + partial metrics

    def write_task(self, scorer, out_schema, batches, attempt) -> list[dict]:
        """Worker side, any engine: score ``batches`` and write them; return the result rows.

        Files go under ``<staging>/_attempts/<attempt tag>-<uuid>/``. With ``checks`` (a
        :class:`batchinfer.checks.single_pass.TaskChecks`) the same task splits off quarantined rows
        (written under the quarantine staging's attempt directory) and computes the gates' partial
        metrics; all come back as rows of one result (``kind`` column).
        """
        import uuid

        from batchinfer.io.filesystem import resolve

        checks = self.checks
        tag = (attempt.tag if attempt is not None else "local") + f"-{uuid.uuid4().hex[:8]}"
        part_no = attempt.partition if attempt is not None and isinstance(attempt.partition, int) else 0
        keys = list(self.partition_by)
        data_fields = [f for f in out_schema if f.name not in keys]
        output = PartitionedFiles(
            resolve(self.staging_uri).join("_attempts", tag),
            keys,
            data_fields,
            self.compression,
            self.lineage,
            part_no,
        )
        state = checks.new_state() if checks is not None else None
        quarantine = (
            checks.quarantine_writer(tag, part_no) if checks is not None and checks.quarantines else None
        )
        run = checks.bind(scorer, state, quarantine) if checks is not None else scorer
        try:
            for out in run(batches):
                output.write(out)
        finally:
            written = output.close()
            q_written = quarantine.close() if quarantine is not None else []
        rows = [_row(f"{tag}/{rel}", n, "output") for rel, n in written]
        rows += [_row(f"{tag}/{rel}", n, "quarantine") for rel, n in q_written]
        if checks is not None:
            rows.append(_row("", 0, "metrics", checks.encode(state)))
        return rows

    def wrap(self, scorer, out_schema):
        """The ``mapInArrow`` function over a Spark DataFrame of input rows (Spark's reader).

        Scored batches are written by the worker; one batch of result rows is yielded, its worker
        stats included (``kind = stats``), as :class:`batchinfer.task.ScoringTask` does.
        """
        from batchinfer.io import storage

        sink = self
        storage_options = storage.active()  # the driver's spark.hadoop.fs.* settings, for the tasks

        def write_partition(batches):
            import pyarrow as pa

            from batchinfer import task as tasks
            from batchinfer.io import storage

            storage.configure(storage_options)
            attempt = tasks.current_attempt()
            with tasks.running(None) as bucket:
                rows = sink.write_task(scorer, out_schema, batches, attempt)
            rows.append(_row("", 0, "stats", tasks.encode_stats(bucket)))
            yield pa.RecordBatch.from_pylist(rows, schema=RESULT_ARROW_SCHEMA())

        return write_partition

    def publish(self, written_rows, kind: str = "output") -> int:
        """Driver: move the successful attempts' files into the staging layout; return the row count.

        ``kind`` picks the rows of one table (the output, or the quarantine when this sink is the
        quarantine table's staging).
        """
        from batchinfer.io.filesystem import resolve

        staging = resolve(self.staging_uri)
        attempts = staging.join("_attempts")
        total = 0
        for row in written_rows:
            if _kind(row) != kind:
                continue
            tag, _, rel = row["file"].partition("/")
            dst = staging.join(rel)
            dst.fs.create_dir(dst.path.rsplit("/", 1)[0], recursive=True)
            dst.fs.move(attempts.join(tag, rel).path, dst.path)
            total += row["rows"]
        from pyarrow import fs as pafs

        if attempts.fs.get_file_info(attempts.path).type != pafs.FileType.NotFound:
            attempts.fs.delete_dir(attempts.path)
        return total
