"""Drift decisions: which statistic per column, which thresholds, and the dataset-level rules.

``DriftConfig`` is the ``drift:`` section of the job config; :func:`evaluate_drift` turns a
reference profile and the current batch's counts into ``CheckOutcome`` s for the gate
(stage ``"drift"`` for features, ``"prediction_drift"`` for model outputs).

.. code-block:: yaml

    drift:
      reference: profiles/reference.json
      metric: psi            # psi | js | ks | wasserstein (numeric); psi | js | chi2 (categorical)
      warn: 0.1
      fail: 0.25
      per_column:
        age: {metric: ks}
        zip_code: {enabled: false}
      dataset: {max_drifted_share: 0.5, severity: fail}
      prediction: {metric: psi, warn: 0.1, fail: 0.25}
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from batchinfer.checks import drift
from batchinfer.checks.gate import CheckOutcome, Severity
from batchinfer.checks.profile import CategoricalProfile, NumericProfile, ReferenceProfile
from batchinfer.errors import ConfigError

Metric = Literal["psi", "js", "ks", "wasserstein", "chi2"]

NUMERIC_METRICS = ("psi", "js", "ks", "wasserstein")
CATEGORICAL_METRICS = ("psi", "js", "chi2")

#: (warn, fail) per metric. psi/js/ks/wasserstein: flagged when the value is >= the threshold
#: (wasserstein in reference standard deviations). chi2: the value is the p-value, flagged
#: when it is < the threshold.
DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "psi": (0.1, 0.25),
    "js": (0.1, 0.2),
    "ks": (0.1, 0.2),
    "wasserstein": (0.1, 0.25),
    "chi2": (0.01, 0.001),
}


def _lower_is_worse(metric: str) -> bool:
    return metric == "chi2"


def _check_thresholds(metric: str, warn: float, fail: float) -> str | None:
    """A message when the thresholds make no sense for the metric, else None."""
    if _lower_is_worse(metric):
        if not (0 < fail <= warn < 1):
            return f"for chi2 (a p-value) thresholds need 0 < fail <= warn < 1, got warn={warn}, fail={fail}"
    elif not (0 <= warn <= fail):
        return f"for {metric} thresholds need 0 <= warn <= fail, got warn={warn}, fail={fail}"
    return None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnDriftRule(_Strict):
    """Overrides for one column; unset fields inherit from the section above."""

    enabled: bool = True
    metric: Metric | None = None
    warn: float | None = None
    fail: float | None = None


class DatasetDriftRule(_Strict):
    """Dataset-level rule: fail (or warn) when too large a share of the feature columns drifted."""

    enabled: bool = True
    max_drifted_share: float = Field(0.5, ge=0.0, le=1.0)
    drifted_at: Severity = "warn"  # a column counts as drifted from this level on
    severity: Severity = "fail"


class PredictionDriftRule(_Strict):
    """Drift of the model output columns (scores, labels), judged separately from features."""

    enabled: bool = True
    metric: Metric = "psi"
    warn: float | None = None
    fail: float | None = None

    @model_validator(mode="after")
    def _thresholds(self) -> PredictionDriftRule:
        _resolve_thresholds(self.metric, self.warn, self.fail)
        return self


class NullRateRule(_Strict):
    """Flag a column whose null share grew by more than ``max_increase`` (absolute)."""

    enabled: bool = True
    max_increase: float = Field(0.05, ge=0.0, le=1.0)
    severity: Severity = "warn"


class UnseenCategoryRule(_Strict):
    """Flag a categorical column with more than ``max_share`` of values never seen in the reference."""

    enabled: bool = True
    max_share: float = Field(0.05, ge=0.0, le=1.0)
    severity: Severity = "warn"


class DriftConfig(_Strict):
    """The ``drift:`` section of the job config.

    ``metric``/``warn``/``fail`` apply to every feature column; a numeric-only metric
    (``ks``, ``wasserstein``) leaves categorical columns on ``psi`` unless ``categorical`` or
    ``per_column`` says otherwise. Unset thresholds take the metric's defaults
    (:data:`DEFAULT_THRESHOLDS`: PSI 0.1 warn, 0.25 fail).
    """

    enabled: bool = True
    reference: str | None = None  # path of the profile JSON; resolving it is the job's business
    columns: list[str] | None = None  # None: every profiled column except the model outputs
    metric: Metric = "psi"
    warn: float | None = None
    fail: float | None = None
    categorical: ColumnDriftRule | None = None
    per_column: dict[str, ColumnDriftRule] = Field(default_factory=dict)
    dataset: DatasetDriftRule = Field(default_factory=DatasetDriftRule)
    prediction: PredictionDriftRule = Field(default_factory=PredictionDriftRule)
    null_rate: NullRateRule = Field(default_factory=NullRateRule)
    unseen: UnseenCategoryRule = Field(default_factory=UnseenCategoryRule)

    @model_validator(mode="after")
    def _thresholds(self) -> DriftConfig:
        _resolve_thresholds(self.metric, self.warn, self.fail)
        if self.categorical is not None and self.categorical.metric not in (None, *CATEGORICAL_METRICS):
            raise ValueError(
                f"categorical.metric {self.categorical.metric!r} does not apply to categorical columns; "
                f"use one of {', '.join(CATEGORICAL_METRICS)}"
            )
        for name, rule in self.per_column.items():
            if rule.metric is not None:
                try:
                    _resolve_thresholds(rule.metric, rule.warn, rule.fail)
                except ValueError as exc:
                    raise ValueError(f"per_column.{name}: {exc}") from exc
        return self

    def rule_for(self, column: str, kind: str) -> tuple[bool, str, float, float]:
        """(enabled, metric, warn, fail) for a feature column of ``kind`` numeric/categorical.

        Raises ``ConfigError`` when the configured metric does not apply to the column.
        """
        allowed = NUMERIC_METRICS if kind == "numeric" else CATEGORICAL_METRICS
        layers: list[tuple[str, Metric | None, float | None, float | None]] = []
        if self.metric in allowed:
            layers.append(("metric", self.metric, self.warn, self.fail))
        else:
            layers.append(("(categorical default)", "psi", None, None))
        if kind == "categorical" and self.categorical is not None:
            c = self.categorical
            layers.append(("categorical", c.metric, c.warn, c.fail))
        col = self.per_column.get(column)
        if col is not None:
            layers.append((f"per_column.{column}", col.metric, col.warn, col.fail))
        metric, warn, fail, where = "psi", None, None, "metric"
        for name, m, w, f in layers:
            if m is not None and m != metric:
                warn = fail = None  # thresholds of another metric do not carry over
                metric = m
            warn, fail, where = (w if w is not None else warn), (f if f is not None else fail), name
        if metric not in allowed:
            raise ConfigError(
                "invalid drift rule",
                problems=[
                    (
                        f"drift.{where}.metric",
                        f"{metric!r} does not apply to {kind} column {column!r}; "
                        f"use one of {', '.join(allowed)}",
                    )
                ],
            )
        try:
            warn, fail = _resolve_thresholds(metric, warn, fail)
        except ValueError as exc:
            raise ConfigError("invalid drift rule", problems=[(f"drift.{where}", str(exc))]) from exc
        enabled = col.enabled if col is not None else True
        if kind == "categorical" and self.categorical is not None:
            enabled = enabled and self.categorical.enabled
        return enabled, metric, warn, fail


def _resolve_thresholds(metric: str, warn: float | None, fail: float | None) -> tuple[float, float]:
    dw, df = DEFAULT_THRESHOLDS[metric]
    warn = dw if warn is None else warn
    fail = df if fail is None else fail
    problem = _check_thresholds(metric, warn, fail)
    if problem:
        raise ValueError(problem)
    return warn, fail


def column_statistic(metric: str, ref: NumericProfile | CategoricalProfile, cur) -> tuple[float, dict]:
    """Compute ``metric`` for one column from the reference and current counts.

    Returns (value, details); details carries the error bound (ks, wasserstein) or the chi2
    statistic and degrees of freedom.
    """
    if isinstance(ref, NumericProfile):
        if metric in ("psi", "js"):
            fn = drift.psi if metric == "psi" else drift.js_distance
            return fn(ref.psi_counts(), cur.psi_counts()), {}
        if metric == "ks":
            return drift.ks_statistic(ref.fine_counts, cur.fine_counts), {
                "error_bound": drift.ks_error_bound(ref.fine_counts, cur.fine_counts)
            }
        if metric == "wasserstein":
            lo, hi = min(ref.min, cur.min), max(ref.max, cur.max)
            args = (ref.fine_edges, ref.fine_counts, cur.fine_counts)
            w = drift.normalized_wasserstein(*args, lo=lo, hi=hi, ref_std=ref.std)
            scale = ref.std if ref.std else 1.0
            return w, {
                "normalized_by": "reference_std",
                "error_bound": drift.wasserstein_error_bound(*args, lo=lo, hi=hi) / scale,
            }
    else:
        if metric == "psi":
            return drift.psi(ref.counts, cur.counts), {}
        if metric == "js":
            return drift.js_distance(ref.counts, cur.counts), {}
        if metric == "chi2":
            r = drift.chi_square(ref.counts, cur.counts)
            return r.p_value, {"statistic": r.statistic, "dof": r.dof}
    raise ValueError(f"metric {metric!r} does not apply to a {ref.kind} column")


def _column_outcome(
    stage: str, column: str, metric: str, warn: float, fail: float, ref, cur
) -> tuple[CheckOutcome, bool]:
    """The outcome for one column and whether it counts as drifted at warn level."""
    if ref.count == 0 or cur.count == 0:
        side = "reference" if ref.count == 0 else "current batch"
        return (
            CheckOutcome(
                stage=stage,
                check=metric,
                column=column,
                passed=False,
                severity="warn",
                message=f"no non-null values in the {side}; drift not measured",
            ),
            False,
        )
    value, details = column_statistic(metric, ref, cur)
    if _lower_is_worse(metric):
        at_warn, at_fail, op = value < warn, value < fail, "<"
    else:
        at_warn, at_fail, op = value >= warn, value >= fail, ">="
    severity: Severity = "fail" if at_fail else "warn"
    level = "fail" if at_fail else "warn"
    message = (
        f"{metric}={value:.4g} {op} {level} threshold {fail if at_fail else warn}"
        if at_warn
        else f"{metric}={value:.4g} within thresholds"
    )
    details = {**details, "warn": warn, "fail": fail, "drift_level": level if at_warn else None}
    outcome = CheckOutcome(
        stage=stage,
        check=metric,
        column=column,
        passed=not at_warn,
        severity=severity,
        observed=value,
        threshold=fail if at_fail else warn,
        message=message,
        details=details,
    )
    return outcome, at_warn


def evaluate_drift(
    profile: ReferenceProfile,
    current: ReferenceProfile,
    config: DriftConfig,
    *,
    prediction_columns: list[str] | tuple[str, ...] = (),
) -> list[CheckOutcome]:
    """Judge the current batch's counts against the reference profile (pure, no Spark).

    Yields one outcome per feature column (stage ``drift``), the null-rate and unseen-category
    checks that failed their rule or passed (one each per column), the dataset-level drifted
    share, and one outcome per model output column (stage ``prediction_drift``).
    ``current`` comes from ``current_counts(df, profile)``. Raises ``ConfigError`` for
    columns the config names but the profile lacks, or metrics that do not fit a column.
    """
    if not config.enabled:
        return []
    predictions = list(prediction_columns)
    features = list(config.columns) if config.columns is not None else list(profile.columns)
    features = [c for c in features if c not in predictions]
    problems = [
        ("drift.columns", f"column {c!r} is not in the reference profile")
        for c in features
        if c not in profile.columns
    ]
    problems += [
        (f"drift.per_column.{c}", f"column {c!r} is not in the reference profile")
        for c in config.per_column
        if c not in profile.columns
    ]
    if config.prediction.enabled:
        problems += [
            (
                "drift.prediction",
                f"model output {c!r} is not in the reference profile; rebuild it from scored data "
                "or set drift.prediction.enabled: false",
            )
            for c in predictions
            if c not in profile.columns
        ]
    needed = features + (predictions if config.prediction.enabled else [])
    problems += [
        ("current", f"column {c!r} was not counted in the current batch")
        for c in needed
        if c in profile.columns and c not in current.columns
    ]
    if problems:
        raise ConfigError("drift check cannot run", problems=problems)
    for c in needed:
        _check_same_bins(c, profile.columns[c], current.columns[c])

    outcomes: list[CheckOutcome] = []
    drifted = evaluated = 0
    for name in features:
        ref, cur = profile.columns[name], current.columns[name]
        enabled, metric, warn, fail = config.rule_for(name, ref.kind)
        if not enabled:
            continue
        outcome, is_drifted = _column_outcome("drift", name, metric, warn, fail, ref, cur)
        outcomes.append(outcome)
        evaluated += 1
        level = outcome.details.get("drift_level")
        drifted += is_drifted and (config.dataset.drifted_at == "warn" or level == "fail")
        outcomes.extend(_null_and_unseen(name, ref, cur, config))

    if config.dataset.enabled and evaluated:
        share = drifted / evaluated
        rule = config.dataset
        outcomes.append(
            CheckOutcome(
                stage="drift",
                check="drifted_column_share",
                passed=share <= rule.max_drifted_share,
                severity=rule.severity,
                observed=share,
                threshold=rule.max_drifted_share,
                message=f"{drifted} of {evaluated} feature columns drifted (at {rule.drifted_at} level)",
                details={"drifted": drifted, "evaluated": evaluated},
            )
        )

    if config.prediction.enabled:
        rule = config.prediction
        for name in predictions:
            ref, cur = profile.columns[name], current.columns[name]
            allowed = NUMERIC_METRICS if ref.kind == "numeric" else CATEGORICAL_METRICS
            if rule.metric not in allowed:
                raise ConfigError(
                    "invalid drift rule",
                    problems=[
                        (
                            "drift.prediction.metric",
                            f"{rule.metric!r} does not apply to {ref.kind} output {name!r}; "
                            f"use one of {', '.join(allowed)}",
                        )
                    ],
                )
            warn, fail = _resolve_thresholds(rule.metric, rule.warn, rule.fail)
            outcomes.append(_column_outcome("prediction_drift", name, rule.metric, warn, fail, ref, cur)[0])
    return outcomes


def _null_and_unseen(name: str, ref, cur, config: DriftConfig) -> list[CheckOutcome]:
    out = []
    if config.null_rate.enabled:
        change = drift.null_rate_change(ref.null_count, ref.rows, cur.null_count, cur.rows)
        rule = config.null_rate
        out.append(
            CheckOutcome(
                stage="drift",
                check="null_rate_increase",
                column=name,
                passed=change <= rule.max_increase,
                severity=rule.severity,
                observed=change,
                threshold=rule.max_increase,
                message=f"null share changed by {change:+.4f}",
            )
        )
    if config.unseen.enabled and isinstance(cur, CategoricalProfile) and ref.vocabulary is not None:
        share = drift.unseen_share(cur.unseen_count, cur.count)
        rule = config.unseen
        out.append(
            CheckOutcome(
                stage="drift",
                check="unseen_category_share",
                column=name,
                passed=share <= rule.max_share,
                severity=rule.severity,
                observed=share,
                threshold=rule.max_share,
                message=f"{share:.2%} of values are categories never seen in the reference",
            )
        )
    return out


def _check_same_bins(name: str, ref, cur) -> None:
    same = type(ref) is type(cur) and (
        (ref.edges, ref.fine_edges) == (cur.edges, cur.fine_edges)
        if isinstance(ref, NumericProfile)
        else ref.categories == cur.categories
    )
    if not same:
        raise ConfigError(
            "drift check cannot run",
            problems=[("current", f"column {name!r} was not counted on the reference profile's bins")],
            hint="count the current batch with current_counts(df, reference_profile)",
        )
