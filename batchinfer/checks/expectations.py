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

This module does not import great_expectations: parsing and validating a config stays cheap.
:func:`validate_specs` checks expectation names and arguments against the project's own table
of what GX accepts (:mod:`batchinfer.checks.expectation_table`, kept in step with GX by a unit
test); :func:`build_expectations` (which imports GX) turns specs into GX expectation objects
when a job runs, and GX has the last word there.

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


def _gx_spec_problems(spec: ExpectationSpec, path: str) -> list[tuple[str, str]]:
    """What GX itself says about ``spec`` (imports great_expectations; used when a job runs)."""
    from great_expectations.exceptions import ExpectationNotFoundError

    try:
        _gx_expectation(spec)
    except ExpectationNotFoundError:
        return [(f"{path}.expect", _unknown_expectation_message(spec.gx_type))]
    except (ValueError, TypeError) as exc:  # pydantic v1 ValidationError is a ValueError
        out = []
        for loc, msg in _gx_error_messages(exc):
            where = f"{path}.{_FRIENDLY_NAME.get(loc, loc)}" if loc else path
            out.append((where, f"{spec.expect}: {msg}"))
        return out
    return []


def _unknown_expectation_message(gx_type: str) -> str:
    from batchinfer.checks.expectation_table import ARGUMENTS

    hint = difflib.get_close_matches(gx_type, list(ARGUMENTS), n=1)
    msg = f"unknown Great Expectations expectation {gx_type!r}"
    return msg + (f"; did you mean {hint[0]!r}?" if hint else "")


# Arguments of every GX expectation that batchinfer fills in itself.
_RESERVED = {"meta": "batchinfer keeps its own meta", "severity": "use our 'severity: fail|warn'"}


def _spec_problems(spec: ExpectationSpec, path: str) -> list[tuple[str, str]]:
    """Check ``spec`` against the static table of GX expectations (no GX import)."""
    from batchinfer.checks.expectation_table import ARGUMENTS, COMMON_ARGUMENTS, GX_VALIDATORS, RULES

    table = ARGUMENTS.get(spec.gx_type)
    if table is None:
        return [(f"{path}.expect", _unknown_expectation_message(spec.gx_type))]
    kwargs = spec.gx_kwargs()
    out: list[tuple[str, str]] = []

    def add(arg: str | None, msg: str) -> None:
        where = f"{path}.{_FRIENDLY_NAME.get(arg, arg)}" if arg else path
        out.append((where, f"{spec.expect}: {msg}"))

    for arg, (kind, required) in table.items():
        if arg not in kwargs:
            if required:
                add(arg, "field required")
            continue
        problem = _kind_problem(kwargs[arg], kind, required)
        if problem:
            add(arg, problem)
    for arg in kwargs:
        if arg in table:
            continue
        if arg in _RESERVED:
            add(arg, f"{arg!r} is set by batchinfer ({_RESERVED[arg]})")
        elif arg not in COMMON_ARGUMENTS:
            add(arg, "extra fields not permitted")
    if out:
        return out
    for validator in GX_VALIDATORS.get(spec.gx_type, ()):
        rule = RULES.get(validator)
        if rule is not None:
            msg = _rule_problem(rule, kwargs)
            if msg:
                add(rule[1] if len(rule) > 1 else None, msg)
    return out


def _rule_problem(rule: tuple[str, ...], kwargs: dict[str, Any]) -> str | None:
    name = rule[0]
    if name == "min_or_max":
        if kwargs.get("min_value") is None and kwargs.get("max_value") is None:
            return "min_value and max_value cannot both be None"
    elif name == "min_le_max":
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if lo is not None and hi is not None and not isinstance(lo, dict) and not isinstance(hi, dict):
            try:
                if lo > hi:
                    return f"min_value ({lo}) must be less than or equal to max_value ({hi})"
            except TypeError:
                return None
    elif name == "non_empty":
        value = kwargs.get(rule[1])
        if value is not None and not isinstance(value, dict) and len(value) == 0:
            return f"{rule[1]} must not be empty"
    elif name == "two_or_more":
        value = kwargs.get(rule[1])
        if isinstance(value, (list, tuple)) and len(value) < 2:
            return f"{rule[1]} must contain at least two columns"
    return None


_BOOL_WORDS = {"0", "1", "true", "false", "yes", "no", "on", "off", "t", "f", "y", "n"}


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return False


