"""Quantization, calibration sampling and scikit-learn export on tiny models and datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from batchinfer.errors import ConfigError, InputDataError, ModelError
from batchinfer.model.artifact import load_model
from batchinfer.model.calibration import mapping_from_columns
from batchinfer.model.quantize import (
    QuantizeOptions,
    flatten_gemm_bias,
    last_layer_nodes,
    quantize_model,
    uniform_batches,
)
from tests.support import models
from tests.support.data import write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]


def tiny_mlp(path, n_features: int = 4, hidden: int = 16, seed: int = 0) -> Path:
    """x → MatMul+Add(bias [1, H]) → Relu → MatMul+Add → Softmax (probabilities) / ArgMax (label).

    Biases are [1, H], as skl2onnx writes them (the shape that trips per-channel QDQ).
    """
    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(n_features, hidden)).astype(np.float32)
    b1 = rng.normal(scale=0.1, size=(1, hidden)).astype(np.float32)
    w2 = (rng.normal(size=(hidden, 2)) / np.sqrt(hidden)).astype(np.float32)
    b2 = np.zeros((1, 2), dtype=np.float32)
    nodes = [
        helper.make_node("MatMul", ["input", "w1"], ["h1"], name="dense1"),
        helper.make_node("Add", ["h1", "b1"], ["a1"], name="bias1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="dense2"),
        helper.make_node("Add", ["h2", "b2"], ["logits"], name="bias2"),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1, name="softmax"),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0, name="argmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", n_features])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def with_label(n, rng):
    return {"y": rng.integers(0, 2, n)}


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant")
    data = write_partitioned(root / "data", files_per_day=2, rows_per_file=600, extra=with_label)
    model = tiny_mlp(root / "mlp.onnx")
    return root, data, model


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["probabilities", "label"], {"input": x})


def _run_exact(path, x):
    """The quantized model's own arithmetic (Q/DQ nodes as written): the same on every CPU."""
    from batchinfer.model.emulate import exact_session, integer_model

    content = Path(path).read_bytes()
    if b"MatMulInteger" in content:  # dynamic int8: its integer MatMuls as exact float ops
        content = integer_model(content)
    return exact_session(content).run(["probabilities", "label"], {"input": x})


def assert_int8_kernels_add_little(model, candidate, x) -> None:
    """The int8 kernels of *this* CPU may add error to the quantization itself, but only a little.

    The bound is measured here, on the same machine: the error of the quantized arithmetic
    (exact, CPU-independent) plus the requantization rounding of fused kernels (one uint8 step
    of the output scale on a probability). On an AVX2 CPU a full-range U8S8 model saturates
    and fails this; the recipe ``auto`` picks there (7-bit weights) does not.
    """
    ref, cand, exact = _run(model, x)[0], _run(candidate, x)[0], _run_exact(candidate, x)[0]
    quantization_error = np.abs(ref - exact).mean()
    assert np.abs(ref - cand).mean() <= 2 * quantization_error + 1 / 255


def _x(n=500, seed=3):
    return np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)


def test_dynamic_int8_is_close_and_keeps_the_signature(assets, tmp_path):
    _, _, model = assets
    out = tmp_path / "dyn.onnx"
    result = quantize_model(model, out, QuantizeOptions(method="dynamic-int8"))
    assert result.parameters["per_channel"] is False and result.parameters["keep_float_last"] == 0
    assert result.parameters["target_cpu_requested"] == "auto"
    assert_int8_kernels_add_little(model, out, _x())
    assert load_model(out).signature.inputs == load_model(model).signature.inputs


