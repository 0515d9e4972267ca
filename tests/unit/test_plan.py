from __future__ import annotations

import pytest
from onnx import TensorProto

from batchinfer.config import validate_data
from batchinfer.errors import InputDataError, ModelError, OutputError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture
def data(tmp_path):
    def extra(n, rng):
        import numpy as np

        return {"tokens": [list(r) for r in rng.integers(0, 100, size=(n, 4))], "count": np.arange(n)}

    return write_partitioned(tmp_path / "events", rows_per_file=20, extra=extra)


@pytest.fixture
def model(tmp_path):
    return models.linear_classifier(tmp_path / "m.onnx", 4)[0]


def plan(cfg):
    return Job.from_config(cfg).plan()


def test_good_plan(data, model, tmp_path):
    p = plan(job_config(data, model, tmp_path / "out", features=FEATURES))
    assert p.selection.rows == 80
    assert p.spec.read_columns == ["id", "ds", *FEATURES]
    assert [o.mode for o in p.spec.outputs] == ["select", "scalar"]


def test_missing_column_named(data, model, tmp_path):
    with pytest.raises(InputDataError, match=r"columns\[1\]: column 'nope' not found"):
        plan(job_config(data, model, tmp_path / "out", features=["f0", "nope", "f2", "f3"]))
    with pytest.raises(InputDataError, match=r"passthrough\[0\]: column 'customer' not found"):
        plan(job_config(data, model, tmp_path / "out", features=FEATURES, passthrough=["customer", "ds"]))


def test_string_column_into_float_tensor(data, model, tmp_path):
    with pytest.raises(
        InputDataError, match=r"column 'cat' has type string, but ONNX input 'input' is tensor\(float\)"
    ):
        plan(job_config(data, model, tmp_path / "out", features=["f0", "f1", "f2", "cat"]))


def test_feature_count_mismatch(data, model, tmp_path):
    with pytest.raises(InputDataError, match="expects 4 features per row .* config gives 3 columns"):
        plan(job_config(data, model, tmp_path / "out", features=["f0", "f1", "f2"]))


def test_unknown_onnx_input_and_output_names(data, model, tmp_path):
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES, outputs={"probs": {"column": "score"}})
    cfg["model"]["inputs"] = {"x": {"columns": FEATURES}}
    with pytest.raises(ModelError) as info:
        plan(cfg)
    msg = str(info.value)
    assert "model.inputs.x: the model has no input 'x' (model inputs: ['input'])" in msg
    assert "model input 'input' is not mapped" in msg
    assert "model.outputs.probs: the model has no output 'probs'" in msg


def test_output_collision_is_a_config_error(data, model, tmp_path):
    from batchinfer.errors import ConfigError

    cfg = job_config(data, model, tmp_path / "out", features=FEATURES, outputs={"label": {"column": "id"}})
    with pytest.raises(ConfigError, match="collide with input.passthrough"):
        validate_data(cfg)


@pytest.mark.parametrize(
    "content, pattern",
    [(b"this is not onnx at all", "not a valid ONNX model"), (None, "not a valid ONNX model|cannot load")],
)
def test_non_onnx_and_truncated_models(data, model, tmp_path, content, pattern):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content if content is not None else model.read_bytes()[: len(model.read_bytes()) // 2])
    with pytest.raises(ModelError, match=pattern):
        plan(job_config(data, bad, tmp_path / "out", features=FEATURES))


def test_missing_model_file(data, tmp_path):
    with pytest.raises(ModelError, match="not found"):
        plan(job_config(data, tmp_path / "nope.onnx", tmp_path / "out", features=FEATURES))


def test_digest_mismatch(data, model, tmp_path):
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES)
    cfg["model"]["sha256"] = "0" * 64
    with pytest.raises(ModelError, match="digest mismatch: expected sha256 0{64}, got [0-9a-f]{64}"):
        plan(cfg)


def test_future_opset_is_a_model_error(data, tmp_path):
    m = models.future_opset_model(tmp_path / "future.onnx")
    cfg = job_config(data, m, tmp_path / "out", features=["f0", "f1"], outputs={"y": {"column": "y"}})
    cfg["model"]["inputs"] = {"x": {"columns": ["f0", "f1"]}}
    with pytest.raises(
        ModelError, match=r"cannot load model .*opset 99 is newer than this onnxruntime supports"
    ):
        plan(cfg)


def test_fixed_batch_dimension_rejected(data, tmp_path):
    m, _ = models.linear_classifier(tmp_path / "fixed.onnx", 4, batch_dim=1)
    with pytest.raises(ModelError, match="fixed batch dimension"):
        plan(job_config(data, m, tmp_path / "out", features=FEATURES))


def test_zipmap_output_rejected_at_plan_time(data, tmp_path):
    m = models.zipmap_model(tmp_path / "zip.onnx", n_features=3)
    cfg = job_config(
        data,
        m,
        tmp_path / "out",
        features=["f0", "f1", "f2"],
        outputs={"output_probability": {"column": "p"}, "output_label": {"column": "label"}},
    )
    with pytest.raises(ModelError, match="ZipMap"):
        plan(cfg)
    # Mapping only the tensor output is fine: the ZipMap output is simply not requested.
    cfg["model"]["outputs"] = {"output_label": {"column": "label"}}
    assert plan(cfg).spec.outputs[0].name == "output_label"


def test_int_tensor_refuses_float_columns_and_takes_array_columns(data, tmp_path):
    m = models.int_input_model(tmp_path / "tok.onnx", dtype=TensorProto.INT64, width=4)
    cfg = job_config(data, m, tmp_path / "out", features=FEATURES, outputs={"total": {"column": "total"}})
    cfg["model"]["inputs"] = {"tokens": {"columns": FEATURES}}
    with pytest.raises(InputDataError, match=r"has type float, but ONNX input 'tokens' is tensor\(int64\)"):
        plan(cfg)
    cfg["model"]["inputs"] = {"tokens": {"column": "tokens"}}
    p = plan(cfg)
    assert p.spec.inputs[0].array_column and p.spec.inputs[0].dtype == "int64"


def test_select_out_of_range_and_classes_count(data, model, tmp_path):
    cfg = job_config(
        data,
        model,
        tmp_path / "out",
        features=FEATURES,
        outputs={"probabilities": {"column": "score", "select": 5}},
    )
    with pytest.raises(ModelError, match=r"select=5 is out of range .*valid: 0..1"):
        plan(cfg)
    cfg["model"]["outputs"] = {"probabilities": {"column": "cls", "argmax": True, "classes": ["a", "b", "c"]}}
    with pytest.raises(ModelError, match="3 class names given, output 'probabilities' has 2 columns"):
        plan(cfg)


def test_missing_partition_and_unknown_partition_key(data, model, tmp_path):
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES)
    cfg["input"]["partitions"] = {"ds": "2030-01-01"}
    with pytest.raises(InputDataError, match=r"partition ds=2030-01-01 not found .*2026-11-28"):
        plan(cfg)
    cfg["input"]["allow_empty"] = True
    assert plan(cfg).selection.rows == 0
    cfg["input"]["partitions"] = {"day": "x"}
    with pytest.raises(InputDataError, match="'day' is not a partition column .* \\['ds'\\]"):
        plan(cfg)


def test_output_overlapping_input_refused(data, model):
    with pytest.raises(OutputError, match="overlaps input.path"):
        plan(job_config(data, model, data / "scores", features=FEATURES))
    with pytest.raises(OutputError, match="overlaps input.path"):
        plan(job_config(data, model, data, features=FEATURES))