def _alternative_problem(value: Any, alt: str) -> str | None:
    """None when ``value`` fits one alternative of a kind, else a pydantic-style message."""
    import datetime as dt

    if alt == "object":
        return None
    if alt == "param":
        return None if isinstance(value, dict) else "value is not a valid dict"
    if alt == "dict":
        return None if isinstance(value, dict) else "value is not a valid dict"
    if alt == "str":
        return None if isinstance(value, str) else "str type expected"
    if alt == "bool":
        ok = isinstance(value, bool) or value in (0, 1) or str(value).lower() in _BOOL_WORDS
        return None if ok else "value could not be parsed to a boolean"
    if alt == "int":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
        if isinstance(value, str):
            ok = value.strip().lstrip("+-").isdigit()
        return None if ok else "value is not a valid integer"
    if alt.startswith("number"):
        if not _is_number(value):
            return "value is not a valid float"
        if alt.startswith("number["):
            lo, _, hi = alt[len("number[") : -1].partition(",")
            if lo and float(value) < float(lo):
                return f"ensure this value is greater than or equal to {lo}"
            if hi and float(value) > float(hi):
                return f"ensure this value is less than or equal to {hi}"
        return None
    if alt == "date":
        if isinstance(value, (dt.date, dt.datetime)):
            return None
        if isinstance(value, str):
            try:
                dt.datetime.fromisoformat(value)
            except ValueError:
                return "invalid date format"
            return None
        return "invalid date format"
    if alt in ("list", "str_list"):
        if not isinstance(value, (list, tuple, set, frozenset)):
            return "value is not a valid list"
        if alt == "str_list" and not all(isinstance(v, str) for v in value):
            return "str type expected"
        return None
    if alt.startswith("one_of("):
        options = alt[len("one_of(") : -1].split("|")
        if isinstance(value, str) and value in options:
            return None
        return "unexpected value; permitted: " + ", ".join(repr(o) for o in options)
    return None  # a kind this version does not know: GX checks it when the job runs


def _kind_problem(value: Any, kind: str, required: bool) -> str | None:
    if value is None:
        return "none is not an allowed value" if required else None
    problems = []
    for alt in kind.split("+"):
        problem = _alternative_problem(value, alt)
        if problem is None:
            return None
        problems.append(problem)
    # Report the main alternative's complaint (not "not a valid dict" for a suite parameter).
    useful = [p for p in problems if p != "value is not a valid dict"] or problems
    # A bound violation says more than "not a valid date" for the date alternative.
    return next((p for p in useful if p.startswith("ensure")), useful[0])


def validate_specs(
    specs: list[ExpectationSpec] | list[dict], *, path: str = "checks.input"
) -> list[tuple[str, str]]:
    """Check every spec's name and arguments against the table of GX expectations.

    Returns ``(field path, message)`` pairs, empty when all is well; never raises for bad
    input. Dicts are parsed first, so pydantic errors in them are reported the same way.
    Does not import great_expectations.

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
                problems += unparsed_spec_problems(raw, exc, where)
                continue
        problems += spec_problems(spec, where)
    return problems


def unparsed_spec_problems(raw: Any, exc: Exception, where: str) -> list[tuple[str, str]]:
    """The argument problems of a spec that failed to parse, judged without its invalid fields.

    So that one pass reports ``mostly: 1.5`` and an unknown GX argument of the same spec. Only
    argument-level problems are kept: a rule such as "min_value and max_value cannot both be
    None" could be an echo of a removed field.
    """
    from pydantic import ValidationError

    if not isinstance(raw, dict):
        return []
    bad = {e["loc"][0] for e in exc.errors() if e.get("loc")}  # type: ignore[attr-defined]
    if not bad or "expect" in bad or not bad <= set(raw):
        return []
    try:
        spec = ExpectationSpec.model_validate({k: v for k, v in raw.items() if k not in bad})
    except ValidationError:
        return []
    removed = {_FRIENDLY_NAME.get(k, k) for k in bad} | bad
    return [
        (path, msg)
        for path, msg in spec_problems(spec, where)
        if path != where and path.rsplit(".", 1)[-1] not in removed
    ]


def spec_problems(spec: ExpectationSpec, where: str) -> list[tuple[str, str]]:
    """Problems with one parsed spec's GX name, arguments and Spark type names (no GX import)."""
    return _spec_problems(spec, where) or _spark_type_problems(spec, where)


def _spark_type_problems(spec: ExpectationSpec, path: str) -> list[tuple[str, str]]:
    """Spark type names are only checked when the data is validated: catch typos here."""
    from batchinfer.checks.expectation_table import SPARK_TYPE_NAMES

    kwargs = spec.gx_kwargs()
    names = kwargs.get("type_") or kwargs.get("type_list")
    if names is None:
        return []
    out = []
    for name in [names] if isinstance(names, str) else names:
        if not (isinstance(name, str) and name in SPARK_TYPE_NAMES):
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
    from batchinfer.field_paths import field_path

    out = []
    for err in exc.errors():  # type: ignore[attr-defined]
        msg = err["msg"].removeprefix("Value error, ")
        out.append((field_path(err["loc"], prefix=prefix) or prefix, msg))
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
    if not problems:  # GX has the last word on what the table cannot tell
        for i, spec in enumerate(specs):
            problems += _gx_spec_problems(spec, f"{path}[{i}]")
    if problems:
        raise ConfigError("Invalid expectations", problems=problems)
    return [_gx_expectation(spec, index=i) for i, spec in enumerate(specs)]
