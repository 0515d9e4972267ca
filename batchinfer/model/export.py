"""Export fitted scikit-learn estimators and pipelines to ONNX, probabilities as a tensor.

>>> export_sklearn(clf, "models/churn.onnx", n_features=12)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from batchinfer.errors import ModelError


def export_sklearn(
    estimator,
    path: str | Path,
    *,
    n_features: int,
    input_name: str = "input",
    target_opset: int = 17,
    dtype: str = "float32",
) -> Path:
    """Write ``estimator`` (a fitted classifier, regressor or Pipeline) as ONNX.

    Classifiers get outputs ``label`` [N] and ``probabilities`` [N, C] as a plain tensor
    (ZipMap disabled: a sequence of maps cannot be scored in batches).
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    tensor_type = {"float32": FloatTensorType, "float64": DoubleTensorType}.get(dtype)
    if tensor_type is None:
        raise ModelError(f"export dtype must be float32 or float64, got {dtype!r}")
    options = {}
    if hasattr(estimator, "predict_proba"):
        options = {id(estimator): {"zipmap": False}}
        steps = getattr(estimator, "steps", None)
        if steps:  # a Pipeline: the classifier is the last step
            options = {id(steps[-1][1]): {"zipmap": False}}
    try:
        onx = convert_sklearn(
            estimator,
            initial_types=[(input_name, tensor_type([None, n_features]))],
            options=options or None,
            target_opset=target_opset,
        )
    except Exception as exc:
        raise ModelError(f"cannot export {type(estimator).__name__} to ONNX: {exc}") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path
