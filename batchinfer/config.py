"""Typed job configuration: YAML layers, ``--set`` overrides, explicit env interpolation.

Every problem in a config is reported at once, each with its field path::

    >>> load_config("conf/demo.yaml", overrides=["input.partitions.ds=2026-11-28"])  # doctest: +SKIP

Rules:
- unknown keys are rejected (``extra="forbid"`` everywhere);
- layers: a base file plus overlays deep-merged in order (``conf/base/x.yaml`` + ``conf/prod/x.yaml``);
- ``--set a.b=c`` values are parsed as YAML scalars/lists (``--set runtime.batch_rows=5000``),
  except that dates stay strings (partition values such as ``2026-11-28``);
- environment variables are read only where a value says so: ``${env:NAME}`` or
  ``${env:NAME:-default}``. Values taken from the environment are remembered as secrets and
  redacted from manifests, reports and logs.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from batchinfer.checks.drift_policy import DriftConfig
from batchinfer.checks.expectations import ChecksConfig
from batchinfer.checks.quarantine import QuarantineConfig
from batchinfer.errors import ConfigError
from batchinfer.field_paths import field_path
from batchinfer.layering import deep_merge

PartitionValue = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _as_str(value: Any) -> Any:
    """YAML turns ``2026-11-28`` into a date and ``05`` into 5; partition values are strings."""
    if isinstance(value, (_dt.date, _dt.datetime)):
        return value.isoformat()
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    return value


class InputConfig(_Strict):
    """Where the rows come from: a Hive-partitioned Parquet root and a partition filter."""

    path: str = Field(min_length=1)
    partitions: dict[str, PartitionValue | list[PartitionValue]] = Field(default_factory=dict)
    passthrough: list[str] = Field(default_factory=list)
    allow_empty: bool = False
    on_corrupt_file: Literal["fail", "skip"] = "fail"
    invalid_features: Literal["fail", "fill", "quarantine"] = "fail"
    fill_value: float = 0.0
    sample_fraction: float | None = Field(default=None, gt=0.0, le=1.0)

    @field_validator("partitions", mode="before")
    @classmethod
    def _partition_values_are_strings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            out = {}
            for key, val in value.items():
                if isinstance(val, (list, tuple)):
                    out[key] = [_as_str(v) for v in val]
                else:
                    out[key] = _as_str(val)
            return out
        return value

    @field_validator("passthrough")
    @classmethod
    def _no_duplicate_passthrough(cls, value: list[str]) -> list[str]:
        dupes = sorted({c for c in value if value.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate passthrough columns {dupes}")
        return value

    def partition_filter(self) -> dict[str, list[str]]:
        return {k: (v if isinstance(v, list) else [v]) for k, v in self.partitions.items()}


class TensorInputConfig(_Strict):
    """How one ONNX input is built: many scalar columns → [N, F], or one array column → [N, D]."""

    columns: list[str] | None = Field(default=None, min_length=1)
    column: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> TensorInputConfig:
        if (self.columns is None) == (self.column is None):
            raise ValueError(
                "give exactly one of 'columns' (scalar columns stacked into [N, F]) "
                "or 'column' (one array column → [N, D])"
            )
        return self

    @property
    def source_columns(self) -> list[str]:
        return list(self.columns) if self.columns is not None else [self.column]  # type: ignore[list-item]


class OutputColumnConfig(_Strict):
    """One column derived from an ONNX output.

    As is (``{column: x}``), one class of a [N, C] output (``select: 1``), the argmax label
    (``argmax: true``, optionally named by ``classes``), the largest value (``max: true``: the
    argmax label's probability), or the ``top_k`` labels best first as an array column, with
    their scores in the sibling array column ``scores_column`` (default ``<column>_scores``).
    An output may feed several columns: give a list of these mappings.
    """

    column: str = Field(min_length=1)
    select: int | None = Field(default=None, ge=0)
    argmax: bool = False
    max: bool = False
    top_k: int | None = Field(default=None, ge=1)
    classes: list[str] | None = Field(default=None, min_length=1)
    scores_column: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> OutputColumnConfig:
        chosen = [
            name
            for name, on in (
                ("select", self.select is not None),
                ("argmax", self.argmax),
                ("max", self.max),
                ("top_k", self.top_k is not None),
            )
            if on
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"{' and '.join(repr(c) for c in chosen)} are exclusive: give one derivation per column "
                "(a list of columns can derive several from one output)"
            )
        if self.classes is not None and not (self.argmax or self.top_k is not None):
            raise ValueError(
                "'classes' names the labels of 'argmax' or 'top_k': set 'argmax: true' or 'top_k: K' too"
            )
        if self.classes is not None:
            dupes = sorted({c for c in self.classes if self.classes.count(c) > 1})
            if dupes:
                raise ValueError(f"'classes' lists {dupes} twice; class names must be unique")
        if self.top_k is not None and self.classes is not None and self.top_k > len(self.classes):
            raise ValueError(f"top_k={self.top_k} is more than the {len(self.classes)} classes given")
        if self.scores_column is not None and self.top_k is None:
            raise ValueError("'scores_column' names the scores of 'top_k': set 'top_k: K' too")
        return self

    @property
    def columns(self) -> list[str]:
        """The output columns this mapping makes (top_k: the labels, then their scores)."""
        if self.top_k is None:
            return [self.column]
        return [self.column, self.scores_column or f"{self.column}_scores"]


def _output_column_names(item: Any) -> list[str]:
    """The columns one raw output mapping makes (lenient: for problems in unvalidated data)."""
    if not isinstance(item, Mapping) or not isinstance(item.get("column"), str):
        return []
    names = [item["column"]]
    if item.get("top_k") is not None:
        scores = item.get("scores_column")
        names.append(scores if isinstance(scores, str) else f"{item['column']}_scores")
    return names


_HOOK_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ModelConfig(_Strict):
    path: str | None = None
    card: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    inputs: dict[str, TensorInputConfig] = Field(min_length=1)
    # Each ONNX output → one column mapping, or a list of them (several columns from one output).
    outputs: dict[str, Annotated[list[OutputColumnConfig], Field(min_length=1)]] = Field(min_length=1)
    # Opt-in custom code by importable name only (needs runtime.allow_custom_code; scoring/custom.py).
    preprocess: str | None = Field(default=None, pattern=_HOOK_PATTERN)
    postprocess: str | None = Field(default=None, pattern=_HOOK_PATTERN)

    @field_validator("outputs", mode="before")
    @classmethod
    def _one_or_many_columns(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: [v] if isinstance(v, Mapping) else v for k, v in value.items()}
        return value

    @field_serializer("outputs", mode="wrap")
    def _dump_one_as_mapping(self, value: dict, handler) -> dict:
        # Dump a single mapping the way it is usually written (and as configs were before lists).
        return {k: v[0] if len(v) == 1 else v for k, v in handler(value).items()}

    @property
    def output_columns(self) -> list[str]:
        """Every output column the model mappings make, in config order."""
        return [c for cols in self.outputs.values() for o in cols for c in o.columns]

    @model_validator(mode="after")
    def _path_or_card(self) -> ModelConfig:
        if (self.path is None) == (self.card is None):
            raise ValueError("give exactly one of 'path' (an .onnx file) or 'card' (a model card JSON)")
        return self


class LineageConfig(_Strict):
    """Lineage columns added to every output row (set a name to null to leave it out)."""

    model_digest: str | None = "model_sha256"
    run_id: str | None = "run_id"


class IcebergConfig(_Strict):
    """``output.format: iceberg``: the table and the catalog that tracks it.

    ``catalog`` holds pyiceberg catalog properties, passed through as written: a SQL catalog on
    SQLite (``{type: sql, uri: "sqlite:////var/lib/batchinfer/catalog.db"}``) for tests and single
    machines; ``rest`` (``uri``, ``credential``/``token``, ``warehouse``), ``glue`` or ``hive``
    (``uri: thrift://...``) as pyiceberg supports them. The table lives at ``output.path``.
    """

    # namespace.table (nested namespaces: a.b.table)
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$", max_length=256)
    catalog_name: str = Field(default="batchinfer", pattern=r"^[A-Za-z0-9_-]+$")
    catalog: dict[str, str | int | float | bool] = Field(default_factory=dict)


ICEBERG_CATALOG_TYPES = ("sql", "rest", "glue", "hive", "dynamodb", "in-memory")


class OutputConfig(_Strict):
    path: str = Field(min_length=1)
    partition_by: list[str] = Field(default_factory=list)
    # overwrite_partitions_force also replaces partitions holding files no batchinfer run wrote.
    mode: Literal["overwrite_partitions", "error_if_exists", "append", "overwrite_partitions_force"] = (
        "overwrite_partitions"
    )
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    compression: Literal["snappy", "zstd", "gzip", "none", "lz4"] = "snappy"
    # auto: the Python workers that score also write the Parquet files (pyarrow); spark: Spark's writer.
    writer: Literal["auto", "spark", "pyarrow"] = "auto"
    # parquet: partition directories swapped by rename; delta: one Delta transaction per run;
    # iceberg: one Iceberg snapshot per run (both atomic on object stores too; need the
    # `deltalake` / `pyiceberg` packages, see docs/storage.md).
    format: Literal["parquet", "delta", "iceberg"] = "parquet"
    iceberg: IcebergConfig | None = None


class RuntimeConfig(_Strict):
    # Which engine schedules the tasks (batchinfer/engines): auto resolves from spark.remote,
    # SPARK_REMOTE, spark-submit and spark.master; `batchinfer validate` says what it chose and why.
    engine: Literal["auto", "spark", "spark-connect", "local"] = "auto"
    # auto: each worker measures its model's memory per row and sizes batches (at most 10,000
    # rows) to worker_memory (scoring/batch_size.py); a number: that many rows per call.
    batch_rows: Literal["auto"] | Annotated[int, Field(ge=1, le=10_000_000)] = "auto"
    # Memory one scoring worker may use with batch_rows auto: "4g", "512m", a number of bytes, or
    # auto (the executor's memory / its task slots; see scoring/batch_size.py default_worker_memory).
    worker_memory: str | int | None = None
    threads_per_task: int = Field(default=1, ge=1, le=256)
    # Embedded engine only: worker processes (default: usable cores // threads_per_task).
    workers: int | None = Field(default=None, ge=1, le=1024)
    # Must be true for model.preprocess / model.postprocess hooks to be allowed.
    allow_custom_code: bool = False
    device: Literal["auto", "cpu", "gpu"] = "cpu"
    # Rows per onnxruntime call when CUDA is in use (default 65,536; see docs/gpu.md).
    gpu_batch_rows: int | None = Field(default=None, ge=1, le=10_000_000)
    # GPU only: put TensorRT before CUDA; engines are cached in trt_cache_dir (per executor host).
    tensorrt: bool = False
    trt_cache_dir: str | None = None
    # auto: executors read Parquet row groups with pyarrow unless a check needs the input in Spark.
    reader: Literal["auto", "spark", "pyarrow"] = "auto"
    dry_run: bool = False
    # A model card's canary batch over budget on a worker (other CPU/GPU/build): fail (exit 4) or warn.
    on_canary_mismatch: Literal["fail", "warn"] = "fail"

    @field_validator("batch_rows", mode="before")
    @classmethod
    def _batch_rows(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        rows = None
        if isinstance(value, int) and not isinstance(value, bool):
            rows = value
        elif isinstance(value, float) and value.is_integer():
            rows = int(value)
        elif isinstance(value, str) and value.strip().isdigit():
            rows = int(value.strip())
        if rows is None or not 1 <= rows <= 10_000_000:
            raise ValueError("must be auto or a whole number of rows from 1 to 10,000,000")
        return rows

    @field_validator("worker_memory", mode="before")
    @classmethod
    def _worker_memory(cls, value: Any) -> Any:
        from batchinfer.scoring.batch_size import MIN_WORKER_MEMORY, format_memory, parse_memory

        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        try:
            size = parse_memory(value)
        except ValueError:
            raise ValueError("expected a memory size such as 4g or 512m, or auto") from None
        if size < MIN_WORKER_MEMORY:
            raise ValueError(f"must be at least {format_memory(MIN_WORKER_MEMORY)}")
        return value


class SparkConfig(_Strict):
    master: str | None = None
    # A Spark Connect endpoint (sc://host:port, or local[N] for a local Connect server).
    remote: str | None = None
    app_name: str | None = None
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)


class JobConfig(_Strict):
    """A whole scoring job. Build with :func:`load_config` or ``JobConfig.model_validate``."""

    job: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=128)
    description: str | None = None
    input: InputConfig
    model: ModelConfig
    output: OutputConfig
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)
    quarantine: QuarantineConfig = Field(default_factory=QuarantineConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)

    @model_validator(mode="after")
    def _columns_consistent(self) -> JobConfig:
        problems = cross_field_problems(self.model_dump(mode="json"))
        if problems:
            raise ValueError("; ".join(f"{p}: {m}" for p, m in problems))
        return self

    def digest(self) -> str:
        """sha256 of the canonical resolved config (what the manifest records)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------- cross-field checks


def _section(data: Any, key: str) -> Mapping:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def cross_field_problems(data: Mapping) -> list[tuple[str, str]]:
    """Problems that span sections (``output.partition_by`` vs ``input.passthrough``...).

    Works on the raw mapping, leniently (a value of the wrong type is skipped; the field check
    reports it), so these problems are reported together with field errors, not after them.
    """
    inp, model, out = _section(data, "input"), _section(data, "model"), _section(data, "output")
    runtime, quarantine = _section(data, "runtime"), _section(data, "quarantine")
    problems: list[tuple[str, str]] = []
    hooks = [f"model.{n}" for n in ("preprocess", "postprocess") if model.get(n)]
    if hooks and runtime.get("allow_custom_code") is not True:
        problems.append((hooks[0], "custom code is off (set runtime.allow_custom_code: true to run it)"))
    if inp.get("invalid_features") == "quarantine" and quarantine.get("enabled") is not True:
        problems.append(
            (
                "input.invalid_features",
                "'quarantine' needs the quarantine section: set quarantine.enabled: true and quarantine.path",
            )
        )
    q_path, o_path = quarantine.get("path"), out.get("path")
    if quarantine.get("enabled") is True and isinstance(q_path, str) and q_path and isinstance(o_path, str):
        from batchinfer.io.filesystem import resolve

        q, o = resolve(q_path).uri.rstrip("/") + "/", resolve(o_path).uri.rstrip("/") + "/"
        if q.startswith(o) or o.startswith(q):
            problems.append(("quarantine.path", "must not equal, contain or sit inside output.path"))
    outputs = model.get("outputs") if isinstance(model.get("outputs"), Mapping) else {}
    out_cols = [
        c
        for mapping in outputs.values()
        for item in (mapping if isinstance(mapping, list) else [mapping])
        for c in _output_column_names(item)
    ]
    passthrough = _strings(inp.get("passthrough"))
    dupes = sorted({c for c in out_cols if out_cols.count(c) > 1})
    if dupes:
        problems.append(("model.outputs", f"column names {dupes} are used twice"))
    clash = sorted(set(out_cols) & set(passthrough))
    if clash:
        problems.append(
            (
                "model.outputs",
                f"output columns {clash} collide with input.passthrough columns; rename the output column",
            )
        )
    lineage = _section(out, "lineage")
    defaults = LineageConfig()
    names = [lineage.get(k, getattr(defaults, k)) for k in ("model_digest", "run_id")]
    lineage_cols = [c for c in names if isinstance(c, str) and c]
    clash = sorted(set(lineage_cols) & (set(out_cols) | set(passthrough)))
    if clash:
        problems.append(("output.lineage", f"lineage columns {clash} collide with other output columns"))
    problems += _iceberg_problems(out)
    missing = [c for c in _strings(out.get("partition_by")) if c not in passthrough and c not in out_cols]
    if missing:
        problems.append(
            (
                "output.partition_by",
                f"{missing} are not output columns; add them to input.passthrough (e.g. passthrough: [..., ds])",
            )
        )
    return problems


def _iceberg_problems(out: Mapping) -> list[tuple[str, str]]:
    """``output.format: iceberg`` needs ``output.iceberg`` (table + catalog), and only it does."""
    fmt, section = out.get("format", "parquet"), out.get("iceberg")
    example = "e.g. iceberg: {table: scores.churn, catalog: {type: sql, uri: 'sqlite:///catalog.db'}}"
    if fmt != "iceberg":
        if section is not None and fmt in ("parquet", "delta"):
            return [("output.iceberg", f"is only read with output.format: iceberg (format is {fmt})")]
        return []
    if not isinstance(section, Mapping):
        if section is None:
            return [("output.iceberg", f"output.format: iceberg needs the table and its catalog ({example})")]
        return []  # the field check reports the wrong type
    problems = []
    if not section.get("table"):
        problems.append(("output.iceberg.table", f"missing: name the table as namespace.table ({example})"))
    catalog = section.get("catalog")
    if isinstance(catalog, Mapping):
        kind = catalog.get("type")
        if kind is None and not catalog.get("uri") and not catalog.get("py-catalog-impl"):
            problems.append(
                (
                    "output.iceberg.catalog",
                    f"names no catalog: give its type ({', '.join(ICEBERG_CATALOG_TYPES)}) and uri ({example})",
                )
            )
        elif kind is not None and kind not in ICEBERG_CATALOG_TYPES:
            problems.append(
                (
                    "output.iceberg.catalog.type",
                    f"expected one of {', '.join(ICEBERG_CATALOG_TYPES)}, got {kind!r}",
                )
            )
        elif kind == "sql" and not catalog.get("uri"):
            problems.append(
                (
                    "output.iceberg.catalog.uri",
                    "a sql catalog needs a database uri, e.g. 'sqlite:///catalog.db'",
                )
            )
    elif catalog is None:
        problems.append(("output.iceberg.catalog", f"missing: the pyiceberg catalog properties ({example})"))
    return problems


def expectation_problems(data: Mapping) -> list[tuple[str, str]]:
    """Expectation names and arguments (checked against the static GX table) of parseable specs.

    A spec that does not parse is judged without its invalid fields (the field check reports those).
    """
    from pydantic import ValidationError as _Invalid

    from batchinfer.checks.expectations import ExpectationSpec, spec_problems, unparsed_spec_problems

    checks = _section(data, "checks")
    problems: list[tuple[str, str]] = []
    for stage in ("input", "output"):
        specs = checks.get(stage)
        for i, raw in enumerate(specs if isinstance(specs, list) else []):
            where = f"checks.{stage}[{i}]"
            try:
                spec = ExpectationSpec.model_validate(raw)
            except _Invalid as exc:
                problems += unparsed_spec_problems(raw, exc, where)
                continue
            problems += spec_problems(spec, where)
    return problems


# --------------------------------------------------------------------------- loading

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class LoadedConfig:
    """A validated config plus where it came from and which values are secrets."""

    def __init__(self, config: JobConfig, sources: list[str], secrets: list[str]) -> None:
        self.config = config
        self.sources = sources
        self.secrets = secrets


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        text = path.read_text()
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} not found", hint="check the path; is this a typo?") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must be a YAML mapping at the top level, got {type(data).__name__}"
        )
    return data


