"""Quarantine: set aside the rows the model cannot (or should not) score, with a reason.

Rules are Spark column expressions (no Python UDF), so the split costs no more than a
filter. A quarantined row carries ``_quarantine_reason``, e.g. ``"f3 is NaN"`` or
``"f3 is NaN; country not in set"``.

Rules:

``null_features``
    a model feature column is null (or, for array features, has a null element).
``non_finite_features``
    a float/double feature is NaN or ±infinity (also inside array features).
``input_checks``
    the row-level expectations from ``checks.input``: ``not_null``, ``between`` (out of
    range), ``in_set`` (unknown category), ``not_in_set``, ``match_regex``. As in Great
    Expectations, nulls only break ``not_null``. ``mostly`` and ``severity`` do not apply
    to single rows: every row breaking one of these checks is quarantined.

The quarantine budget becomes one check outcome (stage ``quarantine``)::

    >>> quarantine_outcome(1000, 20, 0.01).status
    'failed'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from batchinfer.checks.expectations import ExpectationSpec
from batchinfer.checks.gate import CheckOutcome
from batchinfer.errors import ConfigError, InputDataError

QuarantineRule = Literal["null_features", "non_finite_features", "input_checks"]
DEFAULT_RULES: tuple[QuarantineRule, ...] = ("null_features", "non_finite_features")
ALL_RULES: tuple[str, ...] = ("null_features", "non_finite_features", "input_checks")
REASON_COLUMN = "_quarantine_reason"


class QuarantineConfig(BaseModel):
    """The ``quarantine:`` section of a job config."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    path: str | None = Field(default=None, description="where quarantined rows are written")
    max_fraction: float = Field(
        default=0.01, ge=0.0, le=1.0, description="largest tolerated quarantined share of rows"
    )
    rules: list[QuarantineRule] = Field(default_factory=lambda: list(DEFAULT_RULES))
    reasons: Literal["first", "all"] = Field(
        default="all", description="name every broken rule in the reason, or only the first"
    )

    @model_validator(mode="after")
    def _path_when_enabled(self) -> QuarantineConfig:
        if self.enabled and not self.path:
            raise ValueError("'path' is required when quarantine is enabled (where bad rows go)")
        return self


def split_rows(
    df: Any,
    *,
    feature_columns: Sequence[str],
    specs: Sequence[ExpectationSpec | dict] = (),
    rules: Sequence[str] = DEFAULT_RULES,
    reasons: Literal["first", "all"] = "all",
) -> tuple[Any, Any]:
    """Split ``df`` into ``(clean_df, quarantined_df)`` by the quarantine ``rules``.

    ``specs`` (usually ``checks.input``) are used when ``"input_checks"`` is in ``rules``;
    only their row-level expectations apply. ``quarantined_df`` has every column of ``df``
    plus ``_quarantine_reason``; ``clean_df`` has exactly the columns of ``df``.

    Both results share one lineage: persist ``df`` first if you count or write both.

    Raises:
        ConfigError: an unknown rule or ``reasons`` mode, or an invalid spec.
        InputDataError: a feature or check column is not in ``df``, or ``df`` already has a
            ``_quarantine_reason`` column.
    """
    from pyspark.sql import functions as F

    unknown = [r for r in rules if r not in ALL_RULES]
    if unknown:
        raise ConfigError(
            "Invalid quarantine rules",
            problems=[("quarantine.rules", f"unknown rule(s) {unknown}; use any of {list(ALL_RULES)}")],
        )
    if reasons not in ("first", "all"):
        raise ConfigError(
            "Invalid quarantine reasons mode",
            problems=[("quarantine.reasons", f"expected 'first' or 'all', got {reasons!r}")],
        )
    if REASON_COLUMN in df.columns:
        raise InputDataError(
            f"input already has a {REASON_COLUMN!r} column",
            hint="drop or rename it; quarantine writes the reason there",
        )
    row_specs = _row_level_specs(specs) if "input_checks" in rules else []
    _require_columns(df, list(feature_columns), "feature column")
    _require_columns(df, [s.column for s in row_specs if s.column is not None], "checked column")

    fields = {f.name: f.dataType for f in df.schema.fields}
    broken: list[tuple[Any, str]] = []  # (condition, reason)
    for name in feature_columns:
        broken += _feature_conditions(name, fields[name], rules)
    for spec in row_specs:
        broken += _spec_conditions(spec)

    if not broken:
        empty = df.limit(0).withColumn(REASON_COLUMN, F.lit(None).cast("string"))
        return df, empty

    labels = [F.when(cond, F.lit(reason)) for cond, reason in broken]
    if reasons == "first":
        reason_expr = F.coalesce(*labels)
    else:  # concat_ws skips nulls, so an all-clean row gets "" -> null
        reason_expr = F.nullif(F.concat_ws("; ", *labels), F.lit(""))
    tagged = df.withColumn(REASON_COLUMN, reason_expr)
    clean = tagged.where(F.col(REASON_COLUMN).isNull()).drop(REASON_COLUMN)
    quarantined = tagged.where(F.col(REASON_COLUMN).isNotNull())
    return clean, quarantined


