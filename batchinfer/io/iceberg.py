"""``output.format: iceberg``: the driver commits a run's staged files as one Iceberg snapshot.

The workers stage Parquet exactly as for plain Parquet output (``_batchinfer/staging/<run>/``).
After every gate passed, the driver moves those files to unique names under the table's
``data/`` directory (``data/ds=.../<run id>-part-*.parquet``: nothing references them yet, so
no reader sees them) and registers them in **one** catalog commit, the way pyiceberg's
``add_files`` does but with the partition values taken from the staged layout (Hive-style
staging keeps the partition columns out of the files; Iceberg readers fill identity partition
columns from the manifest). The files are not rewritten.

Modes: ``overwrite_partitions`` replaces the data files of exactly the run's partition values
(the whole table when unpartitioned) and adds the new ones in a single ``overwrite`` snapshot;
``append`` adds them in a single ``append`` snapshot; ``error_if_exists`` refuses when the
table exists. The first run creates the table (schema from the staged files, identity partition
spec from ``output.partition_by``) in the same commit. The snapshot summary holds
``batchinfer.run_id`` and ``batchinfer.model_sha256``.

Readers see the previous snapshot until the catalog swaps the metadata pointer, on local disks
and object stores alike; a failed gate or a driver killed before that leaves the table at its
previous snapshot (files already moved are unreferenced orphans, see docs/storage.md). A writer
that committed in between makes the catalog's optimistic check fail this run (exit 6); its
moved files are deleted and nothing of it is visible.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from batchinfer.errors import OutputError
from batchinfer.io import storage
from batchinfer.io.sink import CommitResult, OutputTable

_SECRET_WORDS = ("secret", "token", "credential", "password", "account-key", "sas")


def table_location(uri: str) -> str:
    """The table location as Iceberg FileIOs spell it: ``s3a://`` is ``s3://``, paths are ``file://``."""
    if "://" not in uri:
        return "file://" + os.path.abspath(uri)
    parts = urlsplit(uri)
    scheme = storage.canonical_scheme(parts.scheme)
    if scheme == "abfs":
        scheme = parts.scheme.lower()  # abfs and abfss are both known to the FileIOs
    return f"{scheme}://{parts.netloc}{parts.path}".rstrip("/")


def fileio_properties(uri: str, options: storage.StorageOptions | None = None) -> dict[str, str]:
    """pyiceberg FileIO properties (``s3.endpoint`` ...) from the same settings pyarrow gets."""
    if "://" not in uri or uri.startswith("file://"):
        return {}
    parts = urlsplit(uri)
    store = storage.canonical_scheme(parts.scheme)
    out: dict[str, str] = {}
    if store == "s3":
        args = storage.s3_arguments(parts.netloc, options)
        if "endpoint_override" in args:
            out["s3.endpoint"] = f"{args.get('scheme', 'https')}://{args['endpoint_override']}"
        if "region" in args:
            out["s3.region"] = args["region"]
        if args.get("force_virtual_addressing"):
            out["s3.force-virtual-addressing"] = "true"
        if args.get("anonymous"):
            out["s3.anonymous"] = "true"
        if args.get("access_key"):
            out["s3.access-key-id"] = args["access_key"]
            out["s3.secret-access-key"] = args.get("secret_key", "")
            if args.get("session_token"):
                out["s3.session-token"] = args["session_token"]
    elif store == "abfs":
        account = parts.netloc.partition("@")[2].split(".")[0]
        opts = options or storage.active()
        key = opts.get(f"fs.azure.account.key.{account}.dfs.core.windows.net") or opts.environ(
            "AZURE_STORAGE_ACCOUNT_KEY"
        )
        out["adls.account-name"] = account
        if key:
            out["adls.account-key"] = key
    elif store == "gs":
        root = (options or storage.active()).get("fs.gs.storage.root.url")
        if root:
            out["gcs.service.host"] = root
    return out


def catalog_properties(output_uri: str, catalog: Mapping[str, object]) -> dict[str, str]:
    """The catalog's properties: FileIO settings from ``spark.conf`` first, the config's on top."""
    from batchinfer.redaction import REDACTOR

    props = fileio_properties(output_uri)
    props.update({k: _text(v) for k, v in catalog.items()})
    REDACTOR.remember([v for k, v in props.items() if v and any(w in k.lower() for w in _SECRET_WORDS)])
    return props


