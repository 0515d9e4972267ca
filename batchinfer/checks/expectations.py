"""Declaring data-quality checks: a compact expectation spec for the job YAML.

A check names an expectation by a short alias (``not_null``, ``between``, ``in_set``...) or
by its full Great Expectations name (``expect_column_mean_to_be_between``), with a few
friendly argument names (``min``/``max``/``values``/``dtype``) and our own ``severity``::

    checks:
      input:
        - {expect: not_null, column: f0}
        - {expect: between, column: f1, min: -10, max: 10, mostly: 0.99, severity: warn}
        - {expect: in_set, column: country, values: [DE, FR, US]}
        - {expect: expect_column_mean_to_be_between, column: f2, min_value: -1, max_value: 1}
      output:
        - {expect: between, column: churn_score, min: 0, max: 1}
      input_suite: conf/suites/events.json

This module does not import great_expectations at import time: parsing a config stays cheap.
:func:`validate_specs` (which does import it) is the authoritative check of expectation
names and arguments; :func:`build_expectations` turns specs into GX expectation objects.

>>> spec = ExpectationSpec.model_validate({"expect": "between", "column": "f1", "min": 0, "max": 1})
>>> spec.gx_type, spec.gx_kwargs()
('expect_column_values_to_be_between', {'column': 'f1', 'min_value': 0.0, 'max_value': 1.0})
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from batchinfer.errors import ConfigError

Severity = Literal["fail", "warn"]

# Short alias -> GX expectation type. The friendly fields (column, min, max, values, value,
# dtype, regex, mostly) map to GX argument names in ``ExpectationSpec.gx_kwargs``; anything
# else goes through ``kwargs`` (full GX names may also give it as top-level keys).
ALIASES: dict[str, str] = {
    "not_null": "expect_column_values_to_not_be_null",
    "null": "expect_column_values_to_be_null",
    "between": "expect_column_values_to_be_between",
    "in_set": "expect_column_values_to_be_in_set",
    "not_in_set": "expect_column_values_to_not_be_in_set",
    "unique": "expect_column_values_to_be_unique",
    "match_regex": "expect_column_values_to_match_regex",
    "column_exists": "expect_column_to_exist",
    "type": "expect_column_values_to_be_of_type",
    "type_in": "expect_column_values_to_be_in_type_list",
    "row_count_between": "expect_table_row_count_to_be_between",
    "row_count_equal": "expect_table_row_count_to_equal",
    "columns_match_set": "expect_table_columns_to_match_set",
    "distinct_in_set": "expect_column_distinct_values_to_be_in_set",
    "mean_between": "expect_column_mean_to_be_between",
    "median_between": "expect_column_median_to_be_between",
    "min_between": "expect_column_min_to_be_between",
    "max_between": "expect_column_max_to_be_between",
    "stdev_between": "expect_column_stdev_to_be_between",
    "sum_between": "expect_column_sum_to_be_between",
    "unique_count_between": "expect_column_unique_value_count_to_be_between",
    "non_null_fraction_between": "expect_column_proportion_of_non_null_values_to_be_between",
}

# Which GX argument each friendly field becomes. ``values`` is a set of values for most
# expectations but a set of columns for ``expect_table_columns_to_match_set`` and a list of
# types for ``..._in_type_list``.
_VALUES_ARG = {
    "expect_table_columns_to_match_set": "column_set",
    "expect_column_values_to_be_in_type_list": "type_list",
}
_DTYPE_ARG = {
    "expect_column_values_to_be_in_type_list": "type_list",
}

ROW_LEVEL_TYPES = frozenset(
    {
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_not_be_in_set",
        "expect_column_values_to_match_regex",
    }
)
"""GX types that judge single rows, so that a broken row can be quarantined."""

META_KEY = "batchinfer"
"""Key under an expectation's ``meta`` where we keep our index and severity."""