def quarantine_outcome(n_total: int, n_quarantined: int, max_fraction: float) -> CheckOutcome:
    """The quarantine budget as a check: fails when the quarantined share exceeds ``max_fraction``.

    >>> o = quarantine_outcome(1000, 5, 0.01)
    >>> o.passed, o.observed
    (True, 0.005)
    """
    if n_total < 0 or n_quarantined < 0:
        raise ValueError(f"row counts must be >= 0, got n_total={n_total}, n_quarantined={n_quarantined}")
    if n_quarantined > n_total:
        raise ValueError(f"n_quarantined ({n_quarantined}) cannot exceed n_total ({n_total})")
    if not 0.0 <= max_fraction <= 1.0:
        raise ValueError(f"max_fraction must be between 0 and 1, got {max_fraction}")
    fraction = n_quarantined / n_total if n_total else 0.0
    passed = fraction <= max_fraction
    message = f"{n_quarantined} of {n_total} rows quarantined ({100 * fraction:.4g}%)"
    if not passed:
        message += f", above the allowed {100 * max_fraction:.4g}%"
    return CheckOutcome(
        stage="quarantine",
        check="quarantined_fraction",
        passed=passed,
        severity="fail",
        observed=fraction,
        threshold=max_fraction,
        unexpected_percent=100 * fraction,
        message=message,
        details={"n_total": n_total, "n_quarantined": n_quarantined},
    )


def rows_by_partition(files: Sequence[tuple[str, int]]) -> dict[str, int]:
    """Quarantined rows per partition, from (path relative to the table, rows) per written file.

    The partition is the file's Hive directory (``ds=2026-11-28``, values unescaped, as the input's
    partitions are labelled); a file at the top of the table counts under ``(all)``.

    >>> rows_by_partition([("ds=2026-11-28/part-0.parquet", 3), ("ds=2026-11-28/part-1.parquet", 1),
    ...                    ("ds=2026-11-27/part-0.parquet", 0), ("part-0.parquet", 2)])
    {'ds=2026-11-27': 0, 'ds=2026-11-28': 4, '(all)': 2}
    """
    from urllib.parse import unquote

    out: dict[str, int] = {}
    for rel, rows in files:
        parent = rel.rpartition("/")[0]
        label = "/".join(unquote(seg) for seg in parent.split("/") if "=" in seg) or "(all)"
        out[label] = out.get(label, 0) + int(rows)
    return dict(sorted(out.items(), key=lambda kv: (kv[0] == "(all)", kv[0])))


def _row_level_specs(specs: Sequence[ExpectationSpec | dict]) -> list[ExpectationSpec]:
    from pydantic import ValidationError

    from batchinfer.checks.expectations import pydantic_problems

    out, problems = [], []
    for i, s in enumerate(specs):
        try:
            spec = s if isinstance(s, ExpectationSpec) else ExpectationSpec.model_validate(s)
        except ValidationError as exc:
            problems += pydantic_problems(exc, prefix=f"checks.input[{i}]")
            continue
        if spec.is_row_level:
            out.append(spec)
    if problems:
        raise ConfigError("Invalid expectations", problems=problems)
    return out


def _require_columns(df: Any, names: list[str], what: str) -> None:
    missing = [n for n in dict.fromkeys(names) if n not in df.columns]
    if missing:
        raise InputDataError(
            f"{what}(s) {missing} not in the data; available: {sorted(df.columns)}",
            hint="check the column names in the job config",
        )