def _text(value: object) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def load_catalog(name: str, props: Mapping[str, str], output_uri: str):
    """``pyiceberg.catalog.load_catalog``, with a failure as one :class:`OutputError` line."""
    try:
        from pyiceberg.catalog import load_catalog as _load
    except ImportError as exc:
        raise OutputError(
            f"output.format: iceberg needs pyiceberg, which is not installed ({exc})",
            hint="pip install 'batchinfer[iceberg]'",
        ) from None
    try:
        return _load(name, **props)
    except Exception as exc:  # noqa: BLE001 - any backend's failure becomes one line
        raise _catalog_error(f"cannot open Iceberg catalog {name} ({props.get('type', '?')})", exc) from None


def _catalog_error(what: str, exc: BaseException) -> OutputError:
    from batchinfer.redaction import REDACTOR

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
    return OutputError(
        REDACTOR.text(f"{what}: {type(exc).__name__}: {first}"),
        hint="check output.iceberg.catalog (type, uri, warehouse, credentials) and that the catalog "
        "service is reachable",
    )


def _staged(table: OutputTable, run_id: str, partition_by: list[str]):
    """(CommitResult, [(relative partition dir, partition values, FileInfo)]) of the staged files."""
    import pyarrow.parquet as pq

    result, files = CommitResult(), []
    for rel, infos in sorted(table.staged_units(run_id, partition_by).items()):
        values = dict(p.split("=", 1) for p in rel.split("/")) if rel else {}
        rows = 0
        for fi in infos:
            rows += pq.read_metadata(fi.path, filesystem=table.root.fs).num_rows
            files.append((rel, values, fi))
        result.rows_by_partition[rel or "(all)"] = rows
        result.rows += rows
        result.files += len(infos)
        result.partitions.append(values)
    return result, files


def _arrow_schema(table: OutputTable, fi, partition_by: list[str]):
    """The table's Arrow schema: a staged file's columns, then the partition columns (strings)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(fi.path, filesystem=table.root.fs)
    fields = [schema.field(n) for n in schema.names if n not in partition_by]
    return pa.schema(fields + [pa.field(k, pa.string()) for k in partition_by])


def _columns(schema) -> list[tuple[str, str]]:
    return [(f.name, str(f.field_type)) for f in schema.fields]


def _check_existing(tbl, ident: str, location: str, arrow_schema, partition_by: list[str]) -> None:
    """The existing table must live at output.path, be partitioned the same way and take these columns."""
    from pyiceberg.io.pyarrow import _pyarrow_to_schema_without_ids
    from pyiceberg.transforms import IdentityTransform

    if table_location(tbl.location()) != location:
        raise OutputError(
            f"Iceberg table {ident} lives at {tbl.location()}, not at output.path {location}",
            hint="set output.path to the table's location, or name another table",
        )
    schema = tbl.schema()
    spec = [
        (schema.find_field(f.source_id).name, isinstance(f.transform, IdentityTransform))
        for f in tbl.spec().fields
    ]
    if spec != [(k, True) for k in partition_by]:
        raise OutputError(
            f"Iceberg table {ident} is partitioned by {[n for n, _ in spec] or 'nothing'} "
            f"(identity: {all(i for _, i in spec)}), but output.partition_by is {partition_by}",
            hint="set output.partition_by to the table's identity partition columns, or name another table",
        )
    got = _columns(_pyarrow_to_schema_without_ids(arrow_schema))
    if got != _columns(schema):
        raise OutputError(
            f"Iceberg table {ident} has columns {_columns(schema)}, this run writes {got}",
            hint="write the same output columns (and lineage columns) as the table has, or name another table",
        )


def _data_file(table: OutputTable, uri: str, fs_path: str, values: dict, metadata, partition_by):
    import pyarrow.parquet as pq
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )
    from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
    from pyiceberg.typedef import Record

    schema = metadata.schema()
    with table.root.fs.open_input_file(fs_path) as fh:
        size = fh.size()
        parquet = pq.read_metadata(fh)
    stats = data_file_statistics_from_parquet_metadata(
        parquet_metadata=parquet,
        stats_columns=compute_statistics_plan(schema, metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    spec = metadata.spec()
    partition = Record(*[values[schema.find_field(f.source_id).name] for f in spec.fields])
    return DataFile.from_args(
        content=DataFileContent.DATA,
        file_path=uri,
        file_format=FileFormat.PARQUET,
        partition=partition,
        file_size_in_bytes=size,
        sort_order_id=None,
        spec_id=metadata.default_spec_id,
        equality_ids=None,
        key_metadata=None,
        **stats.to_serialized_dict(),
    )


def _files_to_replace(tbl, partitions: list[dict[str, str]], partition_by: list[str]):
    """The live data files of exactly the run's partition values (all of them when unpartitioned)."""
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo, Or

    if tbl.current_snapshot() is None:
        return []
    if not partition_by:
        return [task.file for task in tbl.scan().plan_files()]
    wanted = {tuple(p[k] for k in partition_by) for p in partitions}
    clauses = []
    for values in sorted(wanted):
        terms = [EqualTo(k, v) for k, v in zip(partition_by, values, strict=True)]
        clauses.append(terms[0] if len(terms) == 1 else And(*terms))
    row_filter = AlwaysTrue() if not clauses else (clauses[0] if len(clauses) == 1 else Or(*clauses))
    found, seen = [], set()
    for task in tbl.scan(row_filter=row_filter).plan_files():
        # Identity partitions: a file belongs to exactly one partition tuple; keep exact matches only.
        if tuple(task.file.partition[i] for i in range(len(partition_by))) in wanted:
            if task.file.file_path not in seen:
                seen.add(task.file.file_path)
                found.append(task.file)
    return found


