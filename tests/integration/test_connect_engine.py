"""The Spark Connect engine against a real Spark Connect server (pyspark's, started here).

One server for the module, in its own process (a classic SparkContext may already live in this
one, and a process holds one): ``spark-submit --class ...SparkConnectServer`` on a free port,
``local[2,3]`` (3 attempts per task). Its environment carries the test fault "first attempt of
Spark partition 5 fails": only the retry test's job has six row groups (every other job has
four), so only it meets the fault. Every run here is a few seconds on tiny data.

Throughout, the Connect session class's ``sparkContext`` property records each access (the server
is real; only the attribute access is observed): no code path may touch it.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pytest

from batchinfer.errors import ConfigError, GateFailedError, ModelError
from batchinfer.job import Job
from batchinfer.scoring.udf import FAULT_ENV
from tests.support import models
from tests.support.data import job_config, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]
FAULT_PARTITION = 5  # only the retry job has a sixth task

CHECKS = {
    "input": [
        {"expect": "row_count_between", "min": 100},
        {"expect": "unique", "column": "id"},  # the distinct-count aggregation
        {"expect": "between", "column": "f0", "min": -8, "max": 8},
        {"expect": "median_between", "column": "f1", "min": -1, "max": 1},  # GX on Spark (fallback)
        {"expect": "type", "column": "f2", "dtype": "FloatType"},  # needs GX's Spark engine
    ],
    "output": [
        {"expect": "not_null", "column": "score"},
        {"expect": "between", "column": "score", "min": 0, "max": 1},
    ],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory):
    """A Spark Connect server process (started, not yet waited for); stopped at the end of the module."""
    from batchinfer.submit import spark_home

    home = spark_home()
    port = _free_port()
    log = tmp_path_factory.mktemp("connect-server") / "server.log"
    env = {
        **os.environ,
        "SPARK_HOME": home,
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),  # the probe task below, by reference
        FAULT_ENV: f"0:{FAULT_PARTITION}",
    }
    env.pop("SPARK_REMOTE", None)
    cmd = [
        os.path.join(home, "bin", "spark-submit"),
        "--class",
        "org.apache.spark.sql.connect.service.SparkConnectServer",
        "--master",
        "local[2,3]",
        "--driver-memory",
        "1g",
        "--conf",
        f"spark.connect.grpc.binding.port={port}",
        "--conf",
        "spark.connect.grpc.binding.address=127.0.0.1",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.sql.shuffle.partitions=2",
        "--conf",
        "spark.python.worker.reuse=true",
        "spark-internal",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = _Server(proc, port, log)
    try:
        yield server  # not waited for here: its JVM starts while the other fixtures do their work
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _Server:
    def __init__(self, proc, port: int, log: Path) -> None:
        self.proc, self.port, self.log = proc, port, log
        self.url = f"sc://127.0.0.1:{port}"

    def wait_ready(self, timeout: float = 180) -> str:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"Spark Connect server exited ({self.proc.returncode}): {self.log.read_text()[-3000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self.url
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"Spark Connect server not up after {timeout} s: {self.log.read_text()[-3000:]}"
                    )
                time.sleep(0.3)


@pytest.fixture(scope="module")
def connect(connect_server):
    """A Connect session to the server, built as a notebook user would (the Connect builder)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    session = ConnectSession.builder.remote(connect_server.wait_ready()).getOrCreate()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def context_access(connect):
    """Record every access to a Connect session's ``sparkContext`` (or its JVM handles), then do
    what such an access always does there (raise JVM_ATTRIBUTE_NOT_SUPPORTED)."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    original = ConnectSession.__getattr__  # the Connect session answers these names here
    seen: list[str] = []

    def recording(self, name):
        if name in ("sparkContext", "_jsc", "_jvm", "_jsparkSession", "_jconf"):
            import traceback

            seen.append(f"{name}:\n" + "".join(traceback.format_stack(limit=8)))
        return original(self, name)

    ConnectSession.__getattr__ = recording
    try:
        with pytest.raises(Exception, match="JVM_ATTRIBUTE_NOT_SUPPORTED"):
            _ = connect.sparkContext  # the recorder sees what the code below would do
        assert len(seen) == 1
        seen.clear()
        yield seen
    finally:
        ConnectSession.__getattr__ = original


@pytest.fixture(scope="module")
def ws(tmp_path_factory, connect_server, spark):
    """Data (4 row groups), the same in 6 row groups for the retry, a model, a drift profile.

    Asks for the server first, then classic Spark: the two JVMs start side by side."""
    root = tmp_path_factory.mktemp("connect")
    data = write_partitioned(root / "events", rows_per_file=250, extra=_two_nans_in_f3)
    retry_data = write_partitioned(root / "events6", files_per_day=3, rows_per_file=250, seed=1)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    profile = root / "profile.json"
    _reference_profile(job_config(data, model, root / "p", features=FEATURES), data, model).save(profile)
    return root, data, retry_data, model, profile


def _two_nans_in_f3(n, rng):
    f3 = rng.normal(size=n).astype("float32")
    f3[:2] = float("nan")  # quarantined by the scoring task (invalid_features: quarantine)
    return {"f3": f3}


def _reference_profile(cfg, data, model):
    """The profile `batchinfer profile` would build, without a Spark job: onnxruntime + numpy."""
    import numpy as np
    import onnxruntime as ort

    from batchinfer.checks.profile import profile_arrays
    from batchinfer.checks.reference import monitored_columns

    plan = Job.from_config(cfg).plan()
    numeric, categorical = monitored_columns(plan, plan.selection.schema)
    table = ds.dataset(data, format="parquet", partitioning="hive").to_table()
    table = table.filter(pc.invert(pc.is_nan(table.column("f3"))))
    features = np.stack([table.column(c).to_numpy() for c in FEATURES], axis=1).astype(np.float32)
    label, proba = ort.InferenceSession(str(model)).run(["label", "probabilities"], {"input": features})
    columns = {c: table.column(c).to_numpy() for c in FEATURES}
    columns.update(score=proba[:, 1], label=label)
    assert set(numeric) | set(categorical) <= set(columns), (numeric, categorical)
    return profile_arrays({c: columns[c] for c in numeric}, {c: columns[c] for c in categorical}, top_k=20)


def _cfg(ws, out, **sections):
    root, data, _, model, profile = ws
    sections.setdefault("checks", CHECKS)
    sections.setdefault("quarantine", {"enabled": True, "path": str(root / f"q-{out}"), "max_fraction": 0.05})
    sections.setdefault("input", {"invalid_features": "quarantine"})
    sections.setdefault("drift", {"reference": str(profile)})
    return job_config(data, model, root / out, features=FEATURES, **sections)


def _table(path):
    t = ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."]).to_table()
    return t.sort_by("id")


@pytest.fixture(scope="module")
def runs(ws, connect, spark, context_access):
    """The same job on Spark Connect (session passed in) and on classic Spark."""
    on_connect = Job.from_config(_cfg(ws, "out-connect")).run(spark=connect)
    seen = list(context_access)
    on_classic = Job.from_config(_cfg(ws, "out-classic")).run(spark=spark)
    return on_connect, on_classic, seen


def test_connect_run_scores_checks_and_drift_without_a_spark_context(runs, ws):
    result, _, context_accesses = runs
    m = result.manifest
    assert result.status == "succeeded" and result.rows_in == 1000 and result.rows_out == 992
    assert m["engine"] == {"name": "spark-connect", "reason": "a spark-connect session was passed in"}
    assert m["spark"]["connect"] is True and m["spark"]["spark_version"].startswith("4.")
    assert m["spark_jobs"] is None  # Connect gives the client no job ids: unknown, not guessed
    c = m["checks"]
    assert c["single_pass"] is True and c["gate"]["passed"] is True
    assert c["input_expectations"]["paths"] == {"single_pass": 3, "aggregation": 1, "gx_spark": 1}
    assert c["output_expectations"]["paths"] == {"single_pass": 2, "aggregation": 0, "gx_spark": 0}
    assert c["drift"]["columns"] >= 4 and c["prediction_drift"]["columns"] >= 1
    # Worker stats came back as data: sessions were built on the server's Python workers.
    q = c["quarantine"]
    assert (q["rows_total"], q["rows_quarantined"], q["rows_scored"]) == (1000, 8, 992)
    assert q["reasons"] == {"f3 is NaN": 8}
    assert _table(q["path"]).num_rows == 8  # committed with the output
    assert sum(w["rows"] for w in m["workers"].values()) == 992
    assert all(
        w["sessions"] >= 1 and w["providers"] == ["CPUExecutionProvider"] for w in m["workers"].values()
    )
    assert context_accesses == [], context_accesses[0]


def test_connect_and_classic_outputs_are_identical(runs):
    on_connect, on_classic, _ = runs
    a, b = _table(on_connect.output_path), _table(on_classic.output_path)
    assert a.num_rows == b.num_rows == 992
    assert a.column_names == b.column_names and "score" in a.column_names
    for name in a.column_names:  # fp32 scores bit-identical: equal arrays, no tolerance
        if name == "run_id":
            continue
        assert a.column(name).equals(b.column(name)), name

    def outcomes(r):
        return [
            (o["stage"], o["check"], o.get("column"), o["status"], o.get("observed"))
            for o in r.manifest["checks"]["outcomes"]
        ]

    assert outcomes(on_connect) == outcomes(on_classic)


def test_gate_failure_on_connect_commits_nothing(ws, connect_server, context_access):
    """spark.remote in the config (no session passed): a failing gate raises, nothing is written."""
    url = connect_server.wait_ready()
    checks = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.5}]}
    cfg = _cfg(ws, "out-gate", checks=checks, spark={"remote": url})
    with pytest.raises(GateFailedError, match="check gate failed") as info:
        Job.from_config(cfg).run()
    result = info.value.result
    assert result.status == "gate_failed"
    assert result.manifest["engine"]["reason"] == "spark.remote is set"
    assert not list(Path(ws[0] / "out-gate").glob("ds=*"))
    assert context_access == []


def test_task_retry_on_connect_counts_every_row_once(ws, connect, connect_server, context_access):
    root, _, retry_data, model, _ = ws
    cfg = job_config(
        retry_data,
        model,
        root / "out-retry",
        features=FEATURES,
        checks={"output": [{"expect": "not_null", "column": "score"}]},
    )
    result = Job.from_config(cfg).run(spark=connect)
    assert result.status == "succeeded" and result.rows_out == 1500
    ids = _table(result.output_path).column("id").to_pylist()
    want = ds.dataset(retry_data, format="parquet", partitioning="hive").to_table().column("id").to_pylist()
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(want)
    # The first attempt of task 5 really failed on the server, and Spark retried it.
    log = connect_server.log.read_text(errors="replace")
    assert f"injected test fault: partition {FAULT_PARTITION} attempt 0" in log
    assert context_access == []


class _ProbeTask:
    """A task that reports where it ran and what the shipped model looks like on the worker."""

    def __init__(self, model, wrong=None) -> None:
        self.model, self.wrong = model, wrong

    def with_model(self, model):
        return _ProbeTask(model, type(model)(model.name, "0" * 64))

    def run(self, rows):
        from pyspark import TaskContext

        rows = list(rows)
        try:
            _ = self.wrong.value
            verdict = "accepted a wrong digest"
        except ModelError as exc:
            verdict = exc.message
        digest = hashlib.sha256(self.model.value).hexdigest()
        part = TaskContext.get().partitionId()
        return [
            {
                "file": f"{part}:{r[1]}:{digest}",
                "rows": len(rows),
                "kind": "probe",
                "partial": verdict.encode(),
            }
            for r in rows
        ]


def test_one_spark_task_per_row_group_and_the_model_is_verified_on_the_worker(connect):
    from batchinfer.engines.connect import ConnectEngine
    from batchinfer.task import ModelBytes

    content = b"not really onnx, but bytes with a digest"
    engine = ConnectEngine(connect)
    rows = engine.run(_ProbeTask(ModelBytes(content)), [("file:///x", i, "{}") for i in range(5)])
    seen = sorted(tuple(r["file"].split(":")) for r in rows)
    digest = hashlib.sha256(content).hexdigest()
    assert seen == [(str(i), str(i), digest) for i in range(5)]  # task i ran row group i, alone
    assert all(r["rows"] == 1 for r in rows)
    assert all(b"expected 000000000000" in bytes(r["partial"]) for r in rows)


def test_spark_only_paths_are_refused_before_spark_work(ws, connect):
    for section, why in (
        ({"runtime": {"reader": "spark"}}, "runtime.reader: spark"),
        ({"output": {"writer": "spark"}}, "output.writer: spark"),
    ):
        cfg = _cfg(ws, "out-refused", **section)
        with pytest.raises(ConfigError, match=f"{why} is not supported on Spark Connect"):
            Job.from_config(cfg).run(spark=connect)