def _feature_conditions(name: str, dtype: Any, rules: Sequence[str]) -> list[tuple[Any, str]]:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    col = F.col(name)
    out: list[tuple[Any, str]] = []
    is_float = isinstance(dtype, (T.FloatType, T.DoubleType))
    if "null_features" in rules:
        out.append((col.isNull(), f"{name} is null"))
    if "non_finite_features" in rules and is_float:
        out.append((F.isnan(col), f"{name} is NaN"))
        out.append((col.isin(float("inf"), float("-inf")), f"{name} is infinite"))
    if isinstance(dtype, T.ArrayType):
        elem_float = isinstance(dtype.elementType, (T.FloatType, T.DoubleType))
        if "null_features" in rules:
            out.append((F.exists(col, lambda x: x.isNull()), f"{name} has a null element"))
        if "non_finite_features" in rules and elem_float:
            out.append((F.exists(col, lambda x: F.isnan(x)), f"{name} has a NaN element"))
            out.append(
                (
                    F.exists(col, lambda x: x.isin(float("inf"), float("-inf"))),
                    f"{name} has an infinite element",
                )
            )
    return out


def _spec_conditions(spec: ExpectationSpec) -> list[tuple[Any, str]]:
    from pyspark.sql import functions as F

    kw = spec.gx_kwargs()
    name = spec.column
    if name is None:
        return []
    col = F.col(name)
    t = spec.gx_type
    if t == "expect_column_values_to_not_be_null":
        return [(col.isNull(), f"{name} is null")]
    if t == "expect_column_values_to_be_between":
        lo, hi = kw.get("min_value"), kw.get("max_value")
        ok = F.lit(True)
        if lo is not None:
            ok = ok & ((col > F.lit(lo)) if kw.get("strict_min") else (col >= F.lit(lo)))
        if hi is not None:
            ok = ok & ((col < F.lit(hi)) if kw.get("strict_max") else (col <= F.lit(hi)))
        return [(col.isNotNull() & ~ok, f"{name} out of range [{_num(lo, '-inf')}, {_num(hi, 'inf')}]")]
    if t == "expect_column_values_to_be_in_set":
        return [(col.isNotNull() & ~col.isin(list(kw.get("value_set") or [])), f"{name} not in set")]
    if t == "expect_column_values_to_not_be_in_set":
        return [(col.isin(list(kw.get("value_set") or [])), f"{name} in forbidden set")]
    if t == "expect_column_values_to_match_regex" and kw.get("regex"):
        return [(col.isNotNull() & ~col.rlike(kw["regex"]), f"{name} does not match {kw['regex']!r}")]
    return []


def _num(v: Any, open_end: str) -> str:
    if v is None:
        return open_end
    return f"{v:g}" if isinstance(v, float) else str(v)


# --------------------------------------------------------------------------- in the scoring task
# The same rules on Arrow batches, for the single pass: the task that scores a batch splits off
# its broken rows itself (no Spark-reader detour) and writes them, with their reasons, to the
# quarantine table's staging. Labels and semantics match ``split_rows`` above (Spark's NaN
# ordering included), so both readers quarantine the same rows with the same reasons.


