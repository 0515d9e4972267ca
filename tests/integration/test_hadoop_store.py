"""The whole job on a store only Hadoop reaches: planned and committed through the Spark driver.

No HDFS here, but pip pyspark's Hadoop client ships ``ViewFileSystem`` (``viewfs://``, the
client-side mount table HDFS federation uses): a real Hadoop FileSystem that pyarrow has no
client for, as it has none for ``hdfs://`` without libhdfs. Its mount table links
``viewfs://<table>/lake``, ``/models`` and ``/scores`` to local directories, so the test can
check the bytes on disk. The driver plans, commits and records through Hadoop's FileSystem
(py4j); the tasks read and write with Spark's reader and writer.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as pads
import pytest
import yaml

from batchinfer.cli import main
from batchinfer.errors import ConfigError, GateFailedError
from batchinfer.io import storage
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, snapshot, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]
DAYS = ("2026-11-27", "2026-11-28")
MOUNTS = ("lake", "models", "scores")


@pytest.fixture(scope="module")
def viewfs(spark, tmp_path_factory):
    """A viewfs:// mount table on the test session: /lake, /models, /scores on local directories."""
    base = tmp_path_factory.mktemp("viewfs")
    write_partitioned(base / "lake" / "events", days=DAYS, files_per_day=2, rows_per_file=300)
    (base / "models").mkdir()
    models.linear_classifier(base / "models" / "m.onnx", 4)
    (base / "scores").mkdir()
    table = "bi" + uuid.uuid4().hex[:8]  # a fresh authority: Hadoop caches filesystems per authority
    conf = {f"spark.hadoop.fs.viewfs.mounttable.{table}.link./{m}": (base / m).as_uri() for m in MOUNTS}
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in conf.items():  # what HADOOP_CONF_DIR's core-site.xml does on a cluster
        hadoop.set(key[len("spark.hadoop.") :], value)
    yield {"root": f"viewfs://{table}", "base": base, "conf": conf}
    for key in conf:
        hadoop.unset(key[len("spark.hadoop.") :])


def config(viewfs, out: str, **sections) -> dict:
    root = viewfs["root"]
    cfg = job_config(
        f"{root}/lake/events", f"{root}/models/m.onnx", f"{root}/scores/{out}", features=FEATURES, **sections
    )
    cfg["spark"] = {"conf": dict(viewfs["conf"])}
    return cfg


def local_scores(viewfs, out: str):
    path = viewfs["base"] / "scores" / out
    dataset = pads.dataset(str(path), format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
    return dataset.to_table().to_pandas().sort_values("id").reset_index(drop=True)


def direct_scores(viewfs):
    data = viewfs["base"] / "lake" / "events"
    table = pads.dataset(str(data), format="parquet", partitioning="hive").to_table().to_pandas()
    table = table.sort_values("id").reset_index(drop=True)
    session = ort.InferenceSession(
        str(viewfs["base"] / "models" / "m.onnx"), providers=["CPUExecutionProvider"]
    )
    (probs,) = session.run(["probabilities"], {"input": table[FEATURES].to_numpy(np.float32)})
    return table["id"].to_numpy(), probs[:, 1]


CHECKS = {
    "input": [{"expect": "not_null", "column": "f0"}],
    "output": [{"expect": "between", "column": "score", "min": 0, "max": 1}],
}


def test_whole_job_plans_reads_scores_checks_and_commits_through_hadoop(spark, viewfs):
    result = Job.from_config(config(viewfs, "churn", checks=CHECKS)).run(spark=spark)
    assert result.status == "succeeded"
    m = result.manifest
    assert m["reader"] == "spark" and m["writer"] == "spark"
    assert m["rows_in"] == m["rows_out"] == len(DAYS) * 2 * 300
    assert [p["ds"] for p in m["output"]["partitions_written"]] == list(DAYS)
    assert m["checks"]["gate"]["failed"] == 0 and len(m["checks"]["outcomes"]) == 2
    assert m["storage"]["hadoop_via_spark_driver"] == {
        "input": "ViewFileSystem",
        "model": "ViewFileSystem",
        "output": "ViewFileSystem",
    }
    notes = "\n".join(m["notes"])
    root = viewfs["root"]
    assert f"storage: input {root}/lake/events is not reachable with pyarrow" in notes
    assert "Spark's reader (Hadoop filesystem) is used instead" in notes
    assert "Spark's writer (Hadoop filesystem) is used instead" in notes
    assert (
        f"storage: output {root}/scores/churn planned, committed and recorded through the Hadoop "
        "FileSystem via the Spark driver (ViewFileSystem" in notes
    )
    # The scores on disk equal a direct onnxruntime run over the same rows.
    got = local_scores(viewfs, "churn")
    ids, expected = direct_scores(viewfs)
    assert (got["id"].to_numpy() == ids).all()
    assert np.max(np.abs(got["score"].to_numpy() - expected)) <= 1e-6
    # Run records: the manifest, _SUCCESS per partition and at the root, no lock left behind.
    out = viewfs["base"] / "scores" / "churn"
    on_disk = json.loads((out / "_batchinfer" / "runs" / result.run_id / "manifest.json").read_text())
    assert on_disk["status"] == "succeeded" and on_disk["storage"] == m["storage"]
    assert (out / "_SUCCESS").exists() and all((out / f"ds={d}" / "_SUCCESS").exists() for d in DAYS)
    assert not (out / "_batchinfer" / "lock.json").exists() and not list((out / "_batchinfer").glob("lock*"))
    assert storage.hadoop_session() is None  # released after the run


def test_failed_gate_leaves_the_previous_output_byte_identical(spark, viewfs):
    assert Job.from_config(config(viewfs, "gated")).run(spark=spark).succeeded
    before = snapshot(viewfs["base"] / "scores" / "gated")
    failing = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.01}]}
    with pytest.raises(GateFailedError) as info:
        Job.from_config(config(viewfs, "gated", checks=failing)).run(spark=spark)
    assert snapshot(viewfs["base"] / "scores" / "gated") == before
    manifest = info.value.result.manifest
    assert manifest["status"] == "gate_failed"
    assert manifest["storage"]["writer"] == "spark"


