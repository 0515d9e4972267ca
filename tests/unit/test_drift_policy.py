"""Drift config validation and the decisions evaluate_drift makes (pure, no Spark)."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from batchinfer.checks.drift_policy import DriftConfig, evaluate_drift
from batchinfer.checks.gate import decide
from batchinfer.checks.profile import count_arrays, profile_arrays
from batchinfer.errors import ConfigError

N = 50_000


def _data(rng, *, shift_a=0.0, shift_score=0.0, null_b=0.0, new_cat=0.0):
    a = rng.normal(shift_a, 1.0, N)
    b = rng.uniform(0, 10, N)
    b[rng.random(N) < null_b] = np.nan
    cats = np.array(["red", "green", "blue", "pink"])
    c = cats[rng.choice(4, N, p=[0.4, 0.3, 0.2, 0.1])].astype(object)
    c[rng.random(N) < new_cat] = "violet"
    score = np.clip(rng.beta(2, 5, N) + shift_score, 0, 1)
    return {"a": a, "b": b, "score": score}, {"c": c}


@pytest.fixture(scope="module")
def reference():
    return profile_arrays(*_data(np.random.default_rng(0)))


def _eval(reference, config=None, **shifts):
    num, cat = _data(np.random.default_rng(1), **shifts)
    cur = count_arrays({**num, **cat}, reference)
    return evaluate_drift(reference, cur, config or DriftConfig(), prediction_columns=["score"])


def _failed(outcomes):
    return {(o.stage, o.check, o.column, o.severity) for o in outcomes if not o.passed}


def test_no_drift_passes_everything(reference):
    outcomes = _eval(reference)
    assert _failed(outcomes) == set()
    checks = {(o.stage, o.check, o.column) for o in outcomes}
    assert ("drift", "psi", "a") in checks and ("drift", "psi", "c") in checks
    assert ("drift", "drifted_column_share", None) in checks
    assert ("prediction_drift", "psi", "score") in checks
    assert ("drift", "psi", "score") not in checks  # outputs are judged only as predictions
    assert decide(outcomes).passed


def test_planted_feature_and_score_shift_flagged_others_not(reference):
    outcomes = _eval(reference, shift_a=1.0, shift_score=0.2)
    assert _failed(outcomes) == {("drift", "psi", "a", "fail"), ("prediction_drift", "psi", "score", "fail")}
    a = next(o for o in outcomes if o.column == "a" and o.check == "psi")
    assert a.observed > 0.25 and a.threshold == 0.25 and "fail threshold" in a.message
    share = next(o for o in outcomes if o.check == "drifted_column_share")
    assert share.observed == pytest.approx(1 / 3) and share.passed
    assert not decide(outcomes).passed


def test_moderate_shift_warns(reference):
    outcomes = _eval(reference, shift_a=0.4)
    assert _failed(outcomes) == {("drift", "psi", "a", "warn")}
    assert decide(outcomes).passed


@pytest.mark.parametrize("metric", ["js", "ks", "wasserstein"])
def test_other_metrics_flag_the_shift(reference, metric):
    outcomes = _eval(reference, DriftConfig(metric=metric), shift_a=1.0)
    assert ("drift", metric, "a", "fail") in _failed(outcomes)
    assert not any(o.column in ("b", "c") for o in outcomes if not o.passed)
    c = next(o for o in outcomes if o.column == "c" and o.stage == "drift" and o.check in ("psi", "js"))
    assert c.check == ("js" if metric == "js" else "psi")  # numeric-only metrics leave categoricals on psi


def test_dataset_rule_counts_drifted_share(reference):
    config = DriftConfig(dataset={"max_drifted_share": 0.2}, warn=0.1, fail=5.0)
    outcomes = _eval(reference, config, shift_a=1.0)
    share = next(o for o in outcomes if o.check == "drifted_column_share")
    assert not share.passed and share.severity == "fail"
    assert _failed(outcomes) == {
        ("drift", "psi", "a", "warn"),
        ("drift", "drifted_column_share", None, "fail"),
    }


def test_null_rate_and_unseen_categories(reference):
    outcomes = _eval(reference, null_b=0.2, new_cat=0.1)
    failed = _failed(outcomes)
    assert ("drift", "null_rate_increase", "b", "warn") in failed
    assert ("drift", "unseen_category_share", "c", "warn") in failed
    unseen = next(o for o in outcomes if o.check == "unseen_category_share")
    assert unseen.observed == pytest.approx(0.1, abs=0.01)


def test_per_column_rules_and_chi2(reference):
    config = DriftConfig(
        per_column={
            "a": {"enabled": False},
            "c": {"metric": "chi2"},
            "b": {"metric": "ks", "warn": 0.5, "fail": 0.6},
        }
    )
    outcomes = _eval(reference, config, shift_a=1.0)
    assert not any(o.column == "a" for o in outcomes)
    c = next(o for o in outcomes if o.column == "c" and o.check == "chi2")
    assert 0 <= c.observed <= 1 and c.passed and c.details["dof"] == 3
    b = next(o for o in outcomes if o.column == "b" and o.check == "ks")
    assert (b.details["warn"], b.details["fail"]) == (0.5, 0.6)


def test_columns_subset_and_prediction_disabled(reference):
    config = DriftConfig(columns=["b"], prediction={"enabled": False})
    outcomes = _eval(reference, config, shift_a=1.0, shift_score=0.3)
    assert {o.column for o in outcomes} == {"b", None}
    assert evaluate_drift(reference, reference, DriftConfig(enabled=False)) == []


def test_unknown_columns_are_config_errors(reference):
    config = DriftConfig(columns=["a", "nope"], per_column={"typo": {"metric": "ks"}})
    with pytest.raises(ConfigError) as err:
        evaluate_drift(reference, reference, config, prediction_columns=["proba"])
    paths = [p for p, _ in err.value.problems]
    assert paths == ["drift.columns", "drift.per_column.typo", "drift.prediction"]
    assert "'proba' is not in the reference profile" in str(err.value)


def test_metric_that_does_not_fit_the_column(reference):
    with pytest.raises(
        ConfigError, match=r"drift\.per_column\.c\.metric.*'ks' does not apply to categorical"
    ):
        evaluate_drift(reference, reference, DriftConfig(per_column={"c": {"metric": "ks"}}))


def test_current_binned_on_other_edges_is_rejected(reference):
    other = profile_arrays(*_data(np.random.default_rng(5)))
    with pytest.raises(ConfigError, match="not counted on the reference profile's bins"):
        evaluate_drift(reference, other, DriftConfig())


def test_defaults():
    c = DriftConfig()
    assert (c.metric, c.warn, c.fail, c.enabled) == ("psi", None, None, True)
    assert c.rule_for("x", "numeric") == (True, "psi", 0.1, 0.25)
    assert c.rule_for("x", "categorical") == (True, "psi", 0.1, 0.25)
    assert DriftConfig(metric="ks").rule_for("x", "categorical") == (True, "psi", 0.1, 0.25)
    assert DriftConfig(metric="ks").rule_for("x", "numeric") == (True, "ks", 0.1, 0.2)
    # thresholds set for psi do not leak into a column that switched metric
    assert DriftConfig(warn=0.2, fail=0.3, per_column={"x": {"metric": "js"}}).rule_for("x", "numeric") == (
        True,
        "js",
        0.1,
        0.2,
    )


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"metric": "kl"}, "metric"),
        ({"warn": 0.3, "fail": 0.2}, "thresholds need 0 <= warn <= fail, got warn=0.3, fail=0.2"),
        ({"metric": "chi2", "warn": 0.001, "fail": 0.01}, "0 < fail <= warn < 1"),
        ({"bins": 10}, "Extra inputs are not permitted"),
        ({"dataset": {"max_drifted_share": 1.5}}, "less than or equal to 1"),
        ({"categorical": {"metric": "ks"}}, "categorical.metric 'ks' does not apply"),
        ({"per_column": {"x": {"metric": "psi", "warn": 1.0, "fail": 0.5}}}, "per_column.x: for psi"),
        ({"prediction": {"warn": -1.0}}, "0 <= warn <= fail"),
    ],
)
def test_invalid_config_messages(raw, message):
    with pytest.raises(ValidationError, match=message):
        DriftConfig.model_validate(raw)
