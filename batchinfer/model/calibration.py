"""Sample real rows from a Parquet dataset and turn them into model feeds with the job's mapping.

Calibration (static int8) and verification both need model inputs built *exactly* as the job
builds them. So the mapping is never re-implemented here: it is resolved by
:func:`batchinfer.plan.build_plan` (from a job config, or from a one-input ``--columns`` list)
and the tensors are made by :func:`batchinfer.scoring.tensors.build_tensor` with the plan's
``InputBinding``.

>>> mapping = mapping_from_columns("data/events", ["f0", "f1"], load_model("m.onnx"))  # doctest: +SKIP
>>> for feeds in mapping.iter_feeds(rows=5000, batch_rows=1000):  # doctest: +SKIP
...     session.run(None, feeds)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from batchinfer.errors import ConfigError, InputDataError, ModelError


@dataclass
class DataMapping:
    """The rows to sample (an input selection) and how they become tensors (a scoring spec)."""

    selection: object  # batchinfer.io.source.InputSelection
    spec: object  # batchinfer.plan.ScoringSpec
    source: str  # where the mapping came from, for the card ("config conf/job.yaml", "--columns")

    @property
    def feature_columns(self) -> list[str]:
        return list(self.spec.feature_columns)

    def for_model(self, model) -> DataMapping:
        """The same rows and columns bound to another model (e.g. the quantized candidate).

        The bindings are re-resolved against that model's signature, so an fp16 model that
        kept float32 inputs binds exactly like its reference, and one that did not is refused.
        """
        from batchinfer.model.artifact import ModelArtifact

        assert isinstance(model, ModelArtifact)
        sig = model.signature
        ref_names = {b.name for b in self.spec.inputs}
        names = {t.name for t in sig.inputs}
        if names != ref_names:
            raise ModelError(
                f"model {model.path} has inputs {sorted(names)}, the reference has {sorted(ref_names)}",
                hint="compare the two models with `batchinfer model inspect`",
            )
        for b in self.spec.inputs:
            got = sig.input(b.name).dtype
            if got != b.dtype:
                raise ModelError(
                    f"model {model.path} input {b.name!r} is {got}, the reference's is {b.dtype}",
                    hint="quantize with float inputs kept (fp16 uses keep_io_types) so the job's "
                    "column types still fit",
                )
        return DataMapping(self.selection, replace(self.spec, model_sha256=model.sha256), self.source)

    def sample(self, rows: int, *, seed: int = 0, extra_columns: Sequence[str] = ()):
        """Up to ``rows`` rows (a pyarrow Table) sampled across the selected files."""
        import pyarrow as pa

        tables = list(
            iter_sample(self.selection, self.feature_columns + list(extra_columns), rows, seed=seed)
        )
        tables = [t for t in tables if t.num_rows]
        if not tables:
            raise InputDataError(
                f"no rows to sample under {self.selection.root.uri}",
                hint="check the data path and partition filter",
            )
        table = pa.concat_tables(tables, promote_options="default")
        return drop_invalid_rows(table, self.spec)

    def iter_feeds(self, rows: int, *, batch_rows: int, seed: int = 0) -> Iterator[dict[str, np.ndarray]]:
        """Stream feeds dicts of at most ``batch_rows`` rows, file by file (for calibration)."""
        for table in iter_sample(self.selection, self.feature_columns, rows, seed=seed):
            table = drop_invalid_rows(table, self.spec)
            yield from feeds_from_table(table, self.spec, batch_rows)


def feeds_from_table(table, spec, batch_rows: int) -> Iterator[dict[str, np.ndarray]]:
    """Cut a table into batches and build each input tensor with the job's ``build_tensor``."""
    from batchinfer.scoring.tensors import build_tensor

    # One chunk first: a sample concatenated from several files would otherwise be cut at every
    # file boundary too, and "batches of N rows" would silently be smaller (batch-dependent models).
    for batch in table.combine_chunks().to_batches(max_chunksize=batch_rows):
        if batch.num_rows:
            yield {b.name: build_tensor(batch, b, spec) for b in spec.inputs}