def commit_iceberg(
    table: OutputTable,
    run_id: str,
    *,
    mode: str,
    partition_by: list[str],
    iceberg,
    metadata: dict[str, str],
    pause: Callable[[str], None] | None = None,
) -> tuple[CommitResult, dict]:
    """Publish run ``run_id``'s staged files as one Iceberg snapshot; (result, manifest record).

    ``iceberg`` is the job's :class:`~batchinfer.config.IcebergConfig`; ``pause(step)`` is the
    test seam (step ``iceberg_files_moved``: files in place, catalog not yet committed).
    """
    pause = pause or (lambda step: None)
    ident = iceberg.table
    location = table_location(table.root.uri)
    props = catalog_properties(table.root.uri, iceberg.catalog)
    catalog = load_catalog(iceberg.catalog_name, props, table.root.uri)
    result, staged = _staged(table, run_id, partition_by)
    try:
        exists = catalog.table_exists(ident)
    except Exception as exc:  # noqa: BLE001
        raise _catalog_error(f"cannot look up Iceberg table {ident}", exc) from None
    if mode == "error_if_exists" and exists:
        raise OutputError(
            f"output.mode=error_if_exists but Iceberg table {ident} already exists",
            hint="use mode overwrite_partitions to replace the run's partitions, or name another table",
        )
    record = {"table": ident, "catalog": iceberg.catalog_name}
    if not staged:
        tbl = catalog.load_table(ident) if exists else None
        snap = tbl.current_snapshot() if tbl is not None else None
        record["snapshot_id"] = snap.snapshot_id if snap is not None else None
        table.discard(run_id)
        return result, record
    arrow_schema = _arrow_schema(table, staged[0][2], partition_by)
    txn, tbl = _open_transaction(catalog, ident, exists, location, arrow_schema, partition_by)

    moved: list[str] = []
    try:
        data_files = []
        for rel, values, fi in staged:
            dest = table.root.join("data", rel, f"{run_id}-{fi.base_name}") if rel else None
            dest = dest or table.root.join("data", f"{run_id}-{fi.base_name}")
            dest.fs.create_dir(dest.path.rsplit("/", 1)[0], recursive=True)
            dest.fs.move(fi.path, dest.path)  # a rename locally; a copy + delete on object stores
            moved.append(dest.path)
            uri = location + "/" + dest.path[len(table.root.path.rstrip("/")) + 1 :]
            data_files.append(_data_file(table, uri, dest.path, values, txn.table_metadata, partition_by))
        old = _files_to_replace(tbl, result.partitions, partition_by) if (tbl and mode != "append") else []
        if txn.table_metadata.name_mapping() is None:
            # The staged files carry no Iceberg field ids: readers resolve their columns by name.
            from pyiceberg.table import TableProperties

            txn.set_properties(
                **{
                    TableProperties.DEFAULT_NAME_MAPPING: txn.table_metadata.schema().name_mapping.model_dump_json()
                }
            )
        update = txn.update_snapshot(snapshot_properties=metadata)
        with update.overwrite() if old else update.fast_append() as snapshot:
            for data_file in old:
                snapshot.delete_data_file(data_file)
            for data_file in data_files:
                snapshot.append_data_file(data_file)
        pause("iceberg_files_moved")
        _commit(txn, ident, table.root.uri)
    except OutputError as exc:
        if getattr(exc, "definitely_not_committed", True):
            _delete_quietly(table, moved)
        raise
    except OSError as exc:
        _delete_quietly(table, moved)
        raise storage.storage_error(table.root.uri, exc, OutputError, action="commit Iceberg table") from None
    committed = catalog.load_table(ident)
    snap = committed.current_snapshot()
    record.update(
        snapshot_id=snap.snapshot_id,
        sequence_number=snap.sequence_number,
        operation=str(snap.summary.operation.value) if snap.summary else None,
        metadata_location=committed.metadata_location,
    )
    table.discard(run_id)
    return result, record


