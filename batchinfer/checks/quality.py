"""Running expectation suites with Great Expectations 1.x on a Spark DataFrame.

The data stays in Spark: GX computes its metrics as Spark aggregations. We persist the
DataFrame once before validating (GX runs a dozen or so Spark jobs for a suite of eight
expectations) and unpersist it afterwards, unless the caller had cached it already.

All expectations run, then one :class:`QualityResult` carries one ``CheckOutcome`` per
expectation; our ``severity`` (not GX's) decides via :func:`batchinfer.checks.gate.decide`.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from batchinfer.checks.expectations import (
    META_KEY,
    ExpectationSpec,
    build_expectations,
    load_suite_expectations,
    pydantic_problems,
)
from batchinfer.checks.gate import CheckOutcome, GateDecision, decide
from batchinfer.errors import ConfigError

_RESULT_FORMATS = ("BOOLEAN_ONLY", "BASIC", "SUMMARY", "COMPLETE")
_SAMPLE = 20  # unexpected values kept per outcome (GX SUMMARY returns up to 20)


@dataclass(frozen=True)
class QualityResult:
    """The outcome of one suite run over one DataFrame."""

    stage: str
    outcomes: list[CheckOutcome]
    success: bool
    gx_result: dict = field(default_factory=dict, repr=False)
    spark_jobs: int | None = None
    seconds: float = 0.0

    @property
    def decision(self) -> GateDecision:
        return decide(self.outcomes)

    def summary(self) -> dict:
        """A small JSON-able summary for the run manifest."""
        d = self.decision
        return {
            "stage": self.stage,
            "success": self.success,
            "checks": len(self.outcomes),
            "passed": sum(o.passed for o in self.outcomes),
            "failed": len(d.failures),
            "warnings": len(d.warnings),
            "spark_jobs": self.spark_jobs,
            "seconds": round(self.seconds, 3),
            "outcomes": [
                {
                    "check": o.check,
                    "column": o.column,
                    "severity": o.severity,
                    "status": o.status,
                    "observed": o.observed,
                    "unexpected_percent": o.unexpected_percent,
                    "message": o.message,
                }
                for o in self.outcomes
            ],
        }


def run_expectations(
    df: Any,
    specs: Sequence[ExpectationSpec | dict] = (),
    *,
    stage: str,
    suite_path: str | None = None,
    name: str | None = None,
    result_format: str = "SUMMARY",
    persist: bool = True,
) -> QualityResult:
    """Validate ``df`` (a Spark DataFrame) against ``specs`` and/or a GX suite JSON file.

    Args:
        df: the Spark DataFrame; it is not collected.
        specs: compact specs (``ExpectationSpec`` or dicts in the YAML form).
        stage: ``"input"`` or ``"output"``; written into every outcome.
        suite_path: an existing GX suite JSON whose expectations run too. Their severity
            comes from GX's ``severity`` field (``critical`` → fail, else warn), or from
            ``meta.batchinfer.severity``.
        name: the suite name in the GX result (default ``batchinfer-<stage>``).
        result_format: GX result format (``SUMMARY`` keeps a sample of unexpected values).
        persist: persist ``df`` for the run and unpersist afterwards (skipped when the
            caller already cached it).

    Raises:
        ConfigError: listing every invalid spec or suite expectation, before any Spark job.

    Example::

        res = run_expectations(df, [{"expect": "not_null", "column": "f0"}], stage="input")
        print(format_outcomes_table(res.outcomes))
    """
    if result_format not in _RESULT_FORMATS:
        raise ConfigError(
            "Invalid result format",
            problems=[
                ("checks.result_format", f"expected one of {list(_RESULT_FORMATS)}, got {result_format!r}")
            ],
        )
    expectations = suite_expectations(specs, stage=stage, suite_path=suite_path)
    return run_built(df, expectations, stage=stage, name=name, result_format=result_format, persist=persist)


def suite_expectations(
    specs: Sequence[ExpectationSpec | dict] = (), *, stage: str, suite_path: str | None = None
) -> list:
    """GX expectation objects for compact ``specs`` then a suite file's, in that order.

    ``meta['batchinfer']`` keeps each one's index (config order) and severity.
    """
    parsed = parse_specs(specs, stage)
    expectations = build_expectations(parsed, path=f"checks.{stage}")
    n_specs = len(expectations)
    if suite_path is not None:
        for j, exp in enumerate(load_suite_expectations(suite_path, path=f"checks.{stage}_suite")):
            meta = dict(exp.meta or {})
            ours = dict(meta.get(META_KEY) or {})
            ours.setdefault("severity", "fail" if str(_enum_value(exp.severity)) == "critical" else "warn")
            ours["index"] = n_specs + j
            ours["source"] = str(suite_path)
            meta[META_KEY] = ours
            exp.meta = meta
            expectations.append(exp)
    return expectations


def run_built(
    df: Any,
    expectations: list,
    *,
    stage: str,
    name: str | None = None,
    result_format: str = "SUMMARY",
    persist: bool = True,
) -> QualityResult:
    """Validate ``df`` (Spark DataFrame, or pandas for the embedded engine) against built expectations."""
    if result_format not in _RESULT_FORMATS:
        raise ConfigError(
            "Invalid result format",
            problems=[
                ("checks.result_format", f"expected one of {list(_RESULT_FORMATS)}, got {result_format!r}")
            ],
        )
    if not expectations:
        return QualityResult(stage=stage, outcomes=[], success=True, gx_result={}, spark_jobs=0)

    suite_name = name or f"batchinfer-{stage}"
    started = time.perf_counter()
    pandas = _is_pandas(df)  # the embedded engine (no Spark): GX on pandas, no Spark jobs to count
    jobs: dict = {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_quiet_gx())
        if not pandas:
            stack.enter_context(_persisted(df, enabled=persist))
            jobs = stack.enter_context(_counting_jobs(df, stage))
        gx_result = _validate(df, expectations, suite_name=suite_name, result_format=result_format)
    outcomes = outcomes_from_gx(gx_result, stage)
    return QualityResult(
        stage=stage,
        outcomes=outcomes,
        success=decide(outcomes).passed,
        gx_result=gx_result,
        spark_jobs=0 if pandas else jobs.get("count"),
        seconds=time.perf_counter() - started,
    )


def parse_specs(specs: Sequence[ExpectationSpec | dict], stage: str) -> list[ExpectationSpec]:
    from pydantic import ValidationError

    parsed, problems = [], []
    for i, s in enumerate(specs):
        if isinstance(s, ExpectationSpec):
            parsed.append(s)
            continue
        try:
            parsed.append(ExpectationSpec.model_validate(s))
        except ValidationError as exc:
            problems += pydantic_problems(exc, prefix=f"checks.{stage}[{i}]")
    if problems:
        raise ConfigError("Invalid expectations", problems=problems)
    return parsed


def _is_pandas(df: Any) -> bool:
    return type(df).__module__.startswith("pandas")


def _validate(df: Any, expectations: list, *, suite_name: str, result_format: str) -> dict:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    if _is_pandas(df):
        source = ctx.data_sources.add_pandas("batchinfer")
    else:
        # persist=False: GX would otherwise persist the batch and never unpersist it.
        source = ctx.data_sources.add_spark("batchinfer", persist=False)
    batch_def = source.add_dataframe_asset("dataframe").add_batch_definition_whole_dataframe("whole")
    suite = ctx.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    if len(suite.expectations) != len(expectations):  # GX drops invalid ones with a log line
        raise ConfigError(
            "Invalid expectations",
            problems=[(f"checks.{suite_name}", "Great Expectations rejected some expectations")],
        )
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch_def, suite=suite))
    result = vd.run(batch_parameters={"dataframe": df}, result_format=result_format)
    return result.to_json_dict()


def outcomes_from_gx(gx_result: dict, stage: str) -> list[CheckOutcome]:
    """One ``CheckOutcome`` per GX result, in config order (GX reorders its results)."""
    rows = []
    for pos, r in enumerate(gx_result.get("results", [])):
        cfg = r.get("expectation_config") or {}
        kwargs = dict(cfg.get("kwargs") or {})
        kwargs.pop("batch_id", None)
        ours = (cfg.get("meta") or {}).get(META_KEY) or {}
        severity = ours.get("severity", "fail")
        result = r.get("result") or {}
        error = _exception_message(r.get("exception_info"))
        observed: Any = result.get("observed_value")
        details: dict[str, Any] = {"kwargs": kwargs}
        if "unexpected_count" in result:
            sample = list(result.get("partial_unexpected_list") or [])[:_SAMPLE]
            details.update(
                unexpected_count=result.get("unexpected_count"),
                element_count=result.get("element_count"),
                missing_count=result.get("missing_count"),
                unexpected_sample=sample,
            )
            if observed is None:
                observed = {
                    "unexpected_count": result.get("unexpected_count"),
                    "element_count": result.get("element_count"),
                    "sample": _distinct(sample)[:5],
                }
        if ours.get("source"):
            details["source"] = ours["source"]
        if error:
            message = f"could not evaluate: {error}"
        elif not r.get("success"):
            message = _failure_message(result, kwargs)
        else:
            message = ""
        threshold = {k: v for k, v in kwargs.items() if k not in ("column", "column_A", "column_B")}
        pct = result.get("unexpected_percent")
        outcome = CheckOutcome(
            stage=stage,
            check=cfg.get("type", "?"),
            passed=bool(r.get("success")) and not error,
            severity=severity if severity in ("fail", "warn") else "fail",
            column=_column_of(kwargs),
            observed=observed,
            threshold=threshold or None,
            unexpected_percent=float(pct) if pct is not None else None,
            message=message,
            details=details,
        )
        rows.append((ours.get("index", 10**9 + pos), outcome))
    rows.sort(key=lambda t: t[0])
    return [o for _, o in rows]


def _distinct(values: list) -> list:
    out: list = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def _column_of(kwargs: dict) -> str | None:
    if kwargs.get("column") is not None:
        return str(kwargs["column"])
    if kwargs.get("column_A") is not None:
        return f"{kwargs['column_A']},{kwargs.get('column_B')}"
    if kwargs.get("column_list"):
        return ",".join(map(str, kwargs["column_list"]))
    return None


def _failure_message(result: dict, kwargs: dict) -> str:
    if "unexpected_count" in result and result.get("element_count") is None:
        # Distinct-value expectations count values, not rows, and GX gives no observed value.
        values = _distinct(list(result.get("partial_unexpected_list") or []))
        shown = ", ".join(_short(v) for v in values[:_SAMPLE])
        return f"{result['unexpected_count']} unexpected value(s)" + (f": {shown}" if shown else "")
    if "unexpected_count" in result and result.get("element_count") is not None:
        msg = f"{result['unexpected_count']} of {result['element_count']} values unexpected"
        if kwargs.get("mostly") is not None:
            msg += f" (allowed: {100 * (1 - float(kwargs['mostly'])):.4g}%)"
        return msg
    if "observed_value" in result:
        return f"observed {result['observed_value']!r}"
    return ""


def _exception_message(info: Any) -> str | None:
    """GX's exception_info is flat, or keyed by metric id when a metric failed."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return info.get("exception_message") if info.get("raised_exception") else None
    for sub in info.values():
        if isinstance(sub, dict) and sub.get("raised_exception"):
            return sub.get("exception_message") or "exception while computing a metric"
    return None


