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
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from batchinfer.checks.drift_policy import DriftConfig
from batchinfer.checks.expectations import ChecksConfig
from batchinfer.checks.quarantine import QuarantineConfig
from batchinfer.errors import ConfigError
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
    """How one ONNX output becomes a column: as is, one class selected, or an argmax label."""

    column: str = Field(min_length=1)
    select: int | None = Field(default=None, ge=0)
    argmax: bool = False
    classes: list[str] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OutputColumnConfig:
        if self.select is not None and self.argmax:
            raise ValueError("'select' and 'argmax' are exclusive: keep one class or the argmax label")
        if self.classes is not None and not self.argmax:
            raise ValueError("'classes' names the argmax label values: set 'argmax: true' too")
        return self


_HOOK_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class ModelConfig(_Strict):
    path: str | None = None
    card: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    inputs: dict[str, TensorInputConfig] = Field(min_length=1)
    outputs: dict[str, OutputColumnConfig] = Field(min_length=1)
    # Opt-in custom code by importable name only (needs runtime.allow_custom_code; scoring/custom.py).
    preprocess: str | None = Field(default=None, pattern=_HOOK_PATTERN)
    postprocess: str | None = Field(default=None, pattern=_HOOK_PATTERN)

    @model_validator(mode="after")
    def _path_or_card(self) -> ModelConfig:
        if (self.path is None) == (self.card is None):
            raise ValueError("give exactly one of 'path' (an .onnx file) or 'card' (a model card JSON)")
        return self


class LineageConfig(_Strict):
    """Lineage columns added to every output row (set a name to null to leave it out)."""

    model_digest: str | None = "model_sha256"
    run_id: str | None = "run_id"


class OutputConfig(_Strict):
    path: str = Field(min_length=1)
    partition_by: list[str] = Field(default_factory=list)
    mode: Literal["overwrite_partitions", "error_if_exists", "append"] = "overwrite_partitions"
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    compression: Literal["snappy", "zstd", "gzip", "none", "lz4"] = "snappy"
    # auto: the Python workers that score also write the Parquet files (pyarrow); spark: Spark's writer.
    writer: Literal["auto", "spark", "pyarrow"] = "auto"


class RuntimeConfig(_Strict):
    batch_rows: int = Field(default=10_000, ge=1, le=10_000_000)
    threads_per_task: int = Field(default=1, ge=1, le=256)
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


class SparkConfig(_Strict):
    master: str | None = None
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
        problems = []
        hooks = [f"model.{n}" for n in ("preprocess", "postprocess") if getattr(self.model, n)]
        if hooks and not self.runtime.allow_custom_code:
            problems.append(f"{hooks[0]}: custom code is off (set runtime.allow_custom_code: true to run it)")
        if self.input.invalid_features == "quarantine" and not self.quarantine.enabled:
            problems.append(
                "input.invalid_features: 'quarantine' needs the quarantine section: "
                "set quarantine.enabled: true and quarantine.path"
            )
        if self.quarantine.enabled and self.quarantine.path:
            from batchinfer.io.filesystem import resolve

            q, o = (
                resolve(self.quarantine.path).uri.rstrip("/") + "/",
                resolve(self.output.path).uri.rstrip("/") + "/",
            )
            if q.startswith(o) or o.startswith(q):
                problems.append("quarantine.path: must not equal, contain or sit inside output.path")
        out_cols = [o.column for o in self.model.outputs.values()]
        dupes = sorted({c for c in out_cols if out_cols.count(c) > 1})
        if dupes:
            problems.append(f"model.outputs: column names {dupes} are used twice")
        clash = sorted(set(out_cols) & set(self.input.passthrough))
        if clash:
            problems.append(
                f"model.outputs: output columns {clash} collide with input.passthrough columns; "
                "rename the output column"
            )
        lineage = [c for c in (self.output.lineage.model_digest, self.output.lineage.run_id) if c]
        clash = sorted(set(lineage) & (set(out_cols) | set(self.input.passthrough)))
        if clash:
            problems.append(f"output.lineage: lineage columns {clash} collide with other output columns")
        missing = [
            c for c in self.output.partition_by if c not in self.input.passthrough and c not in out_cols
        ]
        if missing:
            problems.append(
                f"output.partition_by: {missing} are not output columns; "
                "add them to input.passthrough (e.g. passthrough: [..., ds])"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def digest(self) -> str:
        """sha256 of the canonical resolved config (what the manifest records)."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


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
    problems = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
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
    return problems


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


def validate_data(data: Mapping, *, source: str = "config") -> JobConfig:
    """Validate an already-merged mapping, collecting every problem into one ConfigError."""
    try:
        return JobConfig.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc)
        raise ConfigError(f"{source} has {len(problems)} problem(s)", problems=problems) from exc


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
    config = validate_data(data, source=label)
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
    secrets = [s for s in secrets if s]
    if not secrets:
        return value
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for s in sorted(secrets, key=len, reverse=True):
            value = value.replace(s, "***")
    return value
