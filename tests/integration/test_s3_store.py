"""The whole job with input, model and output in buckets of a real S3-protocol server on 127.0.0.1.

The server is moto's (``moto[server]``), started as a subprocess on a free 127.0.0.1 port and
spoken to over real HTTP, with request authentication on: an IAM user's keys are the
good credentials, anything else is refused as the real service would. Spark's own ``s3a``
cannot run here (no hadoop-aws jars), so the job uses the pyarrow reader and writer, with Spark
only scheduling the tasks; the S3A settings reach pyarrow through ``spark.hadoop.fs.s3a.*``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import numpy as np
import onnxruntime as ort
import pyarrow.dataset as pads
import pytest
from pyarrow import fs as pafs

from batchinfer.errors import GateFailedError, InputDataError, ModelError, OutputError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, write_partitioned
from tests.support.kill import Killed, kill_at

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
requests = pytest.importorskip("requests")

FEATURES = ["f0", "f1", "f2", "f3"]
DAYS = ("2026-11-27", "2026-11-28")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    # A subprocess, not a server thread in this process: delta-rs holds the GIL while it waits
    # for the store, which would starve a server thread of the same interpreter.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        host, port = probe.getsockname()
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://{host}:{port}"
    for _ in range(300):  # until the server answers (it needs a second or two to import)
        try:
            requests.get(f"{endpoint}/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            if server.poll() is not None:
                pytest.fail(f"moto server exited with {server.returncode}")
            time.sleep(0.1)
    admin = {
        "endpoint_url": endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "admin",
        "aws_secret_access_key": "admin",
    }
    iam, client = boto3.client("iam", **admin), boto3.client("s3", **admin)
    for bucket in ("lake", "models", "scores"):
        client.create_bucket(Bucket=bucket)
    iam.create_user(UserName="job")
    policy = iam.create_policy(
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    iam.attach_user_policy(UserName="job", PolicyArn=policy["Policy"]["Arn"])
    key = iam.create_access_key(UserName="job")["AccessKey"]
    local = tmp_path_factory.mktemp("s3src")
    data = write_partitioned(local / "events", days=DAYS, files_per_day=2, rows_per_file=400)
    model, _ = models.linear_classifier(local / "model.onnx", 4)
    fs = pafs.S3FileSystem(
        endpoint_override=f"{host}:{port}",
        scheme="http",
        access_key=key["AccessKeyId"],
        secret_key=key["SecretAccessKey"],
        region="us-east-1",
    )
    pafs.copy_files(
        str(data), "lake/events", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )
    pafs.copy_files(
        str(model), "models/m.onnx", source_filesystem=pafs.LocalFileSystem(), destination_filesystem=fs
    )
    # From here on every request must carry a known key and a valid signature.
    requests.post(f"{endpoint}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    yield {
        "endpoint": endpoint,
        "access": key["AccessKeyId"],
        "secret": key["SecretAccessKey"],
        "fs": fs,
        "data": data,
        "model": model,
    }
    server.terminate()
    server.wait(timeout=30)
    log.close()


def s3_config(
    s3, out, *, access=None, secret=None, input_path="s3a://lake/events", model="s3a://models/m.onnx"
):
    cfg = job_config(input_path, model, out, features=FEATURES)
    cfg["runtime"] = {"batch_rows": 300, "reader": "pyarrow"}
    cfg["output"]["writer"] = "pyarrow"
    cfg["spark"] = {
        "conf": {
            "spark.hadoop.fs.s3a.endpoint": s3["endpoint"],
            "spark.hadoop.fs.s3a.path.style.access": "true",
            "spark.hadoop.fs.s3a.access.key": access or s3["access"],
            "spark.hadoop.fs.s3a.secret.key": secret or s3["secret"],
        }
    }
    return cfg


def read_scores(fs, path):
    return (
        pads.dataset(path, filesystem=fs, format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
        .to_table()
        .to_pandas()
    )


def test_whole_job_reads_scores_and_commits_in_buckets(spark, s3):
    fs = s3["fs"]
    cfg = s3_config(s3, "s3a://scores/churn")
    result = Job.from_config(cfg).run(spark=spark)
    assert result.status == "succeeded"
    m = result.manifest
    assert m["reader"] == "pyarrow" and m["writer"] == "pyarrow"
    assert m["rows_in"] == m["rows_out"] == len(DAYS) * 2 * 400
    assert [p["ds"] for p in m["output"]["partitions_written"]] == list(DAYS)
    assert (
        "storage: input s3a://lake/events read/written by pyarrow S3FileSystem "
        "(credentials: spark.hadoop.fs.s3a.access.key)"
    ) in m["notes"]
    assert any("only a table format (Delta, Iceberg) gives atomic replacement" in n for n in m["notes"])
    # The secret key was carried to pyarrow and the tasks, and never written down.
    manifest_text = json.dumps(m)
    assert s3["secret"] not in manifest_text
    with fs.open_input_stream(f"scores/churn/_batchinfer/runs/{result.run_id}/manifest.json") as fh:
        on_store = fh.read().decode()
    assert s3["secret"] not in on_store and json.loads(on_store)["run_id"] == result.run_id
    # Lock released, staging gone, markers published.
    assert fs.get_file_info("scores/churn/_batchinfer/lock").type == pafs.FileType.NotFound
    assert (
        fs.get_file_info(f"scores/churn/_batchinfer/staging/{result.run_id}").type == pafs.FileType.NotFound
    )
    with fs.open_input_stream(f"scores/churn/ds={DAYS[-1]}/_SUCCESS") as fh:
        assert fh.read().decode().strip() == result.run_id

    scored = read_scores(fs, "scores/churn")
    source = pads.dataset(s3["data"], format="parquet", partitioning="hive").to_table().to_pandas()
    merged = source.merge(scored, on="id", suffixes=("", "_out"))
    assert len(merged) == len(source) == len(scored)
    sess = ort.InferenceSession(str(s3["model"]), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(["probabilities"], {"input": merged[FEATURES].to_numpy(np.float32)})
    assert np.abs(merged["score"].to_numpy() - probs[:, 1]).max() <= 1e-6

    # A second run replaces exactly its partitions (directory swap by per-object moves on S3).
    again = Job.from_config(s3_config(s3, "s3a://scores/churn")).run(spark=spark)
    assert again.status == "succeeded"
    rescored = read_scores(fs, "scores/churn")
    assert len(rescored) == len(source) and set(rescored["run_id"]) == {again.run_id}


def test_interrupted_commit_in_a_bucket_is_rolled_back_or_finished(spark, s3):
    """No renames on S3: new files are added, the journal turns published, markers switch, old
    files go. Killed before published, recovery restores the previous files byte for byte;
    after it, recovery finishes the commit. Readers keeping the rows whose run_id equals the
    partition's _SUCCESS see one complete run throughout."""
    from batchinfer.io.sink import OutputTable

    fs = s3["fs"]
    out = "s3://scores/recover"  # plain s3:// as well as s3a://
    first = Job.from_config(s3_config(s3, out)).run(spark=spark)
    before = read_scores(fs, "scores/recover").sort_values("id").reset_index(drop=True)

    def marker(day):
        with fs.open_input_stream(f"scores/recover/ds={day}/_SUCCESS") as fh:
            return fh.read().decode().strip()

    seen = {}

    def kill_and_look_at(step):
        def pause(now):
            if now == "new_files_added" and "mid" not in seen:  # what a reader sees mid-commit
                rows = read_scores(fs, "scores/recover")
                seen["mid"] = (len(rows), marker(DAYS[0]), rows[rows["run_id"] == marker(DAYS[0])])
            if now == step:
                raise Killed

        return pause

    def recover():
        table = OutputTable(out)  # what `batchinfer recover` does
        table.acquire_lock("operator", "recover")
        try:
            return table.recover(current_run="operator")
        finally:
            table.release_lock("operator")

    with pytest.raises(Killed):
        Job.from_config(s3_config(s3, out)).run(spark=spark, commit_pause=kill_and_look_at("new_files_added"))
    total, mid_marker, filtered = seen["mid"]
    assert total > len(before) and mid_marker == first.run_id  # old + new files, the old marker
    filtered = filtered.sort_values("id").reset_index(drop=True)
    assert filtered.equals(before)  # both markers still name the first run: exactly its rows
    journals = fs.get_file_info(pafs.FileSelector("scores/recover/_batchinfer/journal", allow_not_found=True))
    assert [j.base_name for j in journals if j.base_name.endswith(".json")], "the commit left its journal"
    assert any("rolled back" in a for a in recover())
    after = read_scores(fs, "scores/recover").sort_values("id").reset_index(drop=True)
    assert after.equals(before) and marker(DAYS[0]) == first.run_id

    # Killed after it was published (first partition switched): recovery finishes the commit.
    with pytest.raises(Killed):
        Job.from_config(s3_config(s3, out)).run(
            spark=spark, commit_pause=kill_and_look_at("partition_committed")
        )
    assert any("completed the interrupted" in a for a in recover())
    done = read_scores(fs, "scores/recover")
    (new_run,) = set(done["run_id"])
    assert new_run != first.run_id and len(done) == len(before)
    assert marker(DAYS[0]) == marker(DAYS[1]) == new_run