def drop_invalid_rows(table, spec):
    """Rows with a null or NaN/inf feature are left out of a sample (unless the job fills them).

    The job would fail or quarantine such rows; calibrating or verifying on them would only
    measure the fill value.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if spec.invalid_features == "fill" or table.num_rows == 0:
        return table
    keep = None
    for b in spec.inputs:
        if b.array_column or b.dtype == "str":
            cols = [table.column(b.columns[0])] if b.array_column else []
            for col in cols:
                ok = pc.is_valid(col)
                keep = ok if keep is None else pc.and_(keep, ok)
            continue
        for c in b.columns:
            col = table.column(c)
            ok = pc.is_valid(col)
            if pa.types.is_floating(col.type):
                ok = pc.and_(ok, pc.is_finite(col))
            keep = ok if keep is None else pc.and_(keep, ok)
    if keep is None:
        return table
    return table.filter(pc.fill_null(keep, False))


def _choose_files(files: list, rows: int, rng: np.random.Generator) -> list:
    """Files to read: all of them when small; otherwise a random subset holding >= 4x the sample.

    Reading every file of a large dataset to sample a few thousand rows would cost more than
    the quantization itself.
    """
    total = sum(f.rows for f in files)
    if total <= 4 * rows:
        return list(files)
    order = rng.permutation(len(files))
    chosen, held = [], 0
    for i in order:
        chosen.append(files[i])
        held += files[i].rows
        if held >= 4 * rows:
            break
    return [f for f in files if f in chosen]  # keep partition order: reproducible, readable


def iter_sample(selection, columns: Sequence[str], rows: int, *, seed: int = 0):
    """Yield one pyarrow Table per file: a uniform random sample of ``rows`` rows in all.

    Each chosen file contributes in proportion to its row count; partition columns are added
    as strings (as the job reads them).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if rows < 1:
        raise ConfigError(f"the sample size must be at least 1 row, got {rows}")
    rng = np.random.default_rng(seed)
    files = [f for f in selection.files if f.rows > 0]
    files = _choose_files(files, rows, rng)
    total = sum(f.rows for f in files)
    if total == 0:
        return
    keys = set(selection.partition_keys)
    data_cols = [c for c in dict.fromkeys(columns) if c not in keys]
    fs = selection.root.fs
    # Largest-remainder quotas: sum exactly min(rows, total).
    want = min(rows, total)
    exact = np.array([f.rows for f in files], dtype=float) * want / total
    quotas = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - quotas))[: want - int(quotas.sum())]:
        quotas[i] += 1
    for f, quota in zip(files, quotas, strict=True):
        if quota <= 0:
            continue
        try:
            with fs.open_input_file(f.path) as fh:
                table = pq.ParquetFile(fh).read(columns=data_cols)
        except Exception as exc:
            raise InputDataError(f"cannot read Parquet file {f.uri} for sampling: {exc}") from exc
        if quota < table.num_rows:
            idx = np.sort(rng.choice(table.num_rows, size=int(quota), replace=False))
            table = table.take(pa.array(idx))
        part = dict(f.partition)
        for c in columns:
            if c in keys and c not in table.column_names:
                table = table.append_column(c, pa.array([part.get(c)] * table.num_rows, type=pa.string()))
        yield table


def _discover(cfg, data_columns: Sequence[str]):
    from batchinfer.io.source import discover

    needed = list(cfg.input.passthrough)
    for binding in cfg.model.inputs.values():
        needed.extend(c for c in binding.source_columns if c not in needed)
    needed.extend(c for c in data_columns if c not in needed)
    return discover(
        cfg.input.path,
        partitions=cfg.input.partition_filter(),
        needed_columns=needed,
        allow_empty=False,
        on_corrupt_file=cfg.input.on_corrupt_file,
    )


def mapping_from_config(
    config_path,
    model,
    *,
    data: str | None = None,
    overrides: Sequence[str] = (),
    env: str | None = None,
    extra_columns: Sequence[str] = (),
) -> DataMapping:
    """The job config's input mapping, bound to ``model`` (not the config's own model file).

    ``data`` replaces ``input.path`` (e.g. to verify on another dataset); the config's
    partition filter and ``--set`` overrides still apply.
    """
    from batchinfer.config import load_config_full
    from batchinfer.plan import build_plan

    overrides = list(overrides) + ([f"input.path={data}"] if data else [])
    loaded = load_config_full(config_path, overrides=overrides, env=env)
    cfg = loaded.config
    selection = _discover(cfg, extra_columns)
    plan = build_plan(cfg, model, selection)
    return DataMapping(selection, plan.spec, f"config {config_path}")


def mapping_from_columns(
    data: str, columns: Sequence[str], model, *, extra_columns: Sequence[str] = ()
) -> DataMapping:
    """One model input fed by scalar ``columns`` of the Parquet dataset at ``data`` (as [N, F])."""
    from batchinfer.config import load_config_full
    from batchinfer.plan import build_plan

    sig = model.signature
    if len(sig.inputs) != 1:
        raise ConfigError(
            f"--columns maps exactly one model input, but model {model.path} has "
            f"{len(sig.inputs)} inputs {[t.name for t in sig.inputs]}",
            hint="use --config JOB.yaml to take the mapping of every input from a job config",
        )
    outputs = [t for t in sig.outputs if t.dtype is not None]
    if not outputs:
        raise ModelError(
            f"model {model.path} has no plain tensor output (outputs: "
            f"{[f'{t.name}: {t.onnx_type}' for t in sig.outputs]})",
            hint="re-export without ZipMap (skl2onnx: options={id(model): {'zipmap': False}})",
        )
    cfg_dict = {
        "job": "model-tool",
        "input": {"path": str(data)},
        "model": {
            "path": model.path,
            "inputs": {sig.inputs[0].name: {"columns": list(columns)}},
            "outputs": {outputs[0].name: {"column": "_out"}},
        },
        "output": {"path": "_unused"},
    }
    cfg = load_config_full(cfg_dict).config
    selection = _discover(cfg, extra_columns)
    plan = build_plan(cfg, model, selection)
    return DataMapping(selection, plan.spec, f"--data {data} --columns {','.join(columns)}")


def parse_columns(text: str) -> list[str]:
    cols = [c.strip() for c in text.split(",") if c.strip()]
    if not cols:
        raise ConfigError("--columns is empty", hint="give comma-separated column names, e.g. f0,f1,f2")
    return cols
