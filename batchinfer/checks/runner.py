"""The job's check stages: what runs on the input before scoring and on the scored rows after.

Input stage (on the cached input DataFrame): quarantine split → GX input suite.
Drift: features and predictions are counted inside the scoring pass (no extra Spark job, see
:mod:`batchinfer.checks.inline_counts`) and judged after it.
Output stage (on the staged scored rows, read back from Parquet): GX output suite. Each returns ``CheckOutcome`` lists plus records for the manifest; the job
makes the gate decision (:func:`batchinfer.checks.gate.decide`).
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field

from batchinfer.checks.gate import CheckOutcome
from batchinfer.errors import ConfigError


@dataclass
class StageChecks:
    """What one check stage produced."""

    outcomes: list[CheckOutcome] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    attachments: dict[str, str] = field(default_factory=dict)  # file name → text, saved with the run
    seconds: dict[str, float] = field(default_factory=dict)


def checks_configured(config) -> bool:
    c = config.checks
    return bool(
        c.input
        or c.output
        or c.input_suite
        or c.output_suite
        or config.quarantine.enabled
        or (config.drift.enabled and config.drift.reference)
    )


def input_checks_configured(config) -> bool:
    """Whether any check needs the input rows as a Spark DataFrame (before scoring)."""
    c = config.checks
    # Drift is counted inside the scoring pass (inline_counts), so it does not need the input here.
    return bool(c.input or c.input_suite or config.quarantine.enabled)


def output_columns(plan) -> list[str]:
    return [o.column for o in plan.spec.outputs]


def load_reference(config):
    """The drift reference profile, read once per file version (the plan and the stages share it)."""
    import os

    path = config.drift.reference
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        stamp = None  # load_profile reports the missing file
    return _load_reference(path, stamp)


@functools.lru_cache(maxsize=4)
def _load_reference(path: str, stamp):
    from batchinfer.checks.profile import load_profile

    return load_profile(path)


def drift_columns(config, profile, plan) -> tuple[list[str], list[str]]:
    """(feature columns measured on the input, prediction columns measured on the output)."""
    outputs = set(output_columns(plan))
    preds = [c for c in profile.columns if c in outputs]
    if config.drift.columns is not None:
        missing = [c for c in config.drift.columns if c not in profile.columns]
        if missing:
            raise ConfigError(
                "drift.columns names columns the reference profile lacks",
                problems=[("drift.columns", f"{missing} not in profile {config.drift.reference}")],
                hint="rebuild the profile with `batchinfer profile`, or drop those columns",
            )
        features = [c for c in config.drift.columns if c not in outputs]
    else:
        features = [c for c in profile.columns if c not in outputs]
    return features, preds


def input_columns_needed(config, plan) -> list[str]:
    """Columns the input checks need beyond what scoring reads."""
    cols: list[str] = []
    for spec in config.checks.input:
        if spec.column and spec.column not in cols:
            cols.append(spec.column)
    if config.drift.enabled and config.drift.reference:
        try:
            profile = load_reference(config)
            features, _ = drift_columns(config, profile, plan)
            cols.extend(c for c in features if c not in cols)
        except Exception:  # reported properly when the drift stage runs
            pass
    return cols


def expectation_columns(config) -> list[str] | None:
    """Columns the input expectations read; None when unknown (a suite file) or when quarantine runs."""
    if config.checks.input_suite or config.quarantine.enabled:
        return None
    cols: list[str] = []
    for spec in config.checks.input:
        if spec.column and spec.column not in cols:
            cols.append(spec.column)
    return cols or None


def run_input_checks(spark, df, plan, *, run_id: str, quarantine_table=None) -> tuple[object, StageChecks]:
    """Run quarantine and the GX input suite on ``df``; return (rows to score, checks)."""
    config = plan.config
    result = StageChecks()
    feature_cols = plan.spec.feature_columns

    if config.quarantine.enabled:
        from batchinfer.checks.quarantine import quarantine_outcome, split_rows

        t0 = time.perf_counter()
        clean, bad = split_rows(
            df,
            feature_columns=feature_cols,
            specs=config.checks.input,
            rules=config.quarantine.rules,
            reasons=config.quarantine.reasons,
        )
        total = df.count()
        bad = bad.persist()
        n_bad = bad.count()
        if n_bad and quarantine_table is not None:
            writer = bad.write.mode("overwrite")
            if config.output.partition_by:
                keep = [c for c in config.output.partition_by if c in bad.columns]
                if keep:
                    writer = writer.partitionBy(*keep)
            writer.parquet(quarantine_table.staging(run_id).uri)
        bad.unpersist()
        by_partition = _staged_rows_by_partition(quarantine_table, run_id) if n_bad else {}
        outcome = quarantine_outcome(total, n_bad, config.quarantine.max_fraction)
        result.outcomes.append(outcome)
        result.summary["quarantine"] = {
            "rows_total": total,
            "rows_quarantined": n_bad,
            "fraction": outcome.observed,
            "max_fraction": config.quarantine.max_fraction,
            "path": config.quarantine.path,
        }
        if by_partition is not None:
            result.summary["quarantine"]["rows_by_partition"] = by_partition
        result.seconds["quarantine"] = round(time.perf_counter() - t0, 3)
        df = clean

    c = config.checks
    if c.input or c.input_suite:
        from batchinfer.checks.quality import run_expectations

        t0 = time.perf_counter()
        qr = run_expectations(
            df,
            c.input,
            stage="input",
            suite_path=c.input_suite,
            result_format=c.result_format,
            name=f"{config.job}-input",
        )
        result.outcomes.extend(qr.outcomes)
        result.summary["input_expectations"] = qr.summary()
        result.attachments["gx_input.json"] = json.dumps(qr.gx_result, indent=2, default=str)
        result.seconds["input_expectations"] = round(time.perf_counter() - t0, 3)

    return df, result


def run_output_checks(spark, staged_df, plan) -> StageChecks:
    """Run the GX output suite on the staged scored rows (read back from Parquet)."""
    config = plan.config
    result = StageChecks()
    c = config.checks
    if c.output or c.output_suite:
        from batchinfer.checks.quality import run_expectations

        t0 = time.perf_counter()
        qr = run_expectations(
            staged_df,
            c.output,
            stage="output",
            suite_path=c.output_suite,
            result_format=c.result_format,
            name=f"{config.job}-output",
        )
        result.outcomes.extend(qr.outcomes)
        result.summary["output_expectations"] = qr.summary()
        result.attachments["gx_output.json"] = json.dumps(qr.gx_result, indent=2, default=str)
        result.seconds["output_expectations"] = round(time.perf_counter() - t0, 3)

    return result


def drift_enabled(config) -> bool:
    return bool(config.drift.enabled and config.drift.reference)


def inline_drift_counter(spark, plan):
    """(the drift counter wrapped around the scorer, the reference profile), or (None, None)."""
    from batchinfer.checks.inline_counts import InlineDriftCounts

    config = plan.config
    if not drift_enabled(config):
        return None, None
    profile = load_reference(config)
    features, preds = drift_columns(config, profile, plan)
    if not config.drift.prediction.enabled:
        preds = []
    return InlineDriftCounts.create(spark, profile, features, preds), profile


def evaluate_inline_drift(plan, counter, profile) -> StageChecks:
    """Drift outcomes from the counts the scoring pass took (features and predictions)."""
    from batchinfer.checks.drift_policy import evaluate_drift

    result = StageChecks()
    t0 = time.perf_counter()
    feats, preds = counter.results()
    # The reference bins of the columns measured, saved with the run: the report draws
    # reference-vs-current overlays from the run's own files, even if the profile changes later.
    from batchinfer.checks.profile import ReferenceProfile

    measured = [c for c in (*counter.features, *counter.predictions) if c in profile.columns]
    result.attachments["drift_reference.json"] = ReferenceProfile(
        columns={c: profile.columns[c] for c in measured},
        row_count=profile.row_count,
        created_at=profile.created_at,
    ).to_json(indent=1)
    if feats is not None:
        drift_cfg = plan.config.drift.model_copy(update={"columns": counter.features})
        outcomes = evaluate_drift(profile, feats, drift_cfg, prediction_columns=())
        result.outcomes.extend(outcomes)
        result.attachments["drift_input_counts.json"] = feats.to_json(indent=1)
        result.summary["drift"] = _drift_summary(outcomes, counter.features)
    if preds is not None:
        drift_cfg = plan.config.drift.model_copy(update={"columns": []})
        outcomes = [
            o
            for o in evaluate_drift(profile, preds, drift_cfg, prediction_columns=counter.predictions)
            if o.stage == "prediction_drift"
        ]
        result.outcomes.extend(outcomes)
        result.attachments["drift_prediction_counts.json"] = preds.to_json(indent=1)
        result.summary["prediction_drift"] = _drift_summary(outcomes, counter.predictions)
    result.seconds["drift"] = round(time.perf_counter() - t0, 3)
    return result


def _drift_summary(outcomes: list[CheckOutcome], columns: list[str]) -> dict:
    per_column = {}
    for o in outcomes:
        if (
            o.column in columns
            and o.stage in ("drift", "prediction_drift")
            and o.check
            not in (
                "null_rate_increase",
                "unseen_category_share",
            )
        ):
            per_column[o.column] = {"metric": o.check, "value": o.observed, "status": o.status}
    return {
        "columns": len(columns),
        "drifted": sorted(c for c, v in per_column.items() if v["status"] != "passed"),
        "per_column": per_column,
    }


def validate_checks(job, plan) -> None:
    """`batchinfer validate`: expectation names/arguments, suite files and the drift profile."""
    config = job.config
    problems = config.checks.problems(path="checks")
    if config.drift.enabled and config.drift.reference:
        try:
            profile = load_reference(config)
            drift_columns(config, profile, plan)
        except ConfigError as exc:
            problems.extend(exc.problems or [("drift", exc.message)])
        except Exception as exc:  # InputDataError from a malformed profile
            problems.append(("drift.reference", getattr(exc, "message", str(exc))))
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in checks", problems=problems)


def _staged_rows_by_partition(quarantine_table, run_id: str) -> dict[str, int] | None:
    """Quarantined rows per partition, from the footers of the files Spark just staged (no Spark job)."""
    if quarantine_table is None:
        return None
    import pyarrow.parquet as pq

    from batchinfer.checks.quarantine import rows_by_partition

    fs = quarantine_table.root.fs
    files = [
        (f"{rel}/{fi.base_name}" if rel else fi.base_name, pq.read_metadata(fi.path, filesystem=fs).num_rows)
        for rel, infos in quarantine_table.staged_units(run_id, []).items()
        for fi in infos
    ]
    return rows_by_partition(files)