def test_denied_credentials_give_one_line_naming_uri_and_credential_source(s3):
    cfg = s3_config(s3, "s3a://scores/denied", access="AKIAUNKNOWN000000000", secret="not-the-secret-123")
    with pytest.raises(ModelError) as info:  # the model is read first
        Job.from_config(cfg).plan()
    text = str(info.value)
    assert "s3a://models/m.onnx" in text and "access denied" in text
    assert "credentials: spark.hadoop.fs.s3a.access.key" in text
    assert "\n" not in text and "not-the-secret-123" not in text and "Request ID" not in text

    local_model = s3_config(
        s3, "s3a://scores/denied", access="AKIAUNKNOWN000000000", secret="not-the-secret-123"
    )
    local_model["model"]["path"] = str(s3["model"])
    with pytest.raises(InputDataError) as info:
        Job.from_config(local_model).plan()
    text = str(info.value)
    assert info.value.exit_code == 3
    assert "s3a://lake/events" in text and "access denied" in text and "\n" not in text


def test_missing_bucket_for_input_and_output(spark, s3):
    cfg = s3_config(s3, "s3a://scores/x", input_path="s3a://no-such-lake/events")
    with pytest.raises(InputDataError) as info:
        Job.from_config(cfg).plan()
    text = str(info.value)
    assert "s3a://no-such-lake/events" in text and "credentials: spark.hadoop.fs.s3a.access.key" in text
    assert "\n" not in text

    cfg = s3_config(s3, "s3a://no-such-scores/churn")
    with pytest.raises(OutputError) as info:
        Job.from_config(cfg).run(spark=spark)
    text = str(info.value)
    assert info.value.exit_code == 6
    assert "s3a://no-such-scores/churn" in text and "bucket not found" in text and "\n" not in text


