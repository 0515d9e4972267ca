"""Arrow → tensors → outputs, on real onnxruntime sessions, without Spark."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest
from onnx import TensorProto

from batchinfer.errors import InputDataError
from batchinfer.job import Job
from batchinfer.scoring.tensors import output_arrow_schema, run_sliced, score_batch
from tests.support import models
from tests.support.data import job_config, write_partitioned


def _plan(tmp_path, model, features, outputs, inputs=None, extra=None, **sections):
    data = write_partitioned(
        tmp_path / "events", rows_per_file=5, days=("2026-11-28",), files_per_day=1, extra=extra
    )
    cfg = job_config(data, model, tmp_path / "out", features=features, outputs=outputs, **sections)
    if inputs:
        cfg["model"]["inputs"] = inputs
    return Job.from_config(cfg).plan()


def _run(model_path, plan, batch):
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in plan.spec.outputs]
    schema = output_arrow_schema(plan.spec, batch.schema)
    return score_batch(batch, plan.spec, lambda feeds: sess.run(names, feeds), schema)


def test_columns_select_argmax_classes_and_array_outputs(tmp_path):
    model, w = models.linear_classifier(tmp_path / "m.onnx", 3, n_classes=3)
    outputs = {
        "probabilities": {"column": "p1", "select": 1},
        "label": {"column": "label"},
    }
    plan = _plan(tmp_path, model, ["f0", "f1", "f2"], outputs)
    x = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    batch = pa.record_batch(
        {"id": pa.array([1, 2, 3, 4]), "ds": pa.array(["d"] * 4), "f0": x[:, 0], "f1": x[:, 1], "f2": x[:, 2]}
    )
    out = _run(model, plan, batch)
    logits = x @ w
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert out.column_names == ["id", "ds", "p1", "label"]
    np.testing.assert_allclose(out.column("p1").to_numpy(), probs[:, 1], atol=1e-6)
    assert out.column("label").to_pylist() == list(logits.argmax(axis=1))

    plan2 = _plan(
        tmp_path / "b",
        model,
        ["f0", "f1", "f2"],
        {"probabilities": {"column": "probs"}, "label": {"column": "lab"}},
    )
    plan3 = _plan(
        tmp_path / "c",
        model,
        ["f0", "f1", "f2"],
        {"probabilities": {"column": "cls", "argmax": True, "classes": ["lo", "mid", "hi"]}},
    )
    out2 = _run(model, plan2, batch)
    out3 = _run(model, plan3, batch)
    np.testing.assert_allclose(np.array(out2.column("probs").to_pylist()), probs, atol=1e-6)
    assert out3.column("cls").to_pylist() == [["lo", "mid", "hi"][i] for i in logits.argmax(axis=1)]


def test_several_inputs_and_outputs_with_model_dtypes(tmp_path):
    model = models.two_input_model(tmp_path / "two.onnx")

    def extra(n, rng):
        return {"k": np.arange(n, dtype=np.int32)}

    plan = _plan(
        tmp_path,
        model,
        ["f0", "f1", "f2"],
        {"sum": {"column": "s"}, "doubled": {"column": "d"}},
        inputs={"a": {"columns": ["f0", "f1", "f2"]}, "b": {"columns": ["k"]}},
        extra=extra,
    )
    assert [b.dtype for b in plan.spec.inputs] == ["float32", "int64"]
    a = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    batch = pa.record_batch(
        {
            "id": [1, 2],
            "ds": ["d", "d"],
            "f0": a[:, 0],
            "f1": a[:, 1],
            "f2": a[:, 2],
            "k": pa.array([10, 20], pa.int32()),
        }
    )
    out = _run(model, plan, batch)
    assert out.column("s").to_pylist() == [16.0, 35.0]
    assert out.column("d").to_pylist() == [[2, 4, 6], [8, 10, 12]]


@pytest.mark.parametrize("dtype", [TensorProto.INT64, TensorProto.INT32])
def test_array_column_to_int_tensor(tmp_path, dtype):
    model = models.int_input_model(tmp_path / "tok.onnx", dtype=dtype, width=4)

    def extra(n, rng):
        return {
            "tokens": pa.array([list(r) for r in rng.integers(0, 100, size=(n, 4))], pa.list_(pa.int64()))
        }

    plan = _plan(
        tmp_path,
        model,
        ["f0"],
        {"total": {"column": "total"}},
        inputs={"tokens": {"column": "tokens"}},
        extra=extra,
    )
    tokens = pa.array([[1, 2, 3, 4], [10, 20, 30, 40]], pa.list_(pa.int64()))
    batch = pa.record_batch({"id": [1, 2], "ds": ["d", "d"], "tokens": tokens})
    assert _run(model, plan, batch).column("total").to_pylist() == [10.0, 100.0]
    ragged = pa.record_batch({"id": [1, 2], "ds": ["d", "d"], "tokens": pa.array([[1, 2, 3, 4], [1]])})
    with pytest.raises(InputDataError, match="rows of different lengths"):
        _run(model, plan, ragged)


def test_float64_model_input(tmp_path):
    model, w = models.linear_classifier(tmp_path / "m64.onnx", 2, dtype=TensorProto.DOUBLE)
    plan = _plan(tmp_path, model, ["f0", "f1"], {"probabilities": {"column": "p", "select": 0}})
    assert plan.spec.inputs[0].dtype == "float64"
    x = np.array([[0.5, -1.0]], dtype=np.float64)
    batch = pa.record_batch(
        {"id": [1], "ds": ["d"], "f0": pa.array(x[:, 0], pa.float32()), "f1": pa.array(x[:, 1], pa.float32())}
    )
    out = _run(model, plan, batch)
    logits = x @ w
    expected = np.exp(logits[0, 0]) / np.exp(logits).sum()
    assert out.schema.field("p").type == pa.float64()
    assert abs(out.column("p")[0].as_py() - expected) < 1e-6


def test_invalid_feature_policy_fail_and_fill(tmp_path):
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 2)
    plan = _plan(tmp_path, model, ["f0", "f1"], {"probabilities": {"column": "p", "select": 1}})
    for bad in (
        pa.array([1.0, None], pa.float32()),
        pa.array([1.0, np.nan], pa.float32()),
        pa.array([np.inf, 1.0], pa.float32()),
    ):
        batch = pa.record_batch(
            {"id": [1, 2], "ds": ["d", "d"], "f0": pa.array([0.1, 0.2], pa.float32()), "f1": bad}
        )
        with pytest.raises(InputDataError, match="column 'f1' has 1 (null|NaN/inf) value"):
            _run(model, plan, batch)
    fill = _plan(
        tmp_path / "fill",
        model,
        ["f0", "f1"],
        {"probabilities": {"column": "p", "select": 1}},
        input={"invalid_features": "fill", "fill_value": 0.0},
    )
    batch = pa.record_batch(
        {
            "id": [1, 2],
            "ds": ["d", "d"],
            "f0": pa.array([0.0, 0.0], pa.float32()),
            "f1": pa.array([None, np.nan], pa.float32()),
        }
    )
    out = _run(model, fill, batch)
    assert np.allclose(out.column("p").to_numpy(), 0.5)  # all-zero features → equal logits


def test_slicing_does_not_change_fp32_results():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 2)).astype(np.float32)
    x = rng.normal(size=(1003, 5)).astype(np.float32)

    def run(feeds):
        return [feeds["x"] @ w]

    whole = run_sliced(run, {"x": x}, len(x), 10_000)[0]
    sliced = run_sliced(run, {"x": x}, len(x), 100)[0]
    assert sliced.shape == whole.shape
    np.testing.assert_array_equal(sliced, whole)
