"""Crashes on real Spark: task retries, a lost executor, a SIGKILLed driver, concurrent runs, secrets.

Each child run is ``python -m batchinfer.cli run`` with test-only switches (batchinfer/faults.py);
see docs/reliability.md for the behaviour each test pins down.
"""

from __future__ import annotations

import json
import os
import sys
from io import StringIO
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from batchinfer import cli, faults
from batchinfer.job import Job
from batchinfer.scoring.udf import FAULT_ENV
from tests.support import models
from tests.support.data import job_config, snapshot, write_partitioned
from tests.support.fault_job import ChildRun, child_env, write_config

pytestmark = pytest.mark.slow

FEATURES = ["f0", "f1", "f2", "f3"]
DAYS = ("2026-11-27", "2026-11-28")
SECRET = "s3cr3t-planted-7f3a9c"


def read_output(path):
    return ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."]).to_table()


def assert_exactly_once(out, data) -> None:
    """Every input id appears exactly once in the output (joined on id)."""
    got = read_output(out).column("id").to_pylist()
    want = ds.dataset(data, format="parquet", partitioning="hive").to_table().column("id").to_pylist()
    assert len(got) == len(set(got)) and sorted(got) == sorted(want)


def meta_leftovers(out) -> dict:
    meta = Path(out) / "_batchinfer"
    return {
        sub: sorted(p.name for p in (meta / sub).iterdir()) if (meta / sub).exists() else []
        for sub in ("staging", "trash", "journal")
    }


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data = write_partitioned(root / "events", days=DAYS, files_per_day=3, rows_per_file=400)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return root, data, model


# --------------------------------------------------------------------------- retries + lock + secrets
@pytest.fixture(scope="module")
def retried(ws, tmp_path_factory):
    """One child run on local[2,3] (3 attempts per task) whose first attempts fail on partitions 0
    and 2. It pauses after writing its commit journal, holding the output lock: meanwhile a second
    run of the same job (in this process, through the CLI) must fail with "output locked". The
    config plants a secret from the environment in spark.conf and the description."""
    root, data, model = ws
    tmp = tmp_path_factory.mktemp("retried")
    out = tmp / "out"
    cfg = job_config(data, model, out, features=FEATURES)
    cfg["description"] = "token ${env:BATCHINFER_TEST_SECRET}"
    cfg["spark"] = {
        "master": "local[2,3]",
        "conf": {"spark.hadoop.fs.s3a.secret.key": "${env:BATCHINFER_TEST_SECRET}"},
    }
    config = write_config(tmp / "job.yaml", cfg)
    env = child_env(
        tmp,
        BATCHINFER_TEST_SECRET=SECRET,
        **{
            FAULT_ENV: "0:0,2",
            faults.PAUSE_AT_ENV: "journal_written",
            faults.PAUSE_FILE_ENV: str(tmp / "pause"),
        },
    )
    child = ChildRun(config, env, "--manifest-out", str(tmp / "manifest-out.json"), workdir=tmp / "child")
    try:
        return _lock_contest(child, config, out, data, tmp)
    finally:
        if child.proc.poll() is None:
            child.kill()


def _lock_contest(child, config, out, data, tmp) -> dict:
    step = child.wait_for_pause()

    # The concurrent run: same output, in this process, while the child holds the lock.
    holder = json.loads((out / "_batchinfer" / "lock").read_text())
    err, old_err = StringIO(), sys.stderr
    os.environ["BATCHINFER_TEST_SECRET"] = SECRET
    try:
        sys.stderr = err
        rc_second = cli.main(["-q", "run", str(config)])
    finally:
        sys.stderr = old_err
        os.environ.pop("BATCHINFER_TEST_SECRET", None)
    staged_meanwhile = meta_leftovers(out)

    child.release()
    rc = child.wait()
    return {
        "tmp": tmp,
        "out": out,
        "data": data,
        "child": child,
        "rc": rc,
        "step": step,
        "holder": holder,
        "rc_second": rc_second,
        "stderr_second": err.getvalue(),
        "staged_meanwhile": staged_meanwhile,
    }


def test_task_retries_every_row_exactly_once(retried):
    assert retried["rc"] == 0, retried["child"].stderr[-3000:]
    manifest = json.loads(retried["child"].stdout)
    assert manifest["status"] == "succeeded" and manifest["spark"]["master"] == "local[2,3]"
    assert manifest["rows_out"] == manifest["rows_in"] == 2 * 3 * 400
    assert_exactly_once(retried["out"], retried["data"])
    # The injected faults really fired: the failed attempts are in the run's Spark log, not on stderr.
    assert "injected test fault" in Path(manifest["spark_log"]).read_text()
    assert "injected test fault" not in retried["child"].stderr


def test_concurrent_run_fails_with_output_locked_and_output_is_never_mixed(retried):
    assert retried["step"] == "journal_written"
    assert retried["rc_second"] == 6
    holder = retried["holder"]
    assert f"locked by run {holder['run_id']}" in retried["stderr_second"]
    assert "batchinfer unlock" in retried["stderr_second"]  # the documented way out of a stale lock
    # Only the winner's rows, from one run.
    table = read_output(retried["out"])
    assert set(table.column("run_id").to_pylist()) == {holder["run_id"]}
    assert_exactly_once(retried["out"], retried["data"])
    assert not (retried["out"] / "_batchinfer" / "lock").exists()