def test_validate_warns_that_plain_parquet_on_a_bucket_is_not_atomic(s3, tmp_path, capsys):
    import yaml

    from batchinfer import cli

    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(s3_config(s3, "s3a://scores/validate")))
    assert cli.main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("config OK")
    assert "batchinfer: warning: output s3a://scores/validate is on an object store" in captured.err
    assert "only a table format (Delta, Iceberg) gives atomic replacement" in captured.err
    assert s3["secret"] not in captured.out + captured.err


def test_delta_output_in_a_bucket_one_version_per_run_failed_gate_and_killed_driver_none(spark, s3):
    deltalake = pytest.importorskip("deltalake")
    from batchinfer.io.delta import delta_storage_options

    cfg = s3_config(s3, "s3a://scores/delta")
    cfg["output"]["format"] = "delta"
    first = Job.from_config(cfg).run(spark=spark)
    assert first.manifest["delta"] == {"version": 0}
    assert not any("only a table format" in n for n in first.manifest["notes"])
    options = delta_storage_options("s3a://scores/delta")  # the job's settings, still active
    assert options["AWS_ENDPOINT_URL"] == s3["endpoint"] and options["AWS_ACCESS_KEY_ID"] == s3["access"]
    dt = deltalake.DeltaTable("s3://scores/delta", storage_options=options)
    assert dt.version() == 0 and dt.history(1)[0]["batchinfer.run_id"] == first.run_id
    rows = dt.to_pyarrow_table().to_pandas()
    assert len(rows) == first.manifest["rows_out"] == len(DAYS) * 2 * 400

    def unchanged():
        dt = deltalake.DeltaTable("s3://scores/delta", storage_options=options)
        assert dt.version() == 0
        after = dt.to_pyarrow_table().to_pandas().sort_values("id").reset_index(drop=True)
        assert after.equals(rows.sort_values("id").reset_index(drop=True))

    # A refused run, a failed gate (output checks computed in the scoring tasks on the bucket's
    # rows) and a driver killed before the Delta commit change nothing; the next overwrite is
    # exactly one more version.
    refused = s3_config(s3, "s3a://scores/delta")
    refused["output"].update(format="delta", mode="error_if_exists")
    with pytest.raises(OutputError, match="already a Delta table"):
        Job.from_config(refused).run(spark=spark)
    unchanged()
    gated = s3_config(s3, "s3a://scores/delta")
    gated["output"]["format"] = "delta"
    gated["checks"] = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.001}]}
    with pytest.raises(GateFailedError) as info:
        Job.from_config(gated).run(spark=spark)
    assert info.value.exit_code == 5
    unchanged()
    with pytest.raises(Killed):  # the driver dies before the Delta commit
        Job.from_config(cfg).run(spark=spark, commit_pause=kill_at("delta_table_read"))
    unchanged()
    second = Job.from_config(cfg).run(spark=spark)
    dt = deltalake.DeltaTable("s3://scores/delta", storage_options=options)
    assert dt.version() == 1 and dt.history(1)[0]["batchinfer.run_id"] == second.run_id
    assert set(dt.to_pyarrow_table().to_pandas()["run_id"]) == {second.run_id}


