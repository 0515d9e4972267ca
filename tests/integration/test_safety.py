"""Safety: nothing unpickled or evaluated, custom code only by name and opt-in, bad models and
overlapping paths refused before any Spark work, stale locks cleared by a documented command."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as ds
import pytest

from batchinfer import cli
from batchinfer.errors import ConfigError, InputDataError, ModelError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, snapshot, write_partitioned

ROOT = Path(__file__).resolve().parents[2]
FEATURES = ["f0", "f1", "f2", "f3"]
DAY = "2026-11-28"

UNSAFE = re.compile(
    r"\bpickle\.loads?\(|\bjoblib\.load\(|\bcloudpickle\.loads?\(|\btorch\.load\(|\bdill\.loads?\("
    r"|(?<![\w.])eval\(|(?<![\w.])exec\(|\bmarshal\.loads?\(|\bshelve\.open\(|yaml\.load\(|yaml\.unsafe_load\("
)


def test_no_code_path_unpickles_or_evaluates():
    files = sorted((ROOT / "batchinfer").rglob("*.py")) + sorted((ROOT / "jobs").rglob("*.py"))
    assert len(files) > 20
    hits = []
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if UNSAFE.search(code):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert hits == []


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    data = write_partitioned(root / "ev", days=(DAY,), files_per_day=2, rows_per_file=150)
    model, _ = models.linear_classifier(root / "m.onnx", 4)
    return root, data, model


def read_output(path):
    return (
        ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
        .to_table()
        .to_pandas()
    )


def test_custom_pre_and_postprocess_hooks_run_in_the_executors(spark, ws, tmp_path):
    root, data, model = ws
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES)
    cfg["model"]["preprocess"] = "tests.support.hooks:double_f0"
    cfg["model"]["postprocess"] = "tests.support.hooks:round_score"
    cfg["runtime"]["allow_custom_code"] = True
    res = Job.from_config(cfg).run(spark=spark)
    assert res.rows_out == 300
    got = read_output(tmp_path / "out").sort_values("id")
    src = ds.dataset(data, partitioning="hive").to_table().to_pandas().sort_values("id")
    x = src[FEATURES].to_numpy(np.float32)
    x[:, 0] *= 2
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = np.round(sess.run(["probabilities"], {"input": x})[0][:, 1], 2)
    np.testing.assert_allclose(got["score"].to_numpy(), want, atol=1e-6)


@pytest.mark.parametrize(
    "hook, allow, message",
    [
        ("tests.support.hooks:double_f0", False, r"model\.preprocess: custom code is off"),
        ("os.system", True, r"model\.preprocess: String should match pattern"),
        ("__import__('os').system('x'):f", True, r"model\.preprocess: String should match pattern"),
        ("tests.support.no_such_module:f", True, r"model\.preprocess: module .* cannot be imported"),
        ("tests.support.hooks:nope", True, r"model\.preprocess: module .* has no attribute 'nope'"),
        ("tests.support.hooks:NOT_CALLABLE", True, r"model\.preprocess: .* is a int, not a function"),
    ],
)
def test_bad_custom_hooks_are_config_errors_at_plan_time(ws, tmp_path, hook, allow, message):
    root, data, model = ws
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES)
    cfg["model"]["preprocess"] = hook
    cfg["runtime"]["allow_custom_code"] = allow
    with pytest.raises(ConfigError, match=message):
        Job.from_config(cfg).plan()


def test_hook_returning_garbage_fails_the_run_with_a_config_error(spark, ws, tmp_path):
    root, data, model = ws
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES)
    cfg["model"]["postprocess"] = "tests.support.hooks:returns_none"
    cfg["runtime"]["allow_custom_code"] = True
    with pytest.raises(ConfigError, match="returned NoneType, expected a pyarrow.RecordBatch"):
        Job.from_config(cfg).run(spark=spark)
    assert not (tmp_path / "out" / f"ds={DAY}").exists()


def test_output_equal_to_or_inside_input_is_refused_by_the_cli(ws, tmp_path, capsys):
    root, data, model = ws
    for out in (data, data / "scores", data.parent):
        config = tmp_path / "job.yaml"
        config.write_text(json.dumps(job_config(data, model, out, features=FEATURES)))
        assert cli.main(["run", str(config)]) == 6
        assert "overlaps input.path" in capsys.readouterr().err
    assert not (data / "scores").exists() and not (data / "_batchinfer").exists()


def test_output_reaching_the_input_through_a_symlink_is_refused_and_the_input_kept(ws, tmp_path, capsys):
    """The data-loss case: a second path to the input root, to one of its partitions, or via '..'."""
    root, data, model = ws
    before = snapshot(data)
    (tmp_path / "scores").symlink_to(data)
    (tmp_path / "day").symlink_to(data / f"ds={DAY}")
    for out in (tmp_path / "scores", f"{tmp_path}/day/.."):
        config = tmp_path / "job.yaml"
        config.write_text(json.dumps(job_config(data, model, out, features=FEATURES)))
        assert cli.main(["validate", str(config)]) == 6
        assert "overlaps input.path" in capsys.readouterr().err
        assert cli.main(["run", str(config)]) == 6
        err = capsys.readouterr().err
        assert f"batchinfer: output error: output.path {out} overlaps input.path {data}" in err
    assert snapshot(data) == before
    assert not (data / "_batchinfer").exists() and not (data / "_SUCCESS").exists()


def test_bad_models_fail_at_plan_time_before_any_spark_job(spark, ws, tmp_path):
    root, data, model = ws
    sc = spark.sparkContext
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(model.read_bytes()[:100])
    not_onnx = tmp_path / "pickled.onnx"
    not_onnx.write_bytes(b"\x80\x04\x95 this is a pickle, not an ONNX model")
    future = models.future_opset_model(tmp_path / "future.onnx")
    cases = [
        ({"path": str(truncated)}, ModelError, FEATURES),
        ({"path": str(not_onnx)}, ModelError, FEATURES),
        ({"path": str(future)}, ModelError, FEATURES),
        ({"path": str(model), "sha256": "0" * 64}, ModelError, FEATURES),
        ({"path": str(model)}, InputDataError, ["f0", "f1", "f2", "cat"]),  # string column → float tensor
    ]
    for i, (model_cfg, error, features) in enumerate(cases):
        cfg = job_config(data, model, tmp_path / "out", features=features)
        cfg["model"].update(model_cfg)
        group = f"probe-bad-model-{i}"
        sc.setJobGroup(group, "no Spark job may run in this group")
        try:
            with pytest.raises(error) as info:
                Job.from_config(cfg).run(spark=spark)
            assert info.value.exit_code in (3, 4)
            assert sc.statusTracker().getJobIdsForGroup(group) == []
        finally:
            sc.setJobGroup(None, None)
    assert not (tmp_path / "out").exists()  # not even the lock or a manifest
    # The probe does see jobs when there are some.
    sc.setJobGroup("probe-control", "control")
    try:
        spark.range(3).count()
        assert sc.statusTracker().getJobIdsForGroup("probe-control") != []
    finally:
        sc.setJobGroup(None, None)


def test_stale_lock_of_a_live_foreign_run_is_cleared_with_unlock(ws, tmp_path, capsys):
    root, data, model = ws
    out = tmp_path / "out"
    (out / "_batchinfer").mkdir(parents=True)
    lock = {"run_id": "20261128T000000Z-deadbeef", "job": "other", "host": "another-host", "pid": 1}
    (out / "_batchinfer" / "lock").write_text(json.dumps(lock))
    assert socket.gethostname() != "another-host"
    config = tmp_path / "job.yaml"
    config.write_text(json.dumps(job_config(data, model, out, features=FEATURES)))
    assert cli.main(["run", str(config)]) == 6  # another host: never broken automatically
    err = capsys.readouterr().err
    assert "locked by run 20261128T000000Z-deadbeef" in err and f"batchinfer unlock {out}" in err
    assert cli.main(["unlock", str(out)]) == 0
    assert "cleared the lock of run 20261128T000000Z-deadbeef" in capsys.readouterr().out
    assert not (out / "_batchinfer" / "lock").exists()
    assert cli.main(["validate", str(config)]) == 0