def test_static_int8_calibrates_on_the_job_mapping_with_defaults(assets, tmp_path):
    _, data, model = assets
    mapping = mapping_from_columns(str(data), FEATURES, load_model(model))
    opts = QuantizeOptions(method="static-int8", calibration_rows=1000, calibration_batch_rows=300)
    # Per-file sample sizes differ (quotas): the histogram calibrator needs equal batches.
    result = quantize_model(
        model, tmp_path / "st.onnx", opts, calibration_feeds=mapping.iter_feeds(1000, batch_rows=300)
    )
    p = result.parameters
    assert (p["calibration"], p["per_channel"], p["keep_float_last"], p["format"]) == (
        "percentile",
        True,
        1,
        "QDQ",
    )
    assert result.calibration_rows == 900 and result.calibration_batches == 3
    assert len(result.excluded_nodes) == 1  # the last layer stays float
    proto = onnx.load(str(tmp_path / "st.onnx"))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    assert_int8_kernels_add_little(model, tmp_path / "st.onnx", _x())


def test_target_cpu_recipes_and_auto():
    from batchinfer.model.quantize import resolve_target_cpu

    assert [resolve_target_cpu("auto", p) for p in ("avx2", "avx512bw", "baseline")] == ["avx2"] * 3
    assert [resolve_target_cpu("auto", p) for p in ("amx", "avx512-vnni", "avx-vnni")] == ["avx512-vnni"] * 3
    assert resolve_target_cpu("auto", "arm64-dotprod") == "arm64"
    avx2 = QuantizeOptions(method="static-int8", target_cpu="avx2").resolved()
    vnni = QuantizeOptions(method="static-int8", target_cpu="avx512-vnni").resolved()
    arm = QuantizeOptions(method="static-int8", target_cpu="arm64").resolved()
    assert (avx2.reduce_range, vnni.reduce_range, arm.reduce_range) == (True, False, False)
    assert (avx2.activation_type, arm.activation_type) == ("uint8", "int8")
    assert QuantizeOptions(method="dynamic-int8", target_cpu="avx2").parameters()["reduce_range"] is True
    with pytest.raises(ConfigError, match="--target-cpu: must be one of"):
        QuantizeOptions(method="static-int8", target_cpu="avx3")


def test_avx2_recipe_cannot_saturate_and_full_range_can(assets, tmp_path):
    """7-bit weights keep every uint8×int8 pair sum inside int16: checked on the weights, any CPU."""
    from batchinfer.model.emulate import saturation_risk

    _, data, model = assets
    mapping = mapping_from_columns(str(data), FEATURES, load_model(model))
    risks = {}
    for target in ("avx2", "avx512-vnni"):
        opts = QuantizeOptions(method="static-int8", target_cpu=target, keep_float_last=0)
        out = tmp_path / f"{target}.onnx"
        result = quantize_model(model, out, opts, calibration_feeds=mapping.iter_feeds(600, batch_rows=200))
        assert result.parameters["target_cpu"] == target
        assert result.parameters["reduce_range"] is (target == "avx2")
        risks[target] = saturation_risk(out.read_bytes())
    assert risks["avx2"]["columns_at_risk"] == 0 and len(risks["avx2"]["layers"]) == 2
    assert risks["avx512-vnni"]["possible"] is True  # full-range weights of this model can saturate


@pytest.mark.parametrize("calibration", ["minmax", "entropy"])
def test_static_int8_other_calibrations(assets, tmp_path, calibration):
    _, data, model = assets
    mapping = mapping_from_columns(str(data), FEATURES, load_model(model))
    opts = QuantizeOptions(
        method="static-int8", calibration=calibration, per_channel=False, keep_float_last=0
    )
    result = quantize_model(
        model, tmp_path / "s.onnx", opts, calibration_feeds=mapping.iter_feeds(600, batch_rows=200)
    )
    assert result.excluded_nodes == [] and result.parameters["calibration"] == calibration


def test_static_int8_without_data_is_a_config_error(assets, tmp_path):
    _, _, model = assets
    with pytest.raises(ConfigError, match="static-int8 needs calibration data"):
        quantize_model(model, tmp_path / "s.onnx", QuantizeOptions(method="static-int8"))