def test_iceberg_output_in_a_bucket_one_snapshot_per_run_failed_gate_and_killed_driver_none(
    spark, s3, tmp_path
):
    pytest.importorskip("pyiceberg")
    from batchinfer.config import IcebergConfig
    from batchinfer.io.iceberg import read_table

    cfg = s3_config(s3, "s3a://scores/iceberg")
    iceberg = {"table": "scores.churn", "catalog": {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db"}}
    cfg["output"].update(format="iceberg", iceberg=iceberg)
    first = Job.from_config(cfg).run(spark=spark)
    assert not any("only a table format" in n for n in first.manifest["notes"])
    # The FileIO got the endpoint and keys from spark.hadoop.fs.s3a.* (still active); the secret
    # never reached the manifest.
    tbl = read_table(IcebergConfig.model_validate(iceberg), "s3a://scores/iceberg")
    assert tbl.location() == "s3://scores/iceberg" and s3["secret"] not in json.dumps(first.manifest)
    snap = tbl.current_snapshot()
    assert first.manifest["iceberg"]["snapshot_id"] == snap.snapshot_id
    assert snap.summary["batchinfer.run_id"] == first.run_id
    before = tbl.scan().to_arrow().to_pandas().sort_values("id").reset_index(drop=True)
    assert len(before) == first.manifest["rows_out"] == len(DAYS) * 2 * 400
    listed = s3["fs"].get_file_info(pafs.FileSelector("scores/iceberg/data", recursive=True))
    assert all(f.base_name.startswith(first.run_id) for f in listed if f.base_name.endswith(".parquet"))

    # A failed gate (output checks computed in the scoring tasks, on the bucket's rows) writes
    # nothing: the same snapshot, the same rows, no new object under the table's data/.
    data_files = {f.path for f in listed}
    gated = s3_config(s3, "s3a://scores/iceberg")
    gated["output"].update(format="iceberg", iceberg=iceberg)
    gated["checks"] = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.001}]}
    with pytest.raises(GateFailedError) as info:
        Job.from_config(gated).run(spark=spark)
    assert info.value.exit_code == 5
    tbl = read_table(IcebergConfig.model_validate(iceberg), "s3a://scores/iceberg")
    assert tbl.current_snapshot().snapshot_id == snap.snapshot_id and len(tbl.snapshots()) == 1
    assert tbl.scan().to_arrow().to_pandas().sort_values("id").reset_index(drop=True).equals(before)
    relisted = s3["fs"].get_file_info(pafs.FileSelector("scores/iceberg/data", recursive=True))
    assert {f.path for f in relisted} == data_files

    with pytest.raises(Killed):  # the driver dies after the data files were copied, before the commit
        Job.from_config(cfg).run(spark=spark, commit_pause=kill_at("iceberg_files_moved"))
    tbl = read_table(IcebergConfig.model_validate(iceberg), "s3a://scores/iceberg")
    assert tbl.current_snapshot().snapshot_id == snap.snapshot_id and len(tbl.snapshots()) == 1
    assert tbl.scan().to_arrow().to_pandas().sort_values("id").reset_index(drop=True).equals(before)

    second = Job.from_config(cfg).run(spark=spark)
    tbl = read_table(IcebergConfig.model_validate(iceberg), "s3a://scores/iceberg")
    assert len(tbl.snapshots()) == 2 and tbl.current_snapshot().summary["batchinfer.run_id"] == second.run_id
    after = tbl.scan().to_arrow().to_pandas()
    assert len(after) == len(before) and set(after["run_id"]) == {second.run_id}
