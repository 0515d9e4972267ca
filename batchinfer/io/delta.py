"""``output.format: delta``: the driver commits a run's staged files as one Delta transaction.

The workers stage Parquet exactly as for plain Parquet output (``_batchinfer/staging/<run>/``);
after every gate passed, the driver streams those rows into the Delta table with delta-rs
(``deltalake``, no JVM) in **one** transaction: ``overwrite_partitions`` replaces exactly the
run's partitions (a predicate overwrite), ``append`` appends, ``error_if_exists`` refuses when the
table already exists. The run id and the model digest go into the commit's metadata
(``batchinfer.run_id``, ``batchinfer.model_sha256``). Readers see the previous version until the
log entry is written, on local disks and object stores alike, so a failed gate or a driver killed
before the commit leaves the table at its previous version. A second writer that commits to the
same partitions in between makes delta-rs's conflict check fail this run (exit 6), with nothing
partial visible (its data files are written but never referenced by the log).

The rows are rewritten once by the driver (delta-rs writes its own files) rather than the staged
files being registered as they are: simpler and safe, at the cost of one extra pass over the output.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from batchinfer.errors import OutputError
from batchinfer.io import storage
from batchinfer.io.sink import CommitResult, OutputTable


def delta_uri(uri: str) -> str:
    """The table URI as delta-rs spells it: ``s3a://`` and ``s3n://`` are ``s3://``."""
    if "://" not in uri or uri.startswith("file://"):
        return uri[len("file://") :] if uri.startswith("file://") else uri
    parts = urlsplit(uri)
    scheme = storage.canonical_scheme(parts.scheme)
    if scheme == "abfs":
        scheme = parts.scheme.lower()  # delta-rs knows abfs and abfss
    return f"{scheme}://{parts.netloc}{parts.path}"


def delta_storage_options(uri: str, options: storage.StorageOptions | None = None) -> dict[str, str]:
    """delta-rs ``storage_options`` from the same spark.hadoop.fs.* settings pyarrow gets."""
    if "://" not in uri or uri.startswith("file://"):
        return {}
    parts = urlsplit(uri)
    store = storage.canonical_scheme(parts.scheme)
    out: dict[str, str] = {}
    if store == "s3":
        args = storage.s3_arguments(parts.netloc, options)
        if "endpoint_override" in args:
            scheme = args.get("scheme", "https")
            out["AWS_ENDPOINT_URL"] = f"{scheme}://{args['endpoint_override']}"
            if scheme == "http":
                out["AWS_ALLOW_HTTP"] = "true"
            # S3-compatible servers: the log entry's put-if-absent through ETag conditions.
            out["conditional_put"] = "etag"
        if args.get("force_virtual_addressing"):
            out["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "true"
        if "region" in args:
            out["AWS_REGION"] = args["region"]
        if args.get("anonymous"):
            out["AWS_SKIP_SIGNATURE"] = "true"
        if args.get("access_key"):
            out["AWS_ACCESS_KEY_ID"] = args["access_key"]
            out["AWS_SECRET_ACCESS_KEY"] = args.get("secret_key", "")
            if args.get("session_token"):
                out["AWS_SESSION_TOKEN"] = args["session_token"]
    elif store == "abfs":
        account = parts.netloc.partition("@")[2].split(".")[0]
        opts = options or storage.active()
        key = opts.get(f"fs.azure.account.key.{account}.dfs.core.windows.net") or opts.environ(
            "AZURE_STORAGE_ACCOUNT_KEY"
        )
        out["AZURE_STORAGE_ACCOUNT_NAME"] = account
        if key:
            out["AZURE_STORAGE_ACCOUNT_KEY"] = key
    return out


def _predicate(partitions: list[dict[str, str]]) -> str:
    def literal(value: str) -> str:
        return "'" + str(value).replace("'", "''") + "'"

    return " OR ".join(
        "(" + " AND ".join(f"{k} = {literal(v)}" for k, v in sorted(p.items())) + ")" for p in partitions
    )


def commit_delta(
    table: OutputTable,
    run_id: str,
    *,
    mode: str,
    partition_by: list[str],
    metadata: dict[str, str],
    pause=None,
) -> tuple[CommitResult, int]:
    """Publish run ``run_id``'s staged rows as one Delta transaction; (result, new table version).

    The table is read once, up front: that version is the one this run's predicate overwrite
    replaces partitions of, and the one delta-rs checks concurrent commits against (a writer
    that committed to the same partitions since makes this commit fail, exit 6). ``pause(step)``
    is the test seam (step ``delta_table_read``: table read, nothing written yet).
    """
    import pyarrow as pa
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import CommitFailedError, DeltaError

    units = table.staged_units(run_id, partition_by)
    result = CommitResult()
    files = []
    for rel, infos in sorted(units.items()):
        rows = sum(pq.read_metadata(fi.path, filesystem=table.root.fs).num_rows for fi in infos)
        result.rows_by_partition[rel or "(all)"] = rows
        result.rows += rows
        result.files += len(infos)
        result.partitions.append(dict(p.split("=", 1) for p in rel.split("/")) if rel else {})
        files.extend(fi.path for fi in infos)
    uri = delta_uri(table.root.uri)
    options = delta_storage_options(table.root.uri)
    exists = DeltaTable.is_deltatable(uri, storage_options=options or None)
    target = DeltaTable(uri, storage_options=options or None) if exists else uri
    (pause or (lambda step: None))("delta_table_read")
    if mode == "error_if_exists" and exists:
        raise OutputError(
            f"output.mode=error_if_exists but {table.root.uri} is already a Delta table",
            hint="use mode overwrite_partitions to replace the run's partitions, or write elsewhere",
        )
    if not files:
        return result, target.version() if exists else -1
    partitioning = (
        pads.partitioning(pa.schema([(k, pa.string()) for k in partition_by]), flavor="hive")
        if partition_by
        else None
    )
    staged = pads.dataset(
        files,
        filesystem=table.root.fs,
        format="parquet",
        partitioning=partitioning,
        partition_base_dir=table.staging(run_id).path,
    )
    kwargs: dict = {"mode": "append"}
    if exists and mode != "append":
        kwargs["mode"] = "overwrite"
        if partition_by:
            kwargs["predicate"] = _predicate(result.partitions)
    try:
        write_deltalake(
            target,
            staged.scanner().to_reader(),
            partition_by=partition_by or None,
            storage_options=options or None,
            commit_properties=CommitProperties(custom_metadata=metadata),
            **kwargs,
        )
    except CommitFailedError as exc:
        raise OutputError(
            f"Delta commit to {table.root.uri} conflicted with another writer "
            f"({str(exc).splitlines()[0][:160]}); nothing of this run is visible",
            hint="run one job per output partition at a time, then rerun this one",
        ) from None
    except (DeltaError, OSError) as exc:
        if "concurrent" in str(exc).lower():  # delta-rs's conflict checker, under another class
            raise OutputError(
                f"Delta commit to {table.root.uri} conflicted with another writer "
                f"({str(exc).splitlines()[0][:160]}); nothing of this run is visible",
                hint="run one job per output partition at a time, then rerun this one",
            ) from None
        raise storage.storage_error(table.root.uri, exc, OutputError, action="commit Delta table") from None
    version = DeltaTable(uri, storage_options=options or None).version()
    table.discard(run_id)
    return result, version