def test_unknown_exclude_node_is_named(assets, tmp_path):
    _, _, model = assets
    with pytest.raises(ConfigError, match=r"\['nope'\]"):
        quantize_model(
            model, tmp_path / "d.onnx", QuantizeOptions(method="dynamic-int8", exclude_nodes=("nope",))
        )


def test_exclude_nodes_names_survive_pre_processing_fusion(assets, tmp_path):
    """`inspect --nodes` shows 'dense1' (MatMul); pre-processing fuses it with its Add into a Gemm."""
    from batchinfer.model.emulate import quantized_layers

    _, data, model = assets
    mapping = mapping_from_columns(str(data), FEATURES, load_model(model))
    opts = QuantizeOptions(method="static-int8", exclude_nodes=("dense1",), keep_float_last=0)
    out = tmp_path / "s.onnx"
    result = quantize_model(model, out, opts, calibration_feeds=mapping.iter_feeds(600, batch_rows=200))
    assert result.excluded_nodes == ["dense1/MatMulAddFusion"]
    assert [x["node"] for x in quantized_layers(onnx.load(str(out)))] == ["dense2/MatMulAddFusion"]
    opts = QuantizeOptions(method="static-int8", keep_float_first=1, keep_float_last=0)
    result = quantize_model(model, out, opts, calibration_feeds=mapping.iter_feeds(600, batch_rows=200))
    assert result.excluded_nodes == ["dense1/MatMulAddFusion"] and result.parameters["keep_float_first"] == 1


def test_layers_only_keeps_the_outputs_float(assets, tmp_path):
    """quantize_ops=layers: no Q/DQ around Softmax/ArgMax, so probabilities are not rounded to 1/255."""
    _, data, model = assets
    mapping = mapping_from_columns(str(data), FEATURES, load_model(model))
    ops = {}
    for mode in ("layers", "all"):
        opts = QuantizeOptions(method="static-int8", quantize_ops=mode, keep_float_last=0)
        out = tmp_path / f"{mode}.onnx"
        quantize_model(model, out, opts, calibration_feeds=mapping.iter_feeds(600, batch_rows=200))
        proto = onnx.load(str(out))
        producers = {o: n.op_type for n in proto.graph.node for o in n.output}
        ops[mode] = producers["probabilities"]
    assert ops == {"layers": "Softmax", "all": "DequantizeLinear"}


def test_fp16_keeps_float32_inputs_and_outputs(assets, tmp_path):
    _, _, model = assets
    out = tmp_path / "h.onnx"
    quantize_model(model, out, QuantizeOptions(method="fp16"))
    sig = load_model(out).signature
    assert sig.input("input").dtype == "float32" and sig.output("probabilities").dtype == "float32"
    assert any(t.data_type == TensorProto.FLOAT16 for t in onnx.load(str(out)).graph.initializer)
    ref, cand = _run(model, _x()), _run(out, _x())
    assert np.abs(ref[0] - cand[0]).max() < 5e-3


def test_options_are_validated_together():
    with pytest.raises(ConfigError) as err:
        QuantizeOptions(method="int4", calibration="magic", percentile=120)
    text = str(err.value)
    assert "--method" in text and "--calibration" in text and "--percentile" in text


def test_refuses_to_overwrite_the_input(assets):
    _, _, model = assets
    with pytest.raises(ConfigError, match="is the input model itself"):
        quantize_model(model, model, QuantizeOptions(method="dynamic-int8"))


def test_uniform_batches_recut_the_stream():
    feeds = [{"x": np.arange(n)} for n in (5, 2, 7, 1)]
    sizes = [len(b["x"]) for b in uniform_batches(feeds, 4)]
    assert sizes == [4, 4, 4]  # 15 rows: the partial last batch (3) is dropped
    assert [len(b["x"]) for b in uniform_batches([{"x": np.arange(3)}], 4)] == [3]
    joined = np.concatenate([b["x"] for b in uniform_batches(feeds, 4)])
    assert joined.tolist() == [0, 1, 2, 3, 4, 0, 1, 0, 1, 2, 3, 4]  # order kept