def _enum_value(v: Any) -> Any:
    return getattr(v, "value", v)


@contextlib.contextmanager
def _quiet_gx() -> Iterator[None]:
    """Silence GX's INFO/WARNING log lines and Python warnings for the run only."""
    # Some GX modules set their own level (data_context.types.base logs at INFO), so
    # lowering the parent is not enough: quiet every GX logger that has a level.
    loggers = [logging.getLogger("great_expectations")] + [
        lg
        for name, lg in list(logging.Logger.manager.loggerDict.items())
        if name.startswith("great_expectations.") and isinstance(lg, logging.Logger) and lg.level
    ]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"great_expectations(\..*)?")
            yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


@contextlib.contextmanager
def _persisted(df: Any, *, enabled: bool) -> Iterator[None]:
    """Persist ``df`` for the block (memory and disk), unless disabled or already cached."""
    from pyspark import StorageLevel

    level = df.storageLevel
    already = level.useMemory or level.useDisk or level.useOffHeap
    if not enabled or already:
        yield
        return
    df.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        yield
    finally:
        df.unpersist(blocking=False)


_JOB_GROUP_KEYS = ("spark.jobGroup.id", "spark.job.description", "spark.job.interruptOnCancel")


@contextlib.contextmanager
def _counting_jobs(df: Any, stage: str) -> Iterator[dict]:
    """Count the Spark jobs run in the block via a job group; restore the caller's group.

    Yields a dict that gets ``count`` at the end (``None`` where there is no SparkContext,
    e.g. Spark Connect).
    """
    out: dict[str, int | None] = {"count": None}
    from batchinfer.engines import is_connect_session

    if is_connect_session(df.sparkSession):  # Spark Connect has no SparkContext to count with
        yield out
        return
    try:
        sc = df.sparkSession.sparkContext
    except Exception:  # Spark Connect has no SparkContext
        yield out
        return
    saved = {k: sc.getLocalProperty(k) for k in _JOB_GROUP_KEYS}
    group = f"batchinfer-quality-{stage}-{uuid.uuid4().hex[:8]}"
    sc.setJobGroup(group, f"batchinfer {stage} data-quality checks")
    try:
        yield out
    finally:
        out["count"] = len(sc.statusTracker().getJobIdsForGroup(group))
        for k, v in saved.items():
            sc.setLocalProperty(k, v)