def _parse_override_value(raw: str) -> Any:
    import yaml

    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        return raw
    if isinstance(value, (_dt.date, _dt.datetime)):
        return raw
    return value


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    """Apply ``a.b.c=value`` overrides; bad syntax is a ConfigError naming the override.

    A part with dots is quoted (``spark.conf."spark.sql.shuffle.partitions"=8``); under
    ``spark.conf`` the rest of the path is one Spark property anyway. A mapping value merges into
    the mapping already there (``--set 'spark.conf={a: 1}'`` adds ``a``); ``KEY=null`` clears.
    """
    from batchinfer.layering import set_path, split_key_path

    data = json.loads(json.dumps(data, default=str))  # deep copy, dates → str
    problems = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        try:
            parts = split_key_path(key) if sep and key else None
        except ValueError as exc:
            problems.append(
                (f"--set {item}", f"{exc}; expected KEY.PATH=VALUE, e.g. input.partitions.ds=2026-11-28")
            )
            continue
        if parts is None:
            problems.append((f"--set {item}", "expected KEY.PATH=VALUE, e.g. input.partitions.ds=2026-11-28"))
            continue
        why = set_path(data, parts, _parse_override_value(raw))
        if why:
            problems.append((key, why))
    if problems:
        raise ConfigError("invalid --set override", problems=problems)
    return data