def test_flatten_gemm_bias_and_last_layers():
    w = numpy_helper.from_array(np.ones((3, 2), np.float32), "w")
    b = numpy_helper.from_array(np.ones((1, 2), np.float32), "b")
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g"),
            helper.make_node("Relu", ["y"], ["z"], name="r"),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 2])],
        [w, b],
    )
    model = helper.make_model(graph)
    assert flatten_gemm_bias(model) == 1
    assert list(model.graph.initializer[1].dims) == [2]
    assert last_layer_nodes(model, 1) == ["g"] and last_layer_nodes(model, 0) == []


def test_sample_is_spread_over_files_and_reproducible(assets):
    _, data, model = assets
    mapping = mapping_from_columns(str(data), FEATURES, load_model(model))
    a = mapping.sample(401, seed=5, extra_columns=["id", "ds"])
    b = mapping.sample(401, seed=5, extra_columns=["id", "ds"])
    assert a.num_rows == 401 and a.column("id").to_pylist() == b.column("id").to_pylist()
    assert set(a.column("ds").to_pylist()) == {"2026-11-27", "2026-11-28"}
    assert len(set(a.column("id").to_pylist())) == 401


def test_mapping_errors_name_the_problem(assets, tmp_path):
    _, data, model = assets
    with pytest.raises(InputDataError, match="'nope' not found"):
        mapping_from_columns(str(data), ["f0", "f1", "f2", "nope"], load_model(model))
    with pytest.raises(InputDataError, match="expects 4 features per row"):
        mapping_from_columns(str(data), ["f0", "f1"], load_model(model))
    two = models.two_input_model(tmp_path / "two.onnx")
    with pytest.raises(ConfigError, match="maps exactly one model input"):
        mapping_from_columns(str(data), ["f0"], load_model(two))


def test_export_pipeline_gives_probability_tensors(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from batchinfer.model.export import export_sklearn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32) * 10 + 3
    y = (x[:, 0] + x[:, 1] > 6).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    path = export_sklearn(pipe, tmp_path / "pipe.onnx")  # n_features from n_features_in_
    sig = load_model(path).signature
    assert (
        sig.output("probabilities").onnx_type == "tensor(float)" and sig.output("probabilities").shape[1] == 2
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probs = sess.run(["label", "probabilities"], {"input": x})
    assert np.abs(probs - pipe.predict_proba(x)).max() < 1e-4
    assert (labels == pipe.predict(x)).all()


def test_export_needs_n_features_when_unfitted(tmp_path):
    from batchinfer.model.export import export_sklearn

    class Bare:
        pass

    with pytest.raises(ModelError, match="pass n_features"):
        export_sklearn(Bare(), tmp_path / "x.onnx")


def test_dynamic_int8_emulations(assets, tmp_path):
    """Dynamic int8 gets an exact session and an AVX2 one; 7-bit weights make them agree exactly."""
    from batchinfer.model.emulate import avx2_model, exact_session, integer_model, saturation_risk

    _, _, model = assets
    outs = {}
    for target in ("avx2", "avx512-vnni"):
        out = tmp_path / f"dyn-{target}.onnx"
        quantize_model(model, out, QuantizeOptions(method="dynamic-int8", target_cpu=target))
        content = out.read_bytes()
        feeds = {"input": _x()}
        exact = exact_session(integer_model(content)).run(["probabilities"], feeds)[0]
        avx2_bytes, layers = avx2_model(content)
        avx2 = exact_session(avx2_bytes).run(["probabilities"], feeds)[0]
        assert len(layers) == 2
        outs[target] = (np.abs(exact - avx2).max(), saturation_risk(content)["columns_at_risk"])
    assert outs["avx2"] == (0.0, 0)  # 7-bit weights: no pair can leave int16
    assert outs["avx512-vnni"][1] > 0  # full-range weights can