class ExpectationSpec(BaseModel):
    """One check: an expectation (alias or full GX name), its arguments, and our severity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    expect: str = Field(description="alias (not_null, between, ...) or full GX name (expect_...)")
    column: str | None = None
    min: float | None = None
    max: float | None = None
    values: list[Any] | None = None
    value: Any = None
    dtype: str | list[str] | None = None
    regex: str | None = None
    mostly: float | None = Field(default=None, ge=0.0, le=1.0)
    severity: Severity = "fail"
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="further GX arguments, passed through unchanged"
    )

    @model_validator(mode="before")
    @classmethod
    def _collect_passthrough(cls, data: Any) -> Any:
        # Full GX names take their arguments as top-level keys (min_value, strict_min...):
        # gather the ones we do not know into ``kwargs``. Aliases keep extra="forbid".
        if not isinstance(data, dict):
            return data
        expect = data.get("expect")
        known = set(cls.model_fields)
        extra = {k: v for k, v in data.items() if k not in known}
        if not extra or not isinstance(expect, str):
            return data
        if not expect.startswith("expect_"):
            raise ValueError(
                f"unknown argument(s) {', '.join(map(repr, sorted(extra, key=str)))} for {expect!r}; "
                f"known: {', '.join(sorted(known - {'expect'}))}; put other Great Expectations "
                "arguments under 'kwargs:' or use the full expectation name"
            )
        out = {k: v for k, v in data.items() if k in known}
        kwargs = dict(out.get("kwargs") or {})
        overlap = sorted(set(kwargs) & set(extra))
        if overlap:
            raise ValueError(f"argument(s) {', '.join(overlap)} given both at top level and in 'kwargs'")
        kwargs.update(extra)
        out["kwargs"] = kwargs
        return out

    @field_validator("expect")
    @classmethod
    def _known_alias(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must name an expectation, e.g. 'not_null' or 'expect_column_to_exist'")
        if v.startswith("expect_") or v in ALIASES:
            return v
        hint = difflib.get_close_matches(v, list(ALIASES), n=1)
        suggestion = f"did you mean {hint[0]!r}? " if hint else ""
        raise ValueError(
            f"unknown expectation {v!r}; {suggestion}use one of {', '.join(sorted(ALIASES))} "
            "or a full Great Expectations name starting with 'expect_'"
        )

    @model_validator(mode="after")
    def _consistent_bounds(self) -> ExpectationSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min:g}) must not be greater than max ({self.max:g})")
        return self

    @property
    def gx_type(self) -> str:
        """The Great Expectations expectation type, e.g. ``expect_column_values_to_be_between``."""
        return ALIASES.get(self.expect, self.expect)

    @property
    def is_row_level(self) -> bool:
        """Whether the check judges single rows (so that broken rows can be quarantined)."""
        return self.gx_type in ROW_LEVEL_TYPES

    def gx_kwargs(self) -> dict[str, Any]:
        """The arguments for the GX expectation class (without severity and meta)."""
        gx_type = self.gx_type
        out: dict[str, Any] = {}
        if self.column is not None:
            out["column"] = self.column
        if self.mostly is not None:
            out["mostly"] = self.mostly
        if self.min is not None:
            out["min_value"] = self.min
        if self.max is not None:
            out["max_value"] = self.max
        if self.values is not None:
            out[_VALUES_ARG.get(gx_type, "value_set")] = list(self.values)
        if self.value is not None:
            out["value"] = self.value
        if self.dtype is not None:
            out[_DTYPE_ARG.get(gx_type, "type_")] = self.dtype
        if self.regex is not None:
            out["regex"] = self.regex
        out.update(self.kwargs)
        return out

    def to_compact(self) -> dict[str, Any]:
        """The spec as the compact YAML mapping (only the fields that were set)."""
        return {"expect": self.expect} | self.model_dump(exclude_defaults=True, exclude={"expect"})


class ChecksConfig(BaseModel):
    """The ``checks:`` section of a job config."""

    model_config = ConfigDict(extra="forbid")

    input: list[ExpectationSpec] = Field(default_factory=list)
    output: list[ExpectationSpec] = Field(default_factory=list)
    input_suite: str | None = Field(default=None, description="path of an existing GX suite JSON")
    output_suite: str | None = None
    result_format: Literal["BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE"] = "SUMMARY"

    def problems(self, *, path: str = "checks") -> list[tuple[str, str]]:
        """Every problem in names, arguments and suite files (imports great_expectations)."""
        found = validate_specs(self.input, path=f"{path}.input")
        found += validate_specs(self.output, path=f"{path}.output")
        for key in ("input_suite", "output_suite"):
            suite = getattr(self, key)
            if suite is not None:
                found += validate_suite_file(suite, path=f"{path}.{key}")
        return found


def _gx_error_messages(exc: Exception) -> list[tuple[str, str]]:
    """(argument, message) pairs from a GX (pydantic v1) validation error, without the noise.

    GX arguments are unions with "suite parameter" dicts, so a bad float also reports
    "value is not a valid dict"; keep those only when they are the sole complaint.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return [("", str(exc))]
    by_loc: dict[str, list[str]] = {}
    for err in errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
        msgs = by_loc.setdefault(loc, [])
        if err.get("msg") and err["msg"] not in msgs:
            msgs.append(err["msg"])
    out = []
    for loc, msgs in by_loc.items():
        useful = [m for m in msgs if m != "value is not a valid dict"] or msgs
        out.append((loc, "; ".join(useful)))
    return out


