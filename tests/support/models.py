"""Tiny ONNX models built with onnx.helper: exact, fast, and each shaped to test one path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


def _save(model: onnx.ModelProto, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def linear_classifier(
    path,
    n_features: int,
    *,
    n_classes: int = 2,
    seed: int = 0,
    dtype=TensorProto.FLOAT,
    batch_dim="N",
    input_name="input",
) -> tuple[Path, np.ndarray]:
    """probabilities = softmax(x @ W), label = argmax; returns (path, W)."""
    rng = np.random.default_rng(seed)
    np_dtype = {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64}[dtype]
    w = rng.normal(size=(n_features, n_classes)).astype(np_dtype)
    nodes = [
        helper.make_node("MatMul", [input_name, "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "linear",
        [helper.make_tensor_value_info(input_name, dtype, [batch_dim, n_features])],
        [
            helper.make_tensor_value_info("probabilities", dtype, [batch_dim, n_classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [batch_dim]),
        ],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 8
    return _save(model, path), w


def two_input_model(path) -> Path:
    """sum = a (float32 [N,3]) summed per row + b (int64 [N]) cast to float; doubled = 2*a [N,3]."""
    nodes = [
        helper.make_node("ReduceSum", ["a", "axes"], ["asum"], keepdims=0),
        helper.make_node("Cast", ["b"], ["bf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["asum", "bf"], ["sum"]),
        helper.make_node("Mul", ["a", "two"], ["doubled"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("b", TensorProto.INT64, ["N"]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["N"]),
            helper.make_tensor_value_info("doubled", TensorProto.FLOAT, ["N", 3]),
        ],
        [
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
            numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return _save(model, path)


def int_input_model(path, dtype=TensorProto.INT64, width: int = 4) -> Path:
    """total = sum of token ids per row (as float), for int64/int32 array inputs."""
    nodes = [
        helper.make_node("Cast", ["tokens"], ["tf"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["tf", "axes"], ["total"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "tokens",
        [helper.make_tensor_value_info("tokens", dtype, ["N", width])],
        [helper.make_tensor_value_info("total", TensorProto.FLOAT, ["N"])],
        [numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    return _save(model, path)


def zipmap_model(path, n_features: int = 3) -> Path:
    """A scikit-learn logistic regression exported WITH ZipMap (sequence-of-maps probabilities)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, n_features)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    clf = LogisticRegression().fit(x, y)
    onx = convert_sklearn(
        clf, initial_types=[("input", FloatTensorType([None, n_features]))], target_opset=OPSET
    )
    path = Path(path)
    path.write_bytes(onx.SerializeToString())
    return path


def future_opset_model(path) -> Path:
    """A valid protobuf stamped with an opset far newer than any onnxruntime supports."""
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "future",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 99)])
    path = Path(path)
    path.write_bytes(model.SerializeToString())
    return path


def sklearn_multiclass(path, n_features: int = 4, n_classes: int = 4, seed: int = 3) -> Path:
    """A scikit-learn multinomial logistic regression exported without ZipMap.

    Outputs ``label`` (int64 [N]) and ``probabilities`` (float32 [N, n_classes]); imports
    both the default and the ``ai.onnx.ml`` operator sets, as real exports do.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, n_features)).astype(np.float32)
    y = (x @ rng.normal(size=(n_features, n_classes))).argmax(axis=1)
    clf = LogisticRegression(max_iter=500).fit(x, y)
    onx = convert_sklearn(
        clf,
        initial_types=[("input", FloatTensorType([None, n_features]))],
        options={id(clf): {"zipmap": False}},
        target_opset=OPSET,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def wide_activation_model(path, n_features: int = 64, width: int = 65536) -> Path:
    """score = mean((sum of the features) × w) with w = linspace(0, 1, width): an [N, width] float32
    intermediate (width × 4 bytes per row, 256 KiB at the default), cheap to compute.

    The score equals ``0.5 × sum(x)`` up to float rounding: a memory-hungry model whose answer
    is known.
    """
    w = numpy_helper.from_array(np.linspace(0, 1, width, dtype=np.float32).reshape(1, width), "W")
    axes = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes")
    nodes = [
        helper.make_node("ReduceSum", ["input", "axes"], ["total"], keepdims=1),
        helper.make_node("Mul", ["total", "W"], ["wide"]),  # [N, 1] × [1, width] → [N, width]
        helper.make_node("ReduceMean", ["wide"], ["score"], axes=[1], keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        "wide_activation",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 1])],
        initializer=[w, axes],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 8
    return _save(model, path)
