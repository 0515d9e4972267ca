"""The verification gate's pure comparison functions (no files, no Spark)."""

from __future__ import annotations

import numpy as np
import pytest

from batchinfer.errors import ConfigError
from batchinfer.model.verify import (
    VerificationBudget,
    abs_diff_stats,
    accuracy,
    check_budget,
    compare_outputs,
    predicted_labels,
    roc_auc,
)


def test_roc_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # rounding makes many ties
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([True, False, True], [0.9, 0.1, 0.8]) == 1.0


def test_roc_auc_undefined_for_one_class():
    assert roc_auc([1, 1, 1], [0.1, 0.2, 0.3]) is None


def test_accuracy_compares_label_column_and_output_across_dtypes():
    assert accuracy(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0], dtype=np.int32)) == 0.75
    assert accuracy(np.array(["a", "b"]), np.array(["a", "a"], dtype=object)) == 0.5


def test_abs_diff_stats_and_shape_mismatch():
    stats = abs_diff_stats(np.array([[0.1, 0.9], [0.5, 0.5]]), np.array([[0.2, 0.8], [0.5, 0.5]]))
    assert stats["mean_abs_diff"] == pytest.approx(0.05)
    assert stats["max_abs_diff"] == pytest.approx(0.1)
    assert stats["row_abs_diff"] == pytest.approx(0.05)  # rows: 0.1 and 0
    assert stats["top_class_abs_diff"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="shapes differ"):
        abs_diff_stats(np.zeros((2, 2)), np.zeros((2, 3)))


def test_predicted_labels_prefers_an_integer_output_then_argmax_then_threshold():
    probs = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    assert predicted_labels({"probabilities": probs, "label": np.array([5, 6])})[0] == "label"
    name, labels = predicted_labels({"probabilities": probs})
    assert name == "argmax(probabilities)" and labels.tolist() == [0, 1]
    name, labels = predicted_labels({"score": np.array([0.2, 0.7], dtype=np.float32)})
    assert name == "score >= 0.5" and labels.tolist() == [0, 1]
    with pytest.raises(ConfigError, match="not a model output"):
        predicted_labels({"score": probs}, "nope")


def _outputs(p1):
    p1 = np.asarray(p1, dtype=np.float32)
    return {"label": (p1 >= 0.5).astype(np.int64), "probabilities": np.stack([1 - p1, p1], axis=1)}


def test_compare_outputs_figures_and_metrics():
    y = np.array([0, 0, 1, 1, 1, 0])
    ref = _outputs([0.1, 0.4, 0.6, 0.9, 0.7, 0.2])
    cand = _outputs([0.1, 0.65, 0.6, 0.9, 0.7, 0.2])  # one row flips, above a positive
    f = compare_outputs(ref, cand, labels=y)
    assert f["rows"] == 6 and f["label_output"] == "label"
    assert f["label_agreement"] == pytest.approx(5 / 6)
    assert f["outputs"]["probabilities"]["max_abs_diff"] == pytest.approx(0.25, abs=1e-6)
    assert f["outputs"]["label"]["agreement"] == pytest.approx(5 / 6)
    assert f["metrics"]["accuracy"]["reference"] == 1.0
    assert f["metrics"]["accuracy"]["change"] == pytest.approx(-1 / 6)
    assert f["metrics"]["roc_auc"]["score"] == "probabilities[:, 1]"
    assert f["metrics"]["roc_auc"]["change"] == pytest.approx(-1 / 9)


def test_check_budget_passes_small_changes_and_names_each_failure():
    budget = VerificationBudget()
    ok = {
        "label_agreement": 0.998,
        "label_output": "label",
        "outputs": {
            "probabilities": {
                "row_abs_diff": 0.002,
                "top_class_abs_diff": 0.002,
                "mean_abs_diff": 0.002,
                "max_abs_diff": 0.4,  # max is not gated
            }
        },
        "metrics": {"roc_auc": {"reference": 0.9, "candidate": 0.899, "change": -0.001}},
    }
    assert check_budget(ok, budget) == []
    bad = {
        "label_agreement": 0.987,
        "label_output": "label",
        "outputs": {
            "probabilities": {
                "row_abs_diff": 0.012,
                "top_class_abs_diff": 0.009,
                "mean_abs_diff": 0.012,
                "max_abs_diff": 0.4,
            }
        },
        "metrics": {"accuracy": {"reference": 0.8, "candidate": 0.79, "change": -0.01}},
    }
    failures = check_budget(bad, budget)
    assert len(failures) == 3
    assert "label agreement 98.7000% < 99.50%" in failures[0]
    assert "mean of each row's largest |diff| 0.01200 > 0.01" in failures[1]
    assert "accuracy changed by -0.01000" in failures[2]
    assert check_budget(bad, VerificationBudget(0.98, 0.02, 0.02, 0.02)) == []


def test_nan_never_passes():
    nan = float("nan")
    f = {"label_agreement": nan, "outputs": {"p": {"row_abs_diff": nan, "top_class_abs_diff": nan}}}
    assert len(check_budget(f, VerificationBudget())) == 3


def test_a_collapsed_many_class_model_is_caught_per_row_not_by_the_class_mean():
    """214 classes; the candidate predicts one class for every row (as a broken static int8 did).

    The mean |diff| over all 214 probabilities stays under 0.01 (what the old gate looked at);
    each row's largest |diff| and the reference top class's |diff| are large.
    """
    rng = np.random.default_rng(0)
    n, c = 600, 214
    logits = rng.normal(size=(n, c)) * 3
    ref = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    cand = ref.copy()
    cand[:, 0] += 1.0
    cand /= cand.sum(axis=1, keepdims=True)  # class 0 wins almost every row
    figures = compare_outputs({"probabilities": ref}, {"probabilities": cand})
    stats = figures["outputs"]["probabilities"]
    assert stats["mean_abs_diff"] < 0.01  # the per-class mean hides it
    assert figures["label_agreement"] < 0.05
    no_label_gate = VerificationBudget(min_label_agreement=0.0)
    failures = check_budget(figures, no_label_gate)
    assert any("row's largest |diff|" in f for f in failures)
    assert any("top value" in f for f in failures)
    assert stats["row_abs_diff"] > 0.1 and stats["top_class_abs_diff"] > 0.05


def test_budget_validation_message():
    with pytest.raises(ConfigError, match=r"--min-label-agreement: must be in \[0, 1\], got 99.5"):
        VerificationBudget(min_label_agreement=99.5)
    with pytest.raises(ConfigError, match=r"--max-top-class-abs-diff: must be >= 0, got -1"):
        VerificationBudget(max_top_class_abs_diff=-1)
