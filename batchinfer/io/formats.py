"""The commit of a table format (``output.format: delta | iceberg``): one call for the job.

Plain Parquet output commits through :meth:`batchinfer.io.sink.OutputTable.commit`; the table
formats commit the same staged files as one transaction of their own
(:mod:`batchinfer.io.delta`, :mod:`batchinfer.io.iceberg`).
"""

from __future__ import annotations

from collections.abc import Callable

from batchinfer.io.sink import CommitResult, OutputTable


def commit_table_format(
    output,
    table: OutputTable,
    run_id: str,
    *,
    model_sha256: str,
    pause: Callable[[str], None] | None = None,
) -> tuple[CommitResult, dict]:
    """Commit run ``run_id``'s staged files in ``output.format``; (result, the manifest's record).

    ``output`` is the job's :class:`~batchinfer.config.OutputConfig`. The record goes to the
    manifest under the format's name: ``{"version": N}`` for Delta, ``{"table": ...,
    "snapshot_id": ...}`` for Iceberg.
    """
    metadata = {"batchinfer.run_id": run_id, "batchinfer.model_sha256": model_sha256}
    if output.format == "delta":
        from batchinfer.io.delta import commit_delta

        committed, version = commit_delta(
            table, run_id, mode=output.mode, partition_by=output.partition_by, metadata=metadata, pause=pause
        )
        return committed, {"version": version}
    if output.format == "iceberg":
        from batchinfer.io.iceberg import commit_iceberg

        return commit_iceberg(
            table,
            run_id,
            mode=output.mode,
            partition_by=output.partition_by,
            iceberg=output.iceberg,
            metadata=metadata,
            pause=pause,
        )
    raise ValueError(f"not a table format: {output.format}")