# Map GX argument names back to our friendly names in messages.
_FRIENDLY_NAME = {"min_value": "min", "max_value": "max", "value_set": "values", "type_": "dtype"}


def _gx_expectation(spec: ExpectationSpec, index: int | None = None):
    """Instantiate the GX expectation for ``spec`` (raises GX / pydantic errors)."""
    from great_expectations.expectations.registry import get_expectation_impl

    cls = get_expectation_impl(spec.gx_type)
    meta = {META_KEY: {"severity": spec.severity, "expect": spec.expect}}
    if index is not None:
        meta[META_KEY]["index"] = index
    return cls(
        **spec.gx_kwargs(),
        meta=meta,
        severity="critical" if spec.severity == "fail" else "warning",
    )


def _spec_problems(spec: ExpectationSpec, path: str) -> list[tuple[str, str]]:
    from great_expectations.exceptions import ExpectationNotFoundError

    try:
        _gx_expectation(spec)
    except ExpectationNotFoundError:
        from great_expectations.expectations.registry import (
            list_registered_expectation_implementations,
        )

        known = list_registered_expectation_implementations()
        hint = difflib.get_close_matches(spec.gx_type, known, n=1)
        msg = f"unknown Great Expectations expectation {spec.gx_type!r}"
        if hint:
            msg += f"; did you mean {hint[0]!r}?"
        return [(f"{path}.expect", msg)]
    except (ValueError, TypeError) as exc:  # pydantic v1 ValidationError is a ValueError
        out = []
        for loc, msg in _gx_error_messages(exc):
            where = f"{path}.{_FRIENDLY_NAME.get(loc, loc)}" if loc else path
            out.append((where, f"{spec.expect}: {msg}"))
        return out
    return []


def validate_specs(
    specs: list[ExpectationSpec] | list[dict], *, path: str = "checks.input"
) -> list[tuple[str, str]]:
    """Check every spec's name and arguments against Great Expectations.

    Returns ``(field path, message)`` pairs, empty when all is well; never raises for bad
    input. Dicts are parsed first, so pydantic errors in them are reported the same way.

    >>> validate_specs([{"expect": "between", "column": "f1"}])
    [('checks.input[0]', 'between: min_value and max_value cannot both be None')]
    """
    from pydantic import ValidationError

    problems: list[tuple[str, str]] = []
    for i, raw in enumerate(specs):
        where = f"{path}[{i}]"
        if isinstance(raw, ExpectationSpec):
            spec = raw
        else:
            try:
                spec = ExpectationSpec.model_validate(raw)
            except ValidationError as exc:
                problems += pydantic_problems(exc, prefix=where)
                continue
        problems += _spec_problems(spec, where) or _spark_type_problems(spec, where)
    return problems


