"""``output.format: delta``: one Delta transaction per run, read back with deltalake.DeltaTable."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as pads
import pytest

from batchinfer.errors import GateFailedError, OutputError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, write_partitioned

deltalake = pytest.importorskip("deltalake")

FEATURES = ["f0", "f1", "f2", "f3"]
DAYS = ("2026-11-27", "2026-11-28")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("delta")
    data = write_partitioned(root / "events", days=DAYS, files_per_day=2, rows_per_file=300)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return data, model


def delta_config(data, model, out, **output):
    cfg = job_config(data, model, out, features=FEATURES)
    cfg["output"].update({"format": "delta", **output})
    return cfg


def read_delta(uri, **kw):
    return deltalake.DeltaTable(str(uri), **kw).to_pyarrow_table().to_pandas()


def test_each_run_is_one_transaction_replacing_exactly_its_partitions(spark, ws, tmp_path):
    data, model = ws
    out = tmp_path / "scores"
    first = Job.from_config(delta_config(data, model, out)).run(spark=spark)
    assert first.status == "succeeded" and first.manifest["delta"] == {"version": 0}
    dt = deltalake.DeltaTable(str(out))
    assert dt.version() == 0 and dt.metadata().partition_columns == ["ds"]
    last = dt.history(1)[0]
    assert last["batchinfer.run_id"] == first.run_id
    assert last["batchinfer.model_sha256"] == first.manifest["model"]["sha256"]
    assert not any(n.startswith("_SUCCESS") for n in (p.name for p in out.glob("ds=*/*")))

    scored = read_delta(out)
    source = pads.dataset(data, format="parquet", partitioning="hive").to_table().to_pandas()
    merged = source.merge(scored, on="id", suffixes=("", "_out"))
    assert len(merged) == len(source) == len(scored) == first.manifest["rows_out"]
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(["probabilities"], {"input": merged[FEATURES].to_numpy(np.float32)})
    assert np.abs(merged["score"].to_numpy() - probs[:, 1]).max() <= 1e-6

    # DuckDB reads the current version's files (no delta extension needed: the file list is the
    # table's state); the same rows and scores.
    duckdb = pytest.importorskip("duckdb")
    files = ", ".join(f"'{u}'" for u in dt.file_uris())
    ducked = duckdb.sql(
        f"SELECT id, score FROM read_parquet([{files}], hive_partitioning = true) ORDER BY id"
    ).df()
    expected = scored.sort_values("id")[["id", "score"]].reset_index(drop=True)
    assert len(ducked) == len(expected) and (ducked["id"].to_numpy() == expected["id"].to_numpy()).all()
    assert np.abs(ducked["score"].to_numpy() - expected["score"].to_numpy()).max() <= 1e-6

    # A run over one day replaces that day only, in one more version.
    one_day = delta_config(data, model, out)
    one_day["input"]["partitions"] = {"ds": DAYS[1]}
    second = Job.from_config(one_day).run(spark=spark)
    assert deltalake.DeltaTable(str(out)).version() == 1
    rows = read_delta(out)
    assert len(rows) == len(source)
    by_day = rows.groupby("ds")["run_id"].agg(set).to_dict()
    assert by_day == {DAYS[0]: {first.run_id}, DAYS[1]: {second.run_id}}

    # append adds rows; error_if_exists refuses an existing table and changes nothing.
    appended = Job.from_config(delta_config(data, model, out, mode="append")).run(spark=spark)
    assert appended.manifest["delta"] == {"version": 2} and len(read_delta(out)) == 2 * len(source)
    with pytest.raises(OutputError, match="is already a Delta table") as info:
        Job.from_config(delta_config(data, model, out, mode="error_if_exists")).run(spark=spark)
    assert info.value.exit_code == 6 and deltalake.DeltaTable(str(out)).version() == 2


def test_failed_gate_leaves_the_table_at_its_previous_version(spark, ws, tmp_path):
    data, model = ws
    out = tmp_path / "scores"
    Job.from_config(delta_config(data, model, out)).run(spark=spark)
    before = read_delta(out).sort_values("id").reset_index(drop=True)
    cfg = delta_config(data, model, out)
    cfg["checks"] = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.001}]}
    with pytest.raises(GateFailedError):
        Job.from_config(cfg).run(spark=spark)
    assert deltalake.DeltaTable(str(out)).version() == 0
    assert read_delta(out).sort_values("id").reset_index(drop=True).equals(before)
    assert not list(out.glob("_batchinfer/staging/*")), "the failed run's staged files are gone"


def test_concurrent_writer_to_the_same_partitions_fails_the_run_with_nothing_visible(spark, ws, tmp_path):
    """Two batchinfer commits race on one table (the lock on an object store is best effort).

    Run A is paused after it read the table; meanwhile run B's staged files are committed by
    commit_delta (what B's driver does once its gates passed). A's commit then hits delta-rs's
    conflict check: exit 6, and none of A's rows are in the table.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from batchinfer.io.delta import commit_delta
    from batchinfer.io.sink import OutputTable

    data, model = ws
    out = tmp_path / "scores"
    cfg = delta_config(data, model, out)
    cfg["input"]["partitions"] = {"ds": DAYS[0]}
    Job.from_config(cfg).run(spark=spark)
    base = read_delta(out)

    def other_run_commits(step):
        if step != "delta_table_read":
            return
        staged = out / "_batchinfer" / "staging" / "run-b" / f"ds={DAYS[0]}"
        staged.mkdir(parents=True)
        rows = base.drop(columns=["ds"]).assign(run_id="run-b")
        pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), staged / "part-0.parquet")
        commit_delta(
            OutputTable(str(out)),
            "run-b",
            mode="overwrite_partitions",
            partition_by=["ds"],
            metadata={"batchinfer.run_id": "run-b"},
        )

    with pytest.raises(OutputError, match="conflicted with another writer") as info:
        Job.from_config(cfg).run(spark=spark, commit_pause=other_run_commits)
    assert info.value.exit_code == 6 and "\n" not in str(info.value)
    dt = deltalake.DeltaTable(str(out))
    assert dt.version() == 1 and dt.history(1)[0]["batchinfer.run_id"] == "run-b"
    after = read_delta(out)
    assert len(after) == len(base) and set(after["run_id"]) == {"run-b"}, "nothing of run A is visible"
    assert not list(out.glob("_batchinfer/staging/*")), "the failed run's staged files are gone"
