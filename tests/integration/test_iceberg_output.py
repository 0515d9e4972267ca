"""``output.format: iceberg``: one snapshot per run in a SQL catalog on SQLite, read back with pyiceberg."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as pads
import pytest

from batchinfer.errors import GateFailedError, OutputError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, write_partitioned
from tests.support.kill import Killed, kill_at

pytest.importorskip("pyiceberg")
pytest.importorskip("sqlalchemy")

FEATURES = ["f0", "f1", "f2", "f3"]
DAYS = ("2026-11-27", "2026-11-28")


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("iceberg")
    data = write_partitioned(root / "events", days=DAYS, files_per_day=2, rows_per_file=300)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return data, model


def iceberg_config(data, model, out, catalog_db, *, table="scores.churn", **output):
    cfg = job_config(data, model, out, features=FEATURES)
    cfg["output"].update(
        {
            "format": "iceberg",
            "iceberg": {"table": table, "catalog": {"type": "sql", "uri": f"sqlite:///{catalog_db}"}},
            **output,
        }
    )
    return cfg


def load(cfg):
    from batchinfer.config import IcebergConfig
    from batchinfer.io.iceberg import read_table

    return read_table(IcebergConfig.model_validate(cfg["output"]["iceberg"]), cfg["output"]["path"])


def rows(tbl):
    return tbl.scan().to_arrow().to_pandas().sort_values("id").reset_index(drop=True)


def test_each_run_is_one_snapshot_replacing_exactly_its_partitions(spark, ws, tmp_path):
    data, model = ws
    out, db = tmp_path / "scores", tmp_path / "catalog.db"
    cfg = iceberg_config(data, model, out, db)
    first = Job.from_config(cfg).run(spark=spark)
    tbl = load(cfg)
    snap = tbl.current_snapshot()
    assert first.manifest["iceberg"]["snapshot_id"] == snap.snapshot_id and len(tbl.snapshots()) == 1
    assert snap.summary["batchinfer.run_id"] == first.run_id
    assert snap.summary["batchinfer.model_sha256"] == first.manifest["model"]["sha256"]
    assert [f.name for f in tbl.spec().fields] == ["ds"] and tbl.location() == f"file://{out}"
    # The staged files were registered, not rewritten: they sit under data/ with the run id.
    files = sorted(p.name for p in out.glob("data/ds=*/*.parquet"))
    assert files and all(n.startswith(first.run_id) for n in files)
    assert not list(out.glob("_batchinfer/staging/*"))

    scored = rows(tbl)
    source = pads.dataset(data, format="parquet", partitioning="hive").to_table().to_pandas()
    merged = source.merge(scored, on="id", suffixes=("", "_out"))
    assert len(merged) == len(source) == len(scored) == first.manifest["rows_out"]
    assert (merged["ds"] == merged["ds_out"]).all()  # the identity partition column, from metadata
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(["probabilities"], {"input": merged[FEATURES].to_numpy(np.float32)})
    assert np.abs(merged["score"].to_numpy() - probs[:, 1]).max() <= 1e-6

    # A run over one day replaces that day only, in exactly one more (overwrite) snapshot.
    one_day = iceberg_config(data, model, out, db)
    one_day["input"]["partitions"] = {"ds": DAYS[1]}
    second = Job.from_config(one_day).run(spark=spark)
    tbl = load(cfg)
    assert len(tbl.snapshots()) == 2 and tbl.current_snapshot().summary.operation.value == "overwrite"
    assert tbl.current_snapshot().parent_snapshot_id == snap.snapshot_id
    after = rows(tbl)
    assert len(after) == len(source)
    assert after.groupby("ds")["run_id"].agg(set).to_dict() == {
        DAYS[0]: {first.run_id},
        DAYS[1]: {second.run_id},
    }

    # append adds rows in one append snapshot; error_if_exists refuses and changes nothing.
    Job.from_config(iceberg_config(data, model, out, db, mode="append")).run(spark=spark)
    tbl = load(cfg)
    assert len(tbl.snapshots()) == 3 and tbl.current_snapshot().summary.operation.value == "append"
    assert len(rows(tbl)) == 2 * len(source)
    with pytest.raises(OutputError, match="Iceberg table scores.churn already exists") as info:
        Job.from_config(iceberg_config(data, model, out, db, mode="error_if_exists")).run(spark=spark)
    assert info.value.exit_code == 6 and len(load(cfg).snapshots()) == 3


def test_failed_gate_and_killed_driver_leave_the_previous_snapshot(spark, ws, tmp_path):
    data, model = ws
    out, db = tmp_path / "scores", tmp_path / "catalog.db"
    cfg = iceberg_config(data, model, out, db)
    Job.from_config(cfg).run(spark=spark)
    before_id, before = load(cfg).current_snapshot().snapshot_id, rows(load(cfg))

    gated = iceberg_config(data, model, out, db)
    gated["checks"] = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.001}]}
    with pytest.raises(GateFailedError):
        Job.from_config(gated).run(spark=spark)
    assert load(cfg).current_snapshot().snapshot_id == before_id and rows(load(cfg)).equals(before)

    with pytest.raises(Killed):  # the driver dies after the files moved, before the catalog commit
        Job.from_config(cfg).run(spark=spark, commit_pause=kill_at("iceberg_files_moved"))
    tbl = load(cfg)
    assert tbl.current_snapshot().snapshot_id == before_id and len(tbl.snapshots()) == 1
    assert rows(tbl).equals(before)

    files_after_kill = {f"file://{p}" for p in out.glob("data/**/*.parquet")}

    # Another writer commits while this run is between its files and its catalog commit: the
    # catalog's optimistic check refuses this run (exit 6) and none of its files stay behind.
    def other_writer_commits(step):
        if step == "iceberg_files_moved":
            load(cfg).append(load(cfg).scan().to_arrow().slice(0, 5))

    with pytest.raises(OutputError, match="conflicted with another writer") as info:
        Job.from_config(cfg).run(spark=spark, commit_pause=other_writer_commits)
    assert info.value.exit_code == 6 and "\n" not in str(info.value)
    tbl = load(cfg)
    assert (
        len(tbl.snapshots()) == 2
        and "batchinfer.run_id" not in tbl.current_snapshot().summary.additional_properties
    )
    assert len(rows(tbl)) == len(before) + 5 and set(rows(tbl)["run_id"]) == set(before["run_id"])
    referenced = {t.file.file_path for t in tbl.scan().plan_files()}
    added = {f"file://{p}" for p in out.glob("data/**/*.parquet")} - files_after_kill
    assert added and added <= referenced, "the refused run's data files were deleted"


def test_a_table_elsewhere_or_partitioned_otherwise_is_refused_in_one_line(spark, ws, tmp_path):
    data, model = ws
    db = tmp_path / "catalog.db"
    Job.from_config(iceberg_config(data, model, tmp_path / "a", db)).run(spark=spark)
    with pytest.raises(OutputError) as info:
        Job.from_config(iceberg_config(data, model, tmp_path / "b", db)).run(spark=spark)
    text = str(info.value)
    assert "lives at file://" in text and "not at output.path" in text and "\n" not in text
    assert info.value.exit_code == 6
