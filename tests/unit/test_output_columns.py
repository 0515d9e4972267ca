"""Several columns from one model output: argmax label, its probability, selected classes, top-k."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow as pa
import pytest

from batchinfer.errors import ConfigError, ModelError
from batchinfer.job import Job
from batchinfer.scoring.tensors import output_arrow_schema, score_batch, top_k_indices
from tests.support import models
from tests.support.data import job_config, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]
CLASSES = ["bronze", "silver", "gold", "platinum"]


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("outcols")
    data = write_partitioned(root / "events", days=("2026-11-28",), files_per_day=1, rows_per_file=5)
    model = models.sklearn_multiclass(root / "mc.onnx", n_features=4, n_classes=4)
    return root, data, model


def _cfg(ws, outputs, **sections):
    root, data, model = ws
    return job_config(data, model, root / "out", features=FEATURES, outputs=outputs, **sections)


def _plan(ws, outputs):
    return Job.from_config(_cfg(ws, outputs)).plan()


def _score(ws, plan, x):
    sess = ort.InferenceSession(str(ws[2]), providers=["CPUExecutionProvider"])
    batch = pa.record_batch(
        {"id": pa.array(np.arange(len(x))), "ds": pa.array(["d"] * len(x))}
        | {f: x[:, j] for j, f in enumerate(FEATURES)}
    )
    schema = output_arrow_schema(plan.spec, batch.schema)
    names = plan.spec.output_names
    out = score_batch(batch, plan.spec, lambda feeds: sess.run(names, feeds), schema)
    probs = sess.run(["probabilities"], {"input": x})[0]
    return out, probs


ALL_DERIVATIONS = {
    "probabilities": [
        {"column": "p_gold", "select": 2},
        {"column": "tier", "argmax": True, "classes": CLASSES},
        {"column": "tier_prob", "max": True},
        {"column": "top2", "top_k": 2, "classes": CLASSES},
        {"column": "top3_idx", "top_k": 3, "scores_column": "top3_p"},
        {"column": "all_probs"},
    ],
    "label": {"column": "label"},
}


def test_each_derivation_matches_numpy_on_a_multiclass_model(ws):
    plan = _plan(ws, ALL_DERIVATIONS)
    assert plan.spec.output_names == ["probabilities", "label"]  # one fetch per ONNX output
    x = np.random.default_rng(5).normal(size=(64, 4)).astype(np.float32)
    out, probs = _score(ws, plan, x)
    assert out.column_names == [
        "id", "ds", "p_gold", "tier", "tier_prob", "top2", "top2_scores", "top3_idx", "top3_p",
        "all_probs", "label",
    ]  # fmt: skip
    order = np.argsort(-probs, axis=1, kind="stable")
    np.testing.assert_array_equal(out.column("p_gold").to_numpy(), probs[:, 2])
    assert out.column("tier").to_pylist() == [CLASSES[i] for i in probs.argmax(axis=1)]
    np.testing.assert_array_equal(out.column("tier_prob").to_numpy(), probs.max(axis=1))
    assert out.column("top2").to_pylist() == [[CLASSES[i] for i in row[:2]] for row in order]
    np.testing.assert_array_equal(
        np.array(out.column("top2_scores").to_pylist()), np.take_along_axis(probs, order[:, :2], axis=1)
    )
    assert out.column("top3_idx").to_pylist() == order[:, :3].tolist()
    np.testing.assert_array_equal(
        np.array(out.column("top3_p").to_pylist()), np.take_along_axis(probs, order[:, :3], axis=1)
    )
    np.testing.assert_array_equal(np.array(out.column("all_probs").to_pylist()), probs)
    # The argmax label and the first top-k label agree, and so do their probabilities.
    assert [r[0] for r in out.column("top2").to_pylist()] == out.column("tier").to_pylist()
    np.testing.assert_array_equal(
        [r[0] for r in out.column("top2_scores").to_pylist()], out.column("tier_prob").to_numpy()
    )


def test_output_schema_is_known_at_plan_time(ws):
    summary = _plan(ws, ALL_DERIVATIONS).summary()["outputs"]
    assert summary["tier"] == {"output": "probabilities", "mode": "argmax", "type": "string"}
    assert summary["tier_prob"]["type"] == "float32"
    assert summary["top2"]["type"] == "list<string>" and summary["top2_scores"]["type"] == "list<float32>"
    assert summary["top3_idx"]["type"] == "list<int64>"


def test_top_k_breaks_ties_by_class_order():
    values = np.array([[0.2, 0.4, 0.4, 0.0]], dtype=np.float32)
    assert top_k_indices(values, 3).tolist() == [[1, 2, 0]]


def test_a_single_mapping_still_dumps_as_a_mapping(ws):
    cfg = Job.from_config(_cfg(ws, ALL_DERIVATIONS)).config
    dumped = cfg.model_dump(mode="json")["model"]["outputs"]
    assert dumped["label"] == {
        "column": "label", "select": None, "argmax": False, "max": False, "top_k": None,
        "classes": None, "scores_column": None,
    }  # fmt: skip
    assert isinstance(dumped["probabilities"], list) and len(dumped["probabilities"]) == 6


@pytest.mark.parametrize(
    ("outputs", "where", "message"),
    [
        (
            {"probabilities": [{"column": "a", "max": True}, {"column": "t", "top_k": 5}]},
            "model.outputs.probabilities[1].top_k",
            "top_k=5 is more than the 4 classes of output 'probabilities'",
        ),
        (
            {"probabilities": [{"column": "t", "top_k": 2, "classes": ["a", "b", "c"]}]},
            "model.outputs.probabilities.classes",
            "3 class names given, output 'probabilities' has 4 columns",
        ),
        (
            {"label": {"column": "t", "top_k": 1}},
            "model.outputs.label",
            "'top_k' needs a [N, C] output, but 'label' has shape",
        ),
        (
            {"label": {"column": "m", "max": True}},
            "model.outputs.label",
            "'max' needs a [N, C] output",
        ),
    ],
)
def test_bad_derivations_against_the_model_are_model_errors(ws, outputs, where, message):
    with pytest.raises(ModelError) as info:
        _plan(ws, outputs)
    assert f"{where}: {message}" in info.value.message


@pytest.mark.parametrize(
    ("outputs", "where", "message"),
    [
        (
            {"probabilities": [{"column": "x", "max": True}, {"column": "x", "select": 1}]},
            "model.outputs",
            "column names ['x'] are used twice",
        ),
        (
            {"probabilities": [{"column": "top", "top_k": 2}, {"column": "top_scores", "max": True}]},
            "model.outputs",
            "column names ['top_scores'] are used twice",
        ),
        (
            {"probabilities": {"column": "t", "top_k": 3, "classes": ["a", "b"]}},
            "model.outputs.probabilities",
            "top_k=3 is more than the 2 classes given",
        ),
        (
            {"probabilities": {"column": "t", "max": True, "select": 1}},
            "model.outputs.probabilities",
            "'select' and 'max' are exclusive",
        ),
        (
            {"probabilities": {"column": "t", "max": True, "classes": ["a"]}},
            "model.outputs.probabilities",
            "'classes' names the labels of 'argmax' or 'top_k'",
        ),
        (
            {"probabilities": {"column": "t", "top_k": 2, "classes": ["a", "a", "b", "c"]}},
            "model.outputs.probabilities",
            "'classes' lists ['a'] twice",
        ),
        (
            {"probabilities": {"column": "t", "top_k": 0}},
            "model.outputs.probabilities.top_k",
            "greater than or equal to 1",
        ),
        ({"probabilities": []}, "model.outputs.probabilities", "at least 1 item"),
        (
            {"probabilities": {"column": "t", "scores_column": "s"}},
            "model.outputs.probabilities",
            "'scores_column' names the scores of 'top_k'",
        ),
    ],
)
def test_bad_output_configs_are_config_errors(ws, outputs, where, message):
    with pytest.raises(ConfigError) as info:
        Job.from_config(_cfg(ws, outputs))
    problems = dict(info.value.problems)
    assert where in problems, problems
    assert message in problems[where]