def test_a_driver_dying_mid_commit_is_rolled_back_by_recover(spark, viewfs):
    assert Job.from_config(config(viewfs, "crash")).run(spark=spark).succeeded
    before = snapshot(viewfs["base"] / "scores" / "crash")

    def die(step):
        if step == "partition_committed":  # one partition swapped, the other not yet
            raise SystemExit("killed")  # no cleanup runs for SystemExit, as for a killed driver

    with pytest.raises(SystemExit):
        Job.from_config(config(viewfs, "crash")).run(spark=spark, commit_pause=die)
    out = viewfs["base"] / "scores" / "crash"
    assert list((out / "_batchinfer" / "journal").glob("*.json"))  # half a commit on disk
    assert snapshot(out) != before
    assert main(["recover", f"{viewfs['root']}/scores/crash"]) == 0
    assert snapshot(out) == before
    assert not list((out / "_batchinfer" / "journal").glob("*.json"))


def _yaml(tmp_path: Path, cfg: dict) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_validate_prints_the_fallback_note(spark, viewfs, tmp_path, capsys):
    assert main(["validate", _yaml(tmp_path, config(viewfs, "validated"))]) == 0
    printed = capsys.readouterr().out
    assert "config OK" in printed
    assert f"storage: input {viewfs['root']}/lake/events is not reachable with pyarrow" in printed
    assert "through the Hadoop FileSystem via the Spark driver (ViewFileSystem" in printed


def test_pyarrow_reader_on_such_a_store_is_one_line_and_exit_2(spark, viewfs, tmp_path, capsys):
    cfg = config(viewfs, "refused", runtime={"reader": "pyarrow", "engine": "spark"})
    assert main(["run", _yaml(tmp_path, cfg)]) == 2
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if x.startswith("batchinfer: config error")]
    assert line.startswith("batchinfer: config error: runtime.reader is pyarrow, but pyarrow cannot open")
    assert f"{viewfs['root']}/lake/events" in line and "Traceback" not in err
    assert "runtime.reader: auto" in err  # the fix
    assert not (viewfs["base"] / "scores" / "refused").exists()


def test_the_local_engine_on_such_a_store_is_one_line(viewfs):
    cfg = config(viewfs, "local", runtime={"engine": "local"})
    with pytest.raises(ConfigError) as info:
        Job.from_config(cfg).plan()
    text = str(info.value)
    assert "\n" not in text and f"input {viewfs['root']}/lake/events" in text
    assert "only classic Spark's driver can open it" in text and "runtime.engine: spark" in text


def test_spark_connect_on_such_a_store_is_one_line(viewfs):
    cfg = config(viewfs, "connect")
    cfg["spark"]["remote"] = "sc://127.0.0.1:1"  # resolved, never dialled: the plan stops first
    with pytest.raises(ConfigError, match=r"the engine is spark-connect \(spark.remote is set\)"):
        Job.from_config(cfg).plan()


def test_a_table_format_on_such_a_store_is_one_line(viewfs):
    cfg = config(viewfs, "delta", output={"format": "delta"})
    with pytest.raises(ConfigError, match=r"output.format delta on viewfs://.*no Hadoop FileSystem fallback"):
        Job.from_config(cfg).plan()