def _spark_type_problems(spec: ExpectationSpec, path: str) -> list[tuple[str, str]]:
    """Spark type names are only checked when the data is validated: catch typos here."""
    kwargs = spec.gx_kwargs()
    names = kwargs.get("type_") or kwargs.get("type_list")
    if names is None:
        return []
    from pyspark.sql import types as T

    out = []
    for name in [names] if isinstance(names, str) else names:
        if not (isinstance(name, str) and name.endswith("Type") and isinstance(getattr(T, name, None), type)):
            out.append(
                (
                    f"{path}.dtype",
                    f"{spec.expect}: {name!r} is not a Spark type name; use e.g. 'DoubleType', "
                    "'LongType', 'StringType' (classes of pyspark.sql.types)",
                )
            )
    return out


def pydantic_problems(exc: Exception, *, prefix: str = "") -> list[tuple[str, str]]:
    """(field path, message) pairs from a pydantic v2 ``ValidationError``."""
    out = []
    for err in exc.errors():  # type: ignore[attr-defined]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        where = f"{prefix}{loc}" if prefix else loc.lstrip(".")
        msg = err["msg"].removeprefix("Value error, ")
        out.append((where or prefix, msg))
    return out


def validate_suite_file(suite_path: str | Path, *, path: str = "checks.input_suite") -> list[tuple[str, str]]:
    """Problems with a GX suite JSON file: missing, not JSON, or invalid expectations."""
    try:
        load_suite_expectations(suite_path, path=path)
    except ConfigError as exc:
        return exc.problems or [(path, exc.message)]
    return []


def load_suite_expectations(suite_path: str | Path, *, path: str = "checks.input_suite") -> list:
    """GX expectation objects from a suite JSON file (``{"name": ..., "expectations": [...]}``).

    Raises ``ConfigError`` listing every invalid expectation: GX's own ``ExpectationSuite``
    would log and silently drop them.
    """
    p = Path(suite_path)
    if not p.is_file():
        raise ConfigError(
            "Expectation suite not found",
            problems=[(path, f"no such file: {str(p)!r}; is the path relative to the working directory?")],
        )
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            "Expectation suite unreadable", problems=[(path, f"{p}: not valid JSON ({exc})")]
        ) from exc
    raw = data.get("expectations") if isinstance(data, dict) else None
    if not isinstance(raw, list):
        raise ConfigError(
            "Expectation suite invalid",
            problems=[(path, f"{p}: expected a JSON object with an 'expectations' list")],
        )
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    built, problems = [], []
    for i, item in enumerate(raw):
        where = f"{path}:expectations[{i}]"
        if not isinstance(item, dict) or "type" not in item and "expectation_type" not in item:
            problems.append((where, "expected an object with 'type' and 'kwargs'"))
            continue
        item = dict(item)
        if "expectation_type" in item:  # GX 0.x suites
            item["type"] = item.pop("expectation_type")
        item.pop("id", None)
        item.pop("rendered_content", None)
        try:
            built.append(ExpectationConfiguration(**item).to_domain_obj())
        except Exception as exc:  # GX raises several unrelated types here
            msgs = _gx_error_messages(exc) if callable(getattr(exc, "errors", None)) else [("", str(exc))]
            for loc, msg in msgs:
                problems.append((where + (f".{loc}" if loc else ""), f"{item['type']}: {msg}"))
    if problems:
        raise ConfigError("Expectation suite invalid", problems=problems)
    return built


def build_expectations(specs: list[ExpectationSpec], *, path: str = "checks") -> list:
    """GX expectation objects for ``specs``; ``meta['batchinfer']`` keeps index and severity.

    Raises ``ConfigError`` listing every bad spec (all of them, not only the first).
    """
    problems = validate_specs(specs, path=path)
    if problems:
        raise ConfigError("Invalid expectations", problems=problems)
    return [_gx_expectation(spec, index=i) for i, spec in enumerate(specs)]