def test_secrets_from_env_never_leak(retried):
    tmp = retried["tmp"]
    texts = {
        "stdout (--json)": retried["child"].stdout,
        "stderr": retried["child"].stderr,
        "stderr of the locked run": retried["stderr_second"],
        "--manifest-out": (tmp / "manifest-out.json").read_text(),
    }
    for p in (retried["out"] / "_batchinfer").rglob("*"):
        if p.is_file():
            texts[str(p)] = p.read_text(errors="replace")
    manifest = json.loads(retried["child"].stdout)
    assert manifest["config"]["description"] == "token ***"
    assert manifest["config"]["spark"]["conf"]["spark.hadoop.fs.s3a.secret.key"] == "***"
    assert len(texts) >= 5
    leaked = [name for name, text in texts.items() if SECRET in text]
    assert leaked == []


# --------------------------------------------------------------------------- driver SIGKILL
# journal_written is the same rollback as moved_previous with nothing moved yet; it is covered
# without Spark by tests/unit/test_sink.py::test_interrupted_commit_is_rolled_back_byte_identical.
@pytest.mark.parametrize("step", ["scoring", "moved_previous", "partition_committed"])
def test_driver_killed_mid_write_keeps_previous_output(spark, ws, tmp_path, step):
    root, data, model = ws
    out = tmp_path / "out"
    cfg = job_config(data, model, out, features=FEATURES)
    first = Job.from_config(cfg).run(spark=spark)
    before = snapshot(out)

    child_cfg = dict(cfg, spark={"master": "local[2]"})
    config = write_config(tmp_path / "job.yaml", child_cfg)
    env = child_env(tmp_path, **{faults.PAUSE_AT_ENV: step, faults.PAUSE_FILE_ENV: str(tmp_path / "pause")})
    child = ChildRun(config, env, workdir=tmp_path / "child")
    try:
        assert child.wait_for_pause() == step
    finally:
        child.kill()
    lock = json.loads((out / "_batchinfer" / "lock").read_text())
    assert lock["pid"] == child.proc.pid  # the dead run's lock is left behind
    assert meta_leftovers(out)["staging"] == [lock["run_id"]]  # and its staged files

    visible = snapshot(out)
    if step == "scoring":
        assert visible == before  # nothing published yet
    elif step == "moved_previous":
        # Inside the rename window the first partition is in trash: readers miss it until recovery.
        assert not (out / f"ds={DAYS[0]}").exists()
        assert (out / f"ds={DAYS[1]}" / "_SUCCESS").read_text().strip() == first.run_id
    else:
        # One partition already holds the dead run's rows, the other still the previous run's.
        assert (out / f"ds={DAYS[0]}" / "_SUCCESS").read_text().strip() == lock["run_id"]
        assert (out / f"ds={DAYS[1]}" / "_SUCCESS").read_text().strip() == first.run_id

    if step == "partition_committed":
        # No manual step: the next run (here: of the second day only) breaks the dead pid's lock,
        # rolls the first day back to its previous bytes and cleans up, then does its own work.
        rerun = Job.from_config(cfg, overrides=[f"input.partitions.ds={DAYS[1]}"]).run(spark=spark)
        assert any("rolled back" in a for a in rerun.manifest["recovered"])
        prefix = f"ds={DAYS[0]}/"
        assert {k: v for k, v in snapshot(out).items() if k.startswith(prefix)} == {
            k: v for k, v in before.items() if k.startswith(prefix)
        }
    else:
        assert cli.main(["recover", str(out)]) == 0  # breaks the dead pid's lock itself
        assert snapshot(out) == before  # byte for byte
        assert meta_leftovers(out) == {"staging": [], "trash": [], "journal": []}
        rerun = Job.from_config(cfg).run(spark=spark)
        assert set(read_output(out).column("run_id").to_pylist()) == {rerun.run_id}
    assert rerun.status == "succeeded" and rerun.run_id != first.run_id
    assert_exactly_once(out, data)
    assert meta_leftovers(out) == {"staging": [], "trash": [], "journal": []}
    assert not (out / "_batchinfer" / "lock").exists()


# --------------------------------------------------------------------------- executor loss
def test_executor_killed_mid_scoring_job_completes_on_retry(ws, tmp_path):
    root, data, model = ws
    out = tmp_path / "out"
    cfg = job_config(data, model, out, features=FEATURES)
    cfg["spark"] = {
        "master": "local-cluster[2,1,1024]",
        "conf": {
            "spark.executor.memory": "768m",
            f"spark.executorEnv.{faults.KILL_EXECUTOR_ENV}": "0",
        },
    }
    config = write_config(tmp_path / "job.yaml", cfg)
    child = ChildRun(config, child_env(tmp_path), workdir=tmp_path / "child")
    rc = child.wait(timeout=400)
    assert rc == 0, child.stderr[-4000:]
    manifest = json.loads(child.stdout)
    assert manifest["status"] == "succeeded"
    assert manifest["rows_out"] == manifest["rows_in"] == 2 * 3 * 400
    assert_exactly_once(out, data)
    # The executor really died: Spark logged the lost executor / the failed task (in the run's log).
    log = Path(manifest["spark_log"]).read_text()
    assert "ExecutorLostFailure" in log or "Lost executor" in log, log[-3000:]
