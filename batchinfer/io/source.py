"""Partitioned Parquet input: partition discovery and pruning, footer checks, Spark read.

Discovery runs on the driver with pyarrow before Spark starts, so a missing partition, a
corrupt file or a schema that changed across partitions is reported in seconds, naming the
file, partition and column. Spark then reads exactly the selected files.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote

from batchinfer.errors import InputDataError
from batchinfer.io.filesystem import Location, is_hidden, resolve


@dataclass(frozen=True)
class InputFile:
    path: str  # path on the filesystem
    uri: str  # what Spark reads
    partition: tuple[tuple[str, str], ...]  # (key, value) pairs, in directory order
    rows: int = 0
    size_bytes: int = 0
    row_groups: tuple[int, ...] = ()  # rows per Parquet row group

    @property
    def partition_label(self) -> str:
        return "/".join(f"{k}={v}" for k, v in self.partition) or "(unpartitioned)"


@dataclass
class InputSelection:
    """The files a job reads, after partition pruning, with their footers checked."""

    root: Location
    partition_keys: list[str]
    files: list[InputFile]
    schema: object  # pyarrow.Schema of the data columns plus partition columns (as strings)
    skipped_files: list[dict] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def partitions(self) -> list[dict[str, str]]:
        seen: dict[tuple, None] = {}
        for f in self.files:
            seen.setdefault(f.partition, None)
        return [dict(p) for p in seen]

    @property
    def rows_by_partition(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.partition_label] = out.get(f.partition_label, 0) + f.rows
        return out

    def summary(self) -> dict:
        return {
            "path": self.root.uri,
            "partitions": self.partitions,
            "files": len(self.files),
            "rows": self.rows,
            "rows_by_partition": self.rows_by_partition,
            "bytes": sum(f.size_bytes for f in self.files),
            "skipped_files": self.skipped_files,
        }


def _partition_of(relative: str) -> tuple[tuple[str, str], ...] | None:
    """``ds=2026-11-28/part-0.parquet`` → (("ds", "2026-11-28"),); None for hidden paths."""
    parts = relative.split("/")
    pairs = []
    for segment in parts[:-1]:
        if is_hidden(segment):
            return None
        if "=" in segment:
            key, _, value = segment.partition("=")
            pairs.append((unquote(key), unquote(value)))
    if is_hidden(parts[-1]):
        return None
    return tuple(pairs)


def list_files(root: Location) -> list[InputFile]:
    try:
        return _list_files(root)
    except OSError as exc:  # a store's refusal (denied, no bucket, unreachable): one line
        from batchinfer.io.storage import storage_error

        raise storage_error(root.uri, exc, InputDataError, action="list input") from None


def _list_files(root: Location) -> list[InputFile]:
    from pyarrow import fs as pafs

    info = root.fs.get_file_info(root.path)
    if info.type == pafs.FileType.NotFound:
        where = ""
        if not root.is_local:
            from batchinfer.io.storage import credential_source

            where = f" (credentials: {credential_source(root.uri)})"
        raise InputDataError(
            f"input path {root.uri} does not exist{where}", hint="check input.path; is this a typo?"
        )
    if info.type == pafs.FileType.File:
        return [InputFile(root.path, root.uri, (), 0, info.size or 0)]
    infos = root.fs.get_file_info(pafs.FileSelector(root.path, recursive=True))
    files = []
    base = root.path.rstrip("/") + "/"
    for fi in infos:
        if fi.type != pafs.FileType.File:
            continue
        relative = fi.path[len(base) :] if fi.path.startswith(base) else fi.path
        partition = _partition_of(relative)
        if partition is None:
            continue
        files.append(InputFile(fi.path, root.join(relative).uri, partition, 0, fi.size or 0))
    files.sort(key=lambda f: f.path)
    return files


def _partition_keys(files: list[InputFile], root: Location) -> list[str]:
    keysets = {tuple(k for k, _ in f.partition) for f in files}
    if len(keysets) > 1:
        shown = sorted("/".join(k) or "(none)" for k in keysets)
        raise InputDataError(
            f"input {root.uri} mixes partition layouts {shown}",
            hint="every file must sit under the same partition directories (e.g. ds=.../)",
        )
    return list(next(iter(keysets))) if keysets else []


def prune(
    files: list[InputFile], keys: list[str], filters: dict[str, list[str]], root: Location
) -> list[InputFile]:
    """Keep the files whose partition values match every filter; unknown keys are errors."""
    for key in filters:
        if key not in keys:
            raise InputDataError(
                f"input.partitions.{key}: {key!r} is not a partition column of {root.uri} "
                f"(partition columns: {keys or 'none'})",
                hint="filter on one of the partition columns, or remove the filter",
            )
    return [f for f in files if all(dict(f.partition)[k] in vals for k, vals in filters.items())]


def _read_footer(f: InputFile):
    import pyarrow.parquet as pq

    from batchinfer.io.filesystem import resolve as _resolve

    loc = _resolve(f.uri)
    try:
        md = pq.read_metadata(loc.path, filesystem=loc.fs)
        groups = tuple(md.row_group(i).num_rows for i in range(md.num_row_groups))
        return (md.num_rows, groups), md.schema.to_arrow_schema(), None
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for corrupt footers
        return (0, ()), None, f"{type(exc).__name__}: {exc}"


def discover(
    path: str,
    *,
    partitions: dict[str, list[str]] | None = None,
    needed_columns: list[str] | None = None,
    allow_empty: bool = False,
    on_corrupt_file: str = "fail",
) -> InputSelection:
    """List, prune and footer-check the input files of a job.

    Raises :class:`InputDataError` naming the partition, file or column for: a missing path or
    partition (unless ``allow_empty``), an unreadable footer (unless ``on_corrupt_file='skip'``),
    a needed column missing from a partition, or a column whose type differs across partitions.
    """
    import pyarrow as pa

    root = resolve(path)
    filters = partitions or {}
    all_files = list_files(root)
    keys = _partition_keys(all_files, root)
    files = prune(all_files, keys, filters, root)

    for key, values in filters.items():
        present = {dict(f.partition)[key] for f in files}
        missing = [v for v in values if v not in present]
        if missing and not allow_empty:
            available = sorted({dict(f.partition)[key] for f in all_files})
            shown = available[-5:]
            raise InputDataError(
                f"partition {key}={missing[0]} not found under {root.uri} "
                f"(latest available {key} values: {shown or 'none'})",
                hint="check the partition value, or set input.allow_empty: true to accept zero rows",
            )
    if not files and not allow_empty:
        raise InputDataError(
            f"no Parquet files selected under {root.uri}",
            hint="check input.path and input.partitions, or set input.allow_empty: true",
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        footers = list(pool.map(_read_footer, files))

    kept, skipped = [], []
    schema = None
    schema_from = None
    needed = list(needed_columns or [])
    for f, ((rows, groups), file_schema, error) in zip(files, footers, strict=False):
        if error is not None:
            if on_corrupt_file == "skip":
                skipped.append({"file": f.uri, "partition": f.partition_label, "error": error})
                continue
            raise InputDataError(
                f"corrupt or unreadable Parquet file {f.uri} ({error})",
                hint="repair or remove the file, or set input.on_corrupt_file: skip to skip and count it",
            )
        if schema is None:
            schema, schema_from = file_schema, f
        for col in needed:
            if col in keys:
                continue
            idx = file_schema.get_field_index(col)
            if idx < 0 and schema.get_field_index(col) < 0:
                continue  # missing everywhere so far: the plan reports it against the config
            if idx < 0:
                raise InputDataError(
                    f"partition {f.partition_label}: column {col!r} is missing from file {f.uri} "
                    f"(it is present in {schema_from.partition_label})",
                    hint="backfill the column in that partition, or drop it from the job config",
                )
            ref = schema.field(col).type if schema.get_field_index(col) >= 0 else None
            got = file_schema.field(idx).type
            if ref is not None and got != ref:
                raise InputDataError(
                    f"partition {f.partition_label}: column {col!r} has type {got} in file {f.uri}, "
                    f"expected {ref} (as in partition {schema_from.partition_label})",
                    hint="rewrite that partition with the same schema, or cast upstream",
                )
        kept.append(InputFile(f.path, f.uri, f.partition, rows, f.size_bytes, groups))

    if schema is None:
        schema = pa.schema([])
    for key in keys:
        if schema.get_field_index(key) < 0:
            schema = schema.append(pa.field(key, pa.string()))
    if not kept and not allow_empty and files:
        raise InputDataError(
            f"every selected file under {root.uri} was unreadable and skipped ({len(skipped)} files)"
        )
    if not allow_empty:
        # A partition whose files hold no rows is as empty as a missing one: fail by default.
        rows_by_partition: dict[str, int] = {}
        for f in kept:
            rows_by_partition[f.partition_label] = rows_by_partition.get(f.partition_label, 0) + f.rows
        empty = [p for p, n in rows_by_partition.items() if n == 0]
        if empty:
            raise InputDataError(
                f"partition {empty[0]} under {root.uri} has files but zero rows"
                + (f" (and {len(empty) - 1} more empty partitions)" if len(empty) > 1 else ""),
                hint="check the upstream job that wrote it, or set input.allow_empty: true to accept zero rows",
            )
    return InputSelection(root=root, partition_keys=keys, files=kept, schema=schema, skipped_files=skipped)


def read_dataframe(spark, selection: InputSelection, columns: list[str]):
    """Read exactly the selected files with Spark; partition columns come from the paths as strings."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not selection.files:
        fields = [T.StructField(c, T.StringType()) for c in columns]
        return spark.createDataFrame([], T.StructType(fields))
    reader = spark.read
    if selection.partition_keys:
        reader = reader.option("basePath", selection.root.uri)
    df = reader.parquet(*[f.uri for f in selection.files])
    for key in selection.partition_keys:
        if key in columns:
            df = df.withColumn(key, F.col(key).cast("string"))
    return df.select(*columns)