def interpolate_env(data: Any, environ: Mapping[str, str], secrets: list[str], path: str = "") -> Any:
    """Replace explicit ``${env:NAME}`` markers; record substituted values as secrets."""
    if isinstance(data, dict):
        return {
            k: interpolate_env(v, environ, secrets, f"{path}.{k}" if path else str(k))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [interpolate_env(v, environ, secrets, f"{path}[{i}]") for i, v in enumerate(data)]
    if isinstance(data, str) and "${env:" in data:
        missing = []

        def repl(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                value = environ[name]
                if value:  # only what came from the environment is secret; a default is in the file
                    secrets.append(value)
            elif default is not None:
                value = default
            else:
                missing.append(name)
                return match.group(0)
            return value

        result = _ENV_REF.sub(repl, data)
        if missing:
            raise ConfigError(
                "config refers to unset environment variables",
                problems=[(path, f"environment variable {n} is not set") for n in missing],
                hint="export it, or give a default with ${env:NAME:-default}",
            )
        return result
    return data


def overlay_for_env(base_path: Path, env: str) -> Path:
    """``conf/base/job.yaml`` + env ``prod`` → ``conf/prod/job.yaml`` (Kedro-style layers)."""
    base_dir = base_path.parent
    root = base_dir.parent if base_dir.name == "base" else base_dir
    return root / env / base_path.name


def validation_problems(exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) pairs for a pydantic error, e.g. ``("checks.input[0].mostly", ...)``."""
    return [p for per_error in _problems_per_error(exc) for p in per_error]


def _problems_per_error(exc: ValidationError) -> list[list[tuple[str, str]]]:
    out = []
    for err in exc.errors():
        problems: list[tuple[str, str]] = []
        out.append(problems)
        loc = field_path(err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key; is this a typo?"
        elif err["type"] == "missing":
            msg = "required key is missing"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        if (
            err["type"] not in ("extra_forbidden", "missing")
            and "input" in err
            and not isinstance(err["input"], (dict, list))
        ):
            msg = f"{msg} (got {err['input']!r})"
        if err["type"] == "value_error" and isinstance(err.get("input"), dict):
            problems.extend(_split_cross_field(loc, msg))
            continue
        problems.append((loc, msg))
    return out


_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): (.+)$", re.S)


def _split_cross_field(loc: str, msg: str) -> list[tuple[str, str]]:
    """A section validator reports "a.b: why; c.d: why": give each problem its own field path."""
    out: list[tuple[str, str]] = []
    for part in msg.split("; "):
        match = _FIELD_PREFIX.match(part)
        if match:
            field = match.group(1)
            path = field if loc == "(top level)" else f"{loc}.{field}"
            out.append((path, match.group(2)))
        elif out:
            out[-1] = (out[-1][0], f"{out[-1][1]}; {part}")
        else:
            out.append((loc, part))
    return out


_OUTPUT_ITEM = re.compile(r"^model\.outputs\.([^.\[]+)\[0\]")


def _as_written(path: str, data: Mapping) -> str:
    """``model.outputs.x[0].top_k`` → ``model.outputs.x.top_k`` where ``x`` was given as one mapping."""
    match = _OUTPUT_ITEM.match(path)
    if match:
        written = _section(_section(data, "model"), "outputs").get(match.group(1))
        if isinstance(written, Mapping):
            return f"model.outputs.{match.group(1)}" + path[match.end() :]
    return path


def validate_data(data: Mapping, *, source: str = "config") -> JobConfig:
    """Validate an already-merged mapping, collecting every problem into one ConfigError.

    One pass reports them all: field errors, cross-field problems (checked on the raw mapping,
    so they do not wait for the field errors to be fixed) and expectation arguments.
    """
    config, cause, problems = None, None, []
    try:
        config = JobConfig.model_validate(data)
    except ValidationError as exc:
        cause = exc
        # The top-level cross-field validator only runs once every field is valid: recheck below.
        for err, found in zip(exc.errors(), _problems_per_error(exc), strict=True):
            if not (err["loc"] == () and err["type"] == "value_error"):
                problems += found
    problems += cross_field_problems(data) + expectation_problems(data)
    problems = [(_as_written(path, data), msg) for path, msg in problems]
    problems = list(dict.fromkeys(problems))  # a section validator and the raw check may agree
    if problems:
        raise ConfigError(f"{source} has {len(problems)} problem(s)", problems=problems) from cause
    return config


def load_config_full(
    path: str | os.PathLike | Mapping,
    *,
    overrides: Sequence[str] = (),
    overlays: Sequence[str | os.PathLike] = (),
    env: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Load, layer, override, interpolate and validate a job config."""
    environ = os.environ if environ is None else environ
    sources: list[str] = []
    if isinstance(path, Mapping):
        data = dict(path)
        sources.append("<mapping>")
        label = "config"
    else:
        base = Path(path)
        data = _read_yaml(base)
        sources.append(str(base))
        label = str(base)
        layer_paths = [Path(p) for p in overlays]
        if env:
            env_path = overlay_for_env(base, env)
            if not env_path.exists():
                raise ConfigError(
                    f"environment overlay {env_path} for env {env!r} not found",
                    hint=f"create {env_path} or drop --env",
                )
            layer_paths.insert(0, env_path)
        for layer in layer_paths:
            data = deep_merge(data, _read_yaml(layer))
            sources.append(str(layer))
    data = apply_overrides(data, overrides)
    secrets: list[str] = []
    data = interpolate_env(data, environ, secrets)
    from batchinfer.io.storage import secret_values
    from batchinfer.redaction import REDACTOR

    # Store credentials written in clear (spark.hadoop.fs.s3a.secret.key ...) are secrets too.
    spark_section = data.get("spark") if isinstance(data, Mapping) else None
    secrets.extend(secret_values(spark_section.get("conf") if isinstance(spark_section, Mapping) else None))

    REDACTOR.remember(secrets)  # before validation: its messages quote the values they reject
    try:
        config = validate_data(data, source=label)
    except ConfigError as exc:
        REDACTOR.scrub(exc)
        raise
    return LoadedConfig(config, sources, secrets)


def load_config(
    path: str | os.PathLike | Mapping,
    *,
    overrides: Sequence[str] = (),
    overlays: Sequence[str | os.PathLike] = (),
    env: str | None = None,
) -> JobConfig:
    """Load and validate a job config; see :func:`load_config_full` for the details."""
    return load_config_full(path, overrides=overrides, overlays=overlays, env=env).config


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """Replace every occurrence of a secret string inside nested data with ``***``."""
    from batchinfer.redaction import redact as _redact

    return _redact(value, secrets)
