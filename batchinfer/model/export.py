"""Export fitted scikit-learn estimators and pipelines to ONNX, probabilities as a tensor.

>>> export_sklearn(clf, "models/churn.onnx", n_features=12)  # doctest: +SKIP
>>> export_sklearn(make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y), "m.onnx")  # doctest: +SKIP

This is a Python API on purpose: run it where the fitted estimator lives (a notebook, the
training job). No command-line path loads pickles.
"""

from __future__ import annotations

from pathlib import Path

from batchinfer.errors import ModelError


def _final_estimator(estimator):
    """The estimator that produces the predictions: the last step of (nested) pipelines."""
    seen = 0
    while seen < 32:
        steps = getattr(estimator, "steps", None)
        if steps:
            last = steps[-1][1]
            if last in (None, "passthrough"):
                return estimator
            estimator = last
        elif hasattr(estimator, "best_estimator_") and hasattr(estimator, "cv_results_"):
            estimator = estimator.best_estimator_  # GridSearchCV and friends
        else:
            return estimator
        seen += 1
    return estimator


def export_sklearn(
    estimator,
    path: str | Path,
    *,
    n_features: int | None = None,
    input_name: str = "input",
    target_opset: int = 17,
    dtype: str = "float32",
) -> Path:
    """Write ``estimator`` (a fitted classifier, regressor or Pipeline) as ONNX.

    Classifiers get outputs ``label`` [N] and ``probabilities`` [N, C] as a plain tensor
    (ZipMap disabled: a sequence of maps cannot be scored in batches). ``n_features`` defaults
    to the fitted estimator's ``n_features_in_``.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor_type = {"float32": FloatTensorType, "float64": DoubleTensorType}.get(dtype)
    if tensor_type is None:
        raise ModelError(f"export dtype must be float32 or float64, got {dtype!r}")
    if n_features is None:
        n_features = getattr(estimator, "n_features_in_", None)
        if n_features is None:
            raise ModelError(
                f"cannot tell how many features {type(estimator).__name__} takes",
                hint="pass n_features=... (the estimator has no n_features_in_: is it fitted?)",
            )
    options = {}
    final = _final_estimator(estimator)
    if hasattr(final, "predict_proba") or hasattr(estimator, "predict_proba"):
        options = {id(final): {"zipmap": False}}
    try:
        onx = convert_sklearn(
            estimator,
            initial_types=[(input_name, tensor_type([None, n_features]))],
            options=options or None,
            target_opset=target_opset,
        )
    except Exception as exc:
        raise ModelError(f"cannot export {type(estimator).__name__} to ONNX: {exc}") from exc
    bad = [o.name for o in onx.graph.output if not o.type.HasField("tensor_type")]
    if bad:
        raise ModelError(
            f"the exported {type(estimator).__name__} has non-tensor outputs {bad} (a ZipMap?)",
            hint="export the classifier itself or a Pipeline ending in it; batch scoring needs tensors",
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path