def row_rules(
    arrow_schema: Any,
    *,
    feature_columns: Sequence[str],
    specs: Sequence[ExpectationSpec | dict] = (),
    rules: Sequence[str] = DEFAULT_RULES,
) -> list[tuple]:
    """Picklable ``(kind, column, op, label)`` rules for :func:`split_batch`.

    Raises the same errors as :func:`split_rows` for unknown rules and missing columns.
    """
    import pyarrow as pa

    from batchinfer.checks.partials import Op, _hashable

    unknown = [r for r in rules if r not in ALL_RULES]
    if unknown:
        raise ConfigError(
            "Invalid quarantine rules",
            problems=[("quarantine.rules", f"unknown rule(s) {unknown}; use any of {list(ALL_RULES)}")],
        )
    names = list(arrow_schema.names)
    if REASON_COLUMN in names:
        raise InputDataError(
            f"input already has a {REASON_COLUMN!r} column",
            hint="drop or rename it; quarantine writes the reason there",
        )
    row_specs = _row_level_specs(specs) if "input_checks" in rules else []
    for what, cols in (
        ("feature column", list(feature_columns)),
        ("checked column", [s.column for s in row_specs if s.column is not None]),
    ):
        missing = [n for n in dict.fromkeys(cols) if n not in names]
        if missing:
            raise InputDataError(
                f"{what}(s) {missing} not in the data; available: {sorted(names)}",
                hint="check the column names in the job config",
            )
    out: list[tuple] = []
    for name in feature_columns:
        typ = arrow_schema.field(name).type
        is_list = pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ)
        if "null_features" in rules:
            out.append(("null", name, None, f"{name} is null"))
        if "non_finite_features" in rules and pa.types.is_floating(typ):
            out.append(("nan", name, None, f"{name} is NaN"))
            out.append(("inf", name, None, f"{name} is infinite"))
        if is_list:
            elem_float = pa.types.is_floating(typ.value_type)
            if "null_features" in rules:
                out.append(("elem_null", name, None, f"{name} has a null element"))
            if "non_finite_features" in rules and elem_float:
                out.append(("elem_nan", name, None, f"{name} has a NaN element"))
                out.append(("elem_inf", name, None, f"{name} has an infinite element"))
    for spec in row_specs:
        kw, name, t = spec.gx_kwargs(), spec.column, spec.gx_type
        if name is None:
            continue
        if t == "expect_column_values_to_not_be_null":
            out.append(("null", name, None, f"{name} is null"))
            continue
        if t == "expect_column_values_to_be_between":
            args = {k: kw.get(k) for k in ("min_value", "max_value", "strict_min", "strict_max")}
            cond = "between"
            label = (
                f"{name} out of range [{_num(args['min_value'], '-inf')}, {_num(args['max_value'], 'inf')}]"
            )
        elif t == "expect_column_values_to_be_in_set":
            args, cond, label = {"value_set": list(kw.get("value_set") or [])}, "in_set", f"{name} not in set"
        elif t == "expect_column_values_to_not_be_in_set":
            args, cond = {"value_set": list(kw.get("value_set") or [])}, "not_in_set"
            label = f"{name} in forbidden set"
        elif t == "expect_column_values_to_match_regex" and kw.get("regex"):
            args, cond = {"regex": kw["regex"]}, "match_regex"
            label = f"{name} does not match {kw['regex']!r}"
        else:
            continue
        op = Op("cond", name, cond, tuple(sorted((k, _hashable(v)) for k, v in args.items())))
        out.append(("cond", name, op, label))
    return out


def split_batch(batch: Any, rules: Sequence[tuple], reasons: str = "all") -> tuple[Any, Any]:
    """Split an Arrow batch into ``(clean, quarantined)``; ``quarantined`` has ``_quarantine_reason``.

    ``quarantined`` is None when no row breaks a rule (the common case costs a few masks).
    """
    import numpy as np
    import pyarrow as pa

    if not rules or batch.num_rows == 0:
        return batch, None
    masks = [_rule_mask(batch, rule) for rule in rules]
    broken = np.logical_or.reduce(masks)
    if not broken.any():
        return batch, None
    idx = np.flatnonzero(broken)
    labels = []
    for i in idx:
        hit = [rule[3] for rule, m in zip(rules, masks, strict=True) if m[i]]
        labels.append(hit[0] if reasons == "first" else "; ".join(hit))
    clean = batch.filter(pa.array(~broken))
    bad = batch.take(pa.array(idx))
    bad = pa.RecordBatch.from_arrays(
        [*bad.columns, pa.array(labels, pa.string())], names=[*bad.schema.names, REASON_COLUMN]
    )
    return clean, bad


def _rule_mask(batch: Any, rule: tuple):
    import numpy as np
    import pyarrow.compute as pc

    kind, name, op, _ = rule
    col = batch.column(batch.schema.get_field_index(name))
    n = batch.num_rows
    if kind == "null":
        return np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    if kind in ("nan", "inf"):
        hit = pc.is_nan(col) if kind == "nan" else pc.is_inf(col)
        return np.asarray(pc.fill_null(hit, False).to_numpy(zero_copy_only=False), dtype=bool)
    if kind.startswith("elem_"):
        flat = pc.list_flatten(col)
        parents = np.asarray(pc.list_parent_indices(col).to_numpy(zero_copy_only=False))
        if kind == "elem_null":
            hit = flat.is_null()
        else:
            hit = pc.fill_null(pc.is_nan(flat) if kind == "elem_nan" else pc.is_inf(flat), False)
        out = np.zeros(n, dtype=bool)
        out[parents[np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)]] = True
        return out
    if kind == "cond":
        from batchinfer.checks.partials import _unexpected_mask

        if col.null_count == n:
            return np.zeros(n, dtype=bool)
        unexpected = pc.fill_null(_unexpected_mask(op, col), False)
        valid = col.is_valid()
        return np.asarray(pc.and_(unexpected, valid).to_numpy(zero_copy_only=False), dtype=bool)
    raise ValueError(f"unknown quarantine rule kind {kind!r}")