def format_outcomes_table(outcomes: Sequence[CheckOutcome], *, max_width: int = 48) -> str:
    """A plain-text table of outcomes for a terminal.

    >>> print(format_outcomes_table([CheckOutcome(stage="input", check="expect_column_to_exist",
    ...                                           passed=True, column="f0")]))
    EXPECTATION             COLUMN  OBSERVED  UNEXPECTED %  SEVERITY  STATUS
    expect_column_to_exist  f0      -         -             fail      passed
    """
    if not outcomes:
        return "(no checks)"
    with_stage = len({o.stage for o in outcomes}) > 1
    header = (["STAGE"] if with_stage else []) + [
        "EXPECTATION",
        "COLUMN",
        "OBSERVED",
        "UNEXPECTED %",
        "SEVERITY",
        "STATUS",
    ]
    rows = []
    for o in outcomes:
        pct = "-" if o.unexpected_percent is None else f"{o.unexpected_percent:.4g}"
        observed = _format_observed(o.observed)
        if not o.passed and o.message.startswith("could not evaluate"):
            observed = o.message
        row = [o.check, o.column or "-", _clip(observed, max_width), pct, o.severity, o.status]
        rows.append(([o.stage] if with_stage else []) + row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def _format_observed(observed: Any) -> str:
    if observed is None:
        return "-"
    if (
        isinstance(observed, dict)
        and "unexpected_count" in observed
        and observed.get("element_count") is None
    ):
        # Distinct-value expectations: no row count, the unexpected values themselves say more.
        if not observed["unexpected_count"]:
            return "no unexpected values"
        sample = observed.get("sample") or []
        return "unexpected: " + (", ".join(_short(v) for v in sample) or str(observed["unexpected_count"]))
    if isinstance(observed, dict) and "unexpected_count" in observed:
        text = f"{observed['unexpected_count']} of {observed['element_count']}"
        if observed.get("sample"):
            text += " e.g. " + ", ".join(_short(v) for v in observed["sample"])
        return text
    return _short(observed)


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."