def _open_transaction(catalog, ident: str, exists: bool, location: str, arrow_schema, partition_by):
    """(transaction, loaded table or None): on the existing table, or creating it in the same commit."""
    if exists:
        try:
            tbl = catalog.load_table(ident)
        except Exception as exc:  # noqa: BLE001
            raise _catalog_error(f"cannot load Iceberg table {ident}", exc) from None
        _check_existing(tbl, ident, location, arrow_schema, partition_by)
        return tbl.transaction(), tbl
    namespace = ident.rsplit(".", 1)[0]
    try:
        catalog.create_namespace_if_not_exists(namespace)
        txn = catalog.create_table_transaction(
            ident, schema=arrow_schema, location=location, properties={"format-version": "2"}
        )
    except Exception as exc:  # noqa: BLE001
        raise _catalog_error(f"cannot create Iceberg table {ident} at {location}", exc) from None
    if partition_by:
        with txn.update_spec() as spec:
            for key in partition_by:
                spec.add_identity(key)
    return txn, None


def _commit(txn, ident: str, uri: str) -> None:
    from pyiceberg.exceptions import (
        CommitFailedException,
        CommitStateUnknownException,
        TableAlreadyExistsError,
        ValidationException,
    )

    try:
        txn.commit_transaction()
    # pyiceberg retries a commit that lost the race on a fresh base; its validation then refuses
    # one whose partitions another writer changed meanwhile (ValidationException).
    except (CommitFailedException, TableAlreadyExistsError, ValidationException) as exc:
        raise OutputError(
            f"Iceberg commit to {ident} ({uri}) conflicted with another writer "
            f"({str(exc).splitlines()[0][:160]}); nothing of this run is visible",
            hint="run one job per output table at a time, then rerun this one",
        ) from None
    except CommitStateUnknownException as exc:
        error = _catalog_error(f"Iceberg commit to {ident} has an unknown outcome", exc)
        error.definitely_not_committed = False  # the files may be referenced now: keep them
        raise error from None
    except OSError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise _catalog_error(f"Iceberg commit to {ident} failed", exc) from None


def _delete_quietly(table: OutputTable, paths: list[str]) -> None:
    """Drop files this run moved into data/ but never got referenced (best effort)."""
    for path in paths:
        try:
            table.root.fs.delete_file(path)
        except OSError:
            pass


def read_table(iceberg, output_uri: str):
    """The committed table (pyiceberg ``Table``), loaded with the job's catalog and settings."""
    props = catalog_properties(output_uri, iceberg.catalog)
    return load_catalog(iceberg.catalog_name, props, output_uri).load_table(iceberg.table)
