"""The scoring spine end to end on a real local SparkSession."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as ds
import pytest

from batchinfer.errors import InputDataError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, snapshot, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]
DAYS = ("2026-11-26", "2026-11-27", "2026-11-28")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("job")
    data = write_partitioned(root / "events", days=DAYS, files_per_day=3, rows_per_file=700)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return root, data, model


def read_output(path):
    return (
        ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
        .to_table()
        .to_pandas()
    )


@pytest.mark.parametrize("reader, writer", [("pyarrow", "pyarrow"), ("spark", "spark"), ("spark", "pyarrow")])
def test_scores_match_direct_onnxruntime_and_manifest_is_complete(spark, workspace, tmp_path, reader, writer):
    root, data, model = workspace
    out = tmp_path / "scores"
    cfg = job_config(data, model, out, features=FEATURES, runtime={"batch_rows": 300, "reader": reader})
    cfg["output"]["writer"] = writer
    result = Job.from_config(cfg).run(spark=spark)
    assert result.status == "succeeded" and result.manifest["reader"] == reader
    assert result.manifest["writer"] == writer
    scored = read_output(out)
    source = ds.dataset(data, format="parquet", partitioning="hive").to_table().to_pandas()
    assert len(scored) == len(source) == 3 * 3 * 700
    merged = source.merge(scored, on="id", suffixes=("", "_out"))
    assert len(merged) == len(source) and scored["id"].is_unique
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    probs, labels = sess.run(["probabilities", "label"], {"input": merged[FEATURES].to_numpy(np.float32)})
    assert np.abs(merged["score"].to_numpy() - probs[:, 1]).max() <= 1e-6
    assert (merged["label"].to_numpy() == labels).all()
    assert (merged["ds"].astype(str) == merged["ds_out"].astype(str)).all()
    assert set(scored["model_sha256"]) == {result.manifest["model"]["sha256"]}
    assert set(scored["run_id"]) == {result.run_id}

    m = result.manifest
    for key in (
        "run_id",
        "config_digest",
        "rows_in",
        "rows_out",
        "timings",
        "spark",
        "versions",
        "input",
        "output",
    ):
        assert key in m, key
    assert m["rows_in"] == m["rows_out"] == len(source)
    assert m["spark"]["application_id"] == spark.sparkContext.applicationId
    assert [p["ds"] for p in m["output"]["partitions_written"]] == list(DAYS)
    assert {"plan", "score_and_stage", "commit", "total"} <= set(m["timings"])
    assert m["providers"] == ["CPUExecutionProvider"]
    on_disk = json.loads((out / "_batchinfer" / "runs" / result.run_id / "manifest.json").read_text())
    assert on_disk["run_id"] == result.run_id
    assert (out / "_SUCCESS").exists() and (out / "ds=2026-11-28" / "_SUCCESS").exists()


def test_one_session_per_worker_not_per_partition(spark, workspace, tmp_path):
    root, data, _ = workspace
    # A model no earlier test used: Python workers are reused across jobs and keep their sessions.
    model, _ = models.linear_classifier(tmp_path / "fresh.onnx", 4, seed=123)
    cfg = job_config(data, model, tmp_path / "scores", features=FEATURES)
    # Many small Spark partitions, so a per-partition or per-batch session would show.
    cfg["spark"] = {"conf": {}}
    spark.conf.set("spark.sql.files.maxPartitionBytes", "4096")
    try:
        result = Job.from_config(cfg).run(spark=spark)
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    workers = result.manifest["workers"]
    batches = sum(w["batches"] for w in workers.values())
    assert batches >= 9  # 9 files at least, one or more Arrow batches each
    busy = [w for w in workers.values() if w["batches"]]
    assert all(w["sessions"] == 1 for w in busy)  # one per Python worker process that scored
    assert 1 <= result.manifest["sessions_created"] <= 2 < batches  # local[2]: at most two workers


def test_rerun_replaces_one_partition_and_leaves_others(spark, workspace, tmp_path):
    root, data, model = workspace
    out = tmp_path / "scores"
    Job.from_config(job_config(data, model, out, features=FEATURES)).run(spark=spark)
    untouched = snapshot(out / "ds=2026-11-26")
    again = Job.from_config(
        job_config(data, model, out, features=FEATURES), overrides=["input.partitions.ds=2026-11-28"]
    ).run(spark=spark)
    assert again.manifest["input"]["partitions"] == [{"ds": "2026-11-28"}]
    scored = read_output(out)
    assert len(scored) == 3 * 3 * 700 and scored["id"].is_unique  # no duplicates
    assert snapshot(out / "ds=2026-11-26") == untouched
    assert set(scored[scored["ds"].astype(str) == "2026-11-28"]["run_id"]) == {again.run_id}


def test_failure_mid_job_leaves_previous_output_byte_identical(spark, workspace, tmp_path):
    root, data, model = workspace
    out = tmp_path / "scores"
    Job.from_config(job_config(data, model, out, features=FEATURES)).run(spark=spark)
    before = snapshot(out)
    bad = write_partitioned(
        tmp_path / "bad",
        days=DAYS,
        files_per_day=1,
        rows_per_file=300,
        extra=lambda n, rng: {"f2": np.where(np.arange(n) == n - 1, np.nan, 0.0).astype(np.float32)},
    )
    with pytest.raises(InputDataError, match="column 'f2' has 1 NaN/inf value") as info:
        Job.from_config(job_config(bad, model, out, features=FEATURES)).run(spark=spark)
    assert snapshot(out) == before
    assert info.value.result.manifest["status"] == "failed"
    failed = json.loads(
        (out / "_batchinfer" / "runs" / info.value.result.run_id / "manifest.json").read_text()
    )
    assert failed["error"]["type"] == "InputDataError"
    assert not any((out / "_batchinfer" / "staging").iterdir())


def test_array_column_and_several_inputs_through_spark(spark, tmp_path):
    import pyarrow as pa

    def extra(n, rng):
        return {
            "tokens": pa.array([list(r) for r in rng.integers(0, 9, size=(n, 4))], pa.list_(pa.int64())),
            "k": np.arange(n, dtype=np.int64),
        }

    data = write_partitioned(tmp_path / "ev", days=("2026-11-28",), rows_per_file=50, extra=extra)
    tok = models.int_input_model(tmp_path / "tok.onnx")
    cfg = job_config(data, tok, tmp_path / "o1", features=[], outputs={"total": {"column": "total"}})
    cfg["model"]["inputs"] = {"tokens": {"column": "tokens"}}
    Job.from_config(cfg).run(spark=spark)
    got = read_output(tmp_path / "o1").merge(
        ds.dataset(data, partitioning="hive").to_table().to_pandas(), on="id"
    )
    assert np.allclose(got["total"], [sum(t) for t in got["tokens"]])

    two = models.two_input_model(tmp_path / "two.onnx")
    cfg = job_config(
        data, two, tmp_path / "o2", features=[], outputs={"sum": {"column": "s"}, "doubled": {"column": "d"}}
    )
    cfg["model"]["inputs"] = {"a": {"columns": ["f0", "f1", "f2"]}, "b": {"columns": ["k"]}}
    Job.from_config(cfg).run(spark=spark)
    got = read_output(tmp_path / "o2").merge(
        ds.dataset(data, partitioning="hive").to_table().to_pandas(), on="id"
    )
    np.testing.assert_allclose(got["s"], got["f0"] + got["f1"] + got["f2"] + got["k"], rtol=1e-5)
    np.testing.assert_allclose(np.stack(got["d"].to_numpy())[:, 0], 2 * got["f0"], rtol=1e-6)


def test_dry_run_writes_nothing_and_allow_empty(spark, workspace, tmp_path):
    root, data, model = workspace
    out = tmp_path / "scores"
    res = Job.from_config(job_config(data, model, out, features=FEATURES)).run(
        spark=spark, dry_run=True, sample_fraction=0.2
    )
    assert res.status == "dry_run" and not out.exists()
    assert 0 < res.rows_out < res.rows_in
    assert len(res.scored_rows(5)) == 5
    cfg = job_config(data, model, out, features=FEATURES)
    cfg["input"].update({"partitions": {"ds": "2031-01-01"}, "allow_empty": True})
    empty = Job.from_config(cfg).run(spark=spark)
    assert empty.status == "succeeded" and empty.rows_out == 0


def test_direct_writer_splits_partitions_like_spark(spark, workspace, tmp_path):
    """partition_by on a column that varies inside a batch: same directories and rows as Spark's writer."""
    root, data, model = workspace
    layouts = {}
    for writer in ("pyarrow", "spark"):
        cfg = job_config(data, model, tmp_path / writer, features=FEATURES, passthrough=["id", "cat", "ds"])
        cfg["output"].update({"partition_by": ["ds", "cat"], "writer": writer})
        cfg["output"]["lineage"] = {"model_digest": "model_sha256", "run_id": None}
        Job.from_config(cfg).run(spark=spark)
        out = tmp_path / writer
        dirs = sorted(p.relative_to(out).as_posix() for p in out.glob("ds=*/cat=*"))
        table = read_output(out).sort_values("id").reset_index(drop=True)
        layouts[writer] = (dirs, table)
    assert layouts["pyarrow"][0] == layouts["spark"][0] and len(layouts["spark"][0]) == 9
    a, b = layouts["pyarrow"][1], layouts["spark"][1]
    assert list(a["id"]) == list(b["id"]) and (a["score"] == b["score"]).all()
    assert (a["cat"].astype(str) == b["cat"].astype(str)).all() and (
        a["model_sha256"] == b["model_sha256"]
    ).all()
