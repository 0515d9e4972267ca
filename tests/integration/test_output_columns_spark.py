"""Several columns from one output, end to end on local Spark, against in-process onnxruntime."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as ds
import pytest

from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]
CLASSES = ["bronze", "silver", "gold", "platinum"]
OUTPUTS = {
    "probabilities": [
        {"column": "tier", "argmax": True, "classes": CLASSES},
        {"column": "tier_prob", "max": True},
        {"column": "p_gold", "select": 2},
        {"column": "top3", "top_k": 3, "classes": CLASSES},
    ],
    "label": {"column": "label"},
}


@pytest.mark.parametrize(
    "engine",
    [
        {},  # workers read row groups with pyarrow and write the files themselves
        {"runtime": {"batch_rows": 300, "reader": "spark"}, "output": {"writer": "spark"}},
    ],
    ids=["pyarrow-io", "spark-io"],
)
def test_multiclass_columns_match_onnxruntime(spark, tmp_path, engine):
    data = write_partitioned(tmp_path / "events", rows_per_file=400, seed=11)
    model = models.sklearn_multiclass(tmp_path / "mc.onnx", n_features=4, n_classes=4)
    out = tmp_path / "out"
    cfg = job_config(data, model, out, features=FEATURES, outputs=OUTPUTS)
    for key, section in engine.items():
        cfg[key] = {**cfg[key], **section}
    res = Job.from_config(cfg).run(spark=spark)
    assert res.status == "succeeded" and res.rows_out == 1600

    scored = ds.dataset(out, partitioning="hive", ignore_prefixes=["_", "."]).to_table().sort_by("id")
    assert {"tier", "tier_prob", "p_gold", "top3", "top3_scores", "label"} <= set(scored.column_names)
    inputs = ds.dataset(data, partitioning="hive").to_table().sort_by("id")
    x = np.stack([inputs.column(f).to_numpy() for f in FEATURES], axis=1).astype(np.float32)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    label, probs = sess.run(["label", "probabilities"], {"input": x})
    order = np.argsort(-probs, axis=1, kind="stable")

    assert scored.column("id").to_pylist() == inputs.column("id").to_pylist()
    assert scored.column("tier").to_pylist() == [CLASSES[i] for i in probs.argmax(axis=1)]
    # Same fp32 model, rows scored in other batches: equal up to float32 rounding.
    close = {"rtol": 1e-6, "atol": 1e-7}
    np.testing.assert_allclose(scored.column("tier_prob").to_numpy(), probs.max(axis=1), **close)
    np.testing.assert_allclose(scored.column("p_gold").to_numpy(), probs[:, 2], **close)
    assert scored.column("top3").to_pylist() == [[CLASSES[i] for i in row[:3]] for row in order]
    np.testing.assert_allclose(
        np.array(scored.column("top3_scores").to_pylist()),
        np.take_along_axis(probs, order[:, :3], axis=1),
        **close,
    )
    np.testing.assert_array_equal(scored.column("label").to_numpy(), label)
