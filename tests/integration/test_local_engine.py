"""The embedded engine (runtime.engine: local): the same job semantics as Spark, no JVM.

Core cases (score + checks + drift, gate failure, output equality with the Spark engine), a
worker SIGKILLed mid-task and a task that raises (both retried, every row exactly once), the
retry limit, Spark-only settings refused, and a child process proving that neither
``import batchinfer`` nor a local run starts a JVM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from batchinfer import faults
from batchinfer.errors import ConfigError, GateFailedError, TaskFailedError
from batchinfer.job import Job
from batchinfer.scoring.udf import FAULT_ENV
from tests.support import models
from tests.support.data import job_config, small_workspace
from tests.support.profiles import assert_numeric_column_matches

FEATURES = ["f0", "f1", "f2", "f3"]
ROOT = Path(__file__).resolve().parents[2]

CHECKS = {
    "input": [
        {"expect": "row_count_between", "min": 100},
        {"expect": "not_null", "column": "f0"},
        {"expect": "unique", "column": "id"},  # the distinct-count path
        {"expect": "type", "column": "f0", "dtype": "FloatType"},  # Spark type names, no Spark
        {"expect": "in_set", "column": "cat", "values": ["a", "b", "c"]},
        {"expect": "between", "column": "f1", "min": -3, "max": 3, "mostly": 0.95, "severity": "warn"},
    ],
    "output": [
        {"expect": "between", "column": "score", "min": 0, "max": 1},
        {"expect": "median_between", "column": "score", "min": 0, "max": 1},  # a GX fallback
    ],
}


def read_output(path) -> pa.Table:
    return ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."]).to_table()


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return small_workspace(tmp_path_factory.mktemp("local_engine"))


@pytest.fixture(scope="module")
def profile(ws, spark):
    """The drift reference, built with Spark (checks/reference.py), once."""
    from batchinfer.checks.reference import build_reference_profile, reference_overrides

    root, data, model = ws
    base = job_config(data, model, root / "ref-out", features=FEATURES)
    job = Job.from_config(base, overrides=reference_overrides("ds=2026-11-27"))
    path = root / "profile.json"
    build_reference_profile(job, spark=spark).save(path)
    return path


def checked_config(ws, profile, out, **sections):
    root, data, model = ws
    return job_config(
        data,
        model,
        out,
        features=FEATURES,
        checks=CHECKS,
        drift={"reference": str(profile), "metric": "psi", "prediction": {"metric": "psi"}},
        **sections,
    )


def outcomes(manifest: dict) -> list[tuple]:
    return [
        (o["stage"], o["check"], o["column"], o["status"], json.dumps(o["observed"], default=str))
        for o in manifest["checks"]["outcomes"]
    ]


def test_local_engine_matches_the_spark_engine(ws, profile, tmp_path, spark):
    """Same rows, bit-identical fp32 scores, same check and drift outcomes; no Spark jobs."""
    local = Job.from_config(
        checked_config(ws, profile, tmp_path / "local", runtime={"engine": "local"})
    ).run()
    on_spark = Job.from_config(checked_config(ws, profile, tmp_path / "spark")).run(spark=spark)

    assert local.status == on_spark.status == "succeeded"
    assert local.manifest["engine"]["name"] == "local"
    assert on_spark.manifest["engine"]["name"] == "spark"
    assert local.manifest["spark_jobs"] is None and "engine_start" in local.manifest["timings"]
    a = read_output(tmp_path / "local").sort_by("id")
    b = read_output(tmp_path / "spark").sort_by("id").select(a.column_names)
    assert a.num_rows == b.num_rows == 1200
    assert a.column("id").equals(b.column("id"))
    assert a.column("label").equals(b.column("label"))
    score_a = a.column("score").to_numpy()
    assert score_a.dtype == np.float32
    assert score_a.tobytes() == b.column("score").to_numpy().tobytes()  # bit-identical
    assert outcomes(local.manifest) == outcomes(on_spark.manifest)
    assert any(o["stage"] == "drift" for o in local.manifest["checks"]["outcomes"])
    # One onnxruntime session per worker process and model digest.
    workers = local.manifest["workers"]
    assert workers and all(w["sessions"] == 1 for w in workers.values())
    assert sum(w["rows"] for w in workers.values()) == 1200
    pool = local.manifest["spark"]
    assert pool["engine"] == "local" and pool["task_attempts"] == 4 and pool["failed_attempts"] == []


def test_gate_failure_on_local_writes_nothing(ws, tmp_path):
    root, data, model = ws
    checks = {"output": [{"expect": "between", "column": "score", "min": 0, "max": 0.01}]}
    cfg = job_config(
        data, model, tmp_path / "out", features=FEATURES, checks=checks, runtime={"engine": "local"}
    )
    with pytest.raises(GateFailedError) as info:
        Job.from_config(cfg).run()
    assert info.value.result.status == "gate_failed"
    assert not (tmp_path / "out" / "ds=2026-11-27").exists()


def test_killed_worker_and_failed_task_are_retried_exactly_once(ws, tmp_path, monkeypatch):
    """Task 0's worker is SIGKILLed after writing its first batch; task 2 raises after its first
    batch: both are retried with a new attempt number and every input row is committed once."""
    root, data, model = ws
    monkeypatch.setenv(faults.KILL_WORKER_ENV, "0")
    monkeypatch.setenv(FAULT_ENV, "0:2:late")
    cfg = job_config(
        data, model, tmp_path / "out", features=FEATURES, runtime={"engine": "local", "batch_rows": 100}
    )
    result = Job.from_config(cfg).run()
    assert result.status == "succeeded"
    ids = read_output(tmp_path / "out").column("id").to_pylist()
    want = ds.dataset(data, format="parquet", partitioning="hive").to_table().column("id").to_pylist()
    assert len(ids) == len(set(ids)) and sorted(ids) == sorted(want)
    failed = {(f["task"], f["attempt"]): f["error"] for f in result.manifest["spark"]["failed_attempts"]}
    assert set(failed) == {(0, 0), (2, 0)}, failed
    assert "SIGKILL" in failed[(0, 0)] and "injected test fault" in failed[(2, 0)]
    pool = result.manifest["spark"]
    assert pool["workers_started"] == pool["workers"] + 1  # one more for the killed worker


def test_a_task_failing_every_attempt_fails_the_run(ws, tmp_path, monkeypatch):
    root, data, model = ws
    monkeypatch.setenv(FAULT_ENV, "0:1")
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES, runtime={"engine": "local"})
    cfg["spark"] = {"conf": {"spark.task.maxFailures": 1}}
    with pytest.raises(TaskFailedError, match=r"task 1 failed 1 times.*injected test fault"):
        Job.from_config(cfg).run()
    assert not (tmp_path / "out" / "ds=2026-11-27").exists()


@pytest.mark.parametrize("section", [{"runtime": {"reader": "spark"}}, {"output": {"writer": "spark"}}])
def test_spark_only_settings_are_refused_on_local_before_work(ws, tmp_path, section):
    root, data, model = ws
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES, **section)
    cfg["runtime"] = {**cfg["runtime"], **section.get("runtime", {}), "engine": "local"}
    with pytest.raises(ConfigError, match=r"needs Spark, but runtime\.engine is local"):
        Job.from_config(cfg).run()
    # auto picks Spark for them, and says why
    from batchinfer import engines

    cfg["runtime"]["engine"] = "auto"
    choice = engines.resolve(Job.from_config(cfg).config)
    assert choice.name == "spark" and "needs Spark" in choice.reason


# A child process's watch: every java child it starts (`seen`) and every embedded worker (`workers`).
WATCH = r"""
import json, os, sys, threading, time
import batchinfer
from batchinfer.job import Job

def java_children():
    found = set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
        except OSError:
            continue
        if ppid == os.getpid() and b"java" in cmd.split(b"\0")[0]:
            found.add(int(pid))
    return found

seen, workers, stop = set(), set(), threading.Event()
def poll():
    while not stop.is_set():
        seen.update(java_children())
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as fh:
                        if b"batchinfer.engines.worker" in fh.read():
                            workers.add(int(pid))
                except OSError:
                    pass
        time.sleep(0.05)
t = threading.Thread(target=poll, daemon=True); t.start()
"""
CHILD = (
    WATCH
    + r"""
cfg = json.loads(sys.argv[1])
result = Job.from_config(cfg).run()
stop.set(); t.join()
from pyspark import SparkContext
alive = [p for p in workers if os.path.exists(f"/proc/{p}") and open(f"/proc/{p}/stat").read().split()[2] != "Z"]
print(json.dumps({"status": result.status, "engine": result.manifest["engine"]["name"],
                  "java": sorted(seen), "gateway": SparkContext._gateway is not None,
                  "workers_seen": len(workers), "workers_alive": alive,
                  "pyspark_sql_imported": "pyspark.sql.session" in sys.modules}))
"""
)


def test_import_and_local_run_start_no_jvm(ws, profile, tmp_path):
    """A fresh process: `import batchinfer` and an auto (= local) run with checks and drift start
    no java child, pyspark's gateway stays None, and no worker outlives the run."""
    cfg = checked_config(ws, profile, tmp_path / "out")
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SPARK_REMOTE", None)
    proc = subprocess.run(
        [sys.executable, str(script), json.dumps(cfg)], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["status"] == "succeeded" and got["engine"] == "local"
    assert got["java"] == [] and got["gateway"] is False
    assert got["workers_seen"] >= 1 and got["workers_alive"] == []


def test_local_reference_profile_matches_spark_and_decides_drift_alike(ws, profile, tmp_path, capsys):
    """`batchinfer profile` on the embedded engine (no Spark) against the Spark-built profile of
    the same reference day: same columns, rows, nulls and categories, quantile edges within
    approxQuantile's rank error; a job on shifted data decides drift the same with either."""
    import pyarrow.parquet as pq

    from batchinfer.checks.profile import load_profile
    from batchinfer.cli import main
    from tests.support.fault_job import write_config

    root, data, model = ws
    config = write_config(tmp_path / "job.yaml", job_config(data, model, tmp_path / "o", features=FEATURES))
    out = tmp_path / "local-profile.json"
    assert main(["profile", str(config), "--reference", "ds=2026-11-27", "--out", str(out)]) == 0
    assert "(local engine, " in capsys.readouterr().out
    local, spark_made = load_profile(out), load_profile(profile)
    assert list(local.columns) == list(spark_made.columns) and local.row_count == spark_made.row_count == 600
    assert local.categorical_columns == ["label"]
    reference = read_output(data).filter(pa.compute.equal(pa.compute.field("ds"), "2026-11-27"))
    assert reference.num_rows == 600
    for name, mine in local.columns.items():
        theirs = spark_made.columns[name]
        if name == "label":
            assert mine == theirs
            continue
        # Features: the edges' ranks in the data within approxQuantile's 1e-3, plus a rank; the
        # score: its moments only.
        values = reference.column(name).to_numpy() if name in FEATURES else None
        assert_numeric_column_matches(
            mine, theirs, values, sum_rel=1e-6, rank_tol=1e-3 + 2 / reference.num_rows, name=name
        )
    # The current batch: the next day with f0 shifted far (fails) and f1 a little (warns).
    day = read_output(data).filter(pa.compute.equal(pa.compute.field("ds"), "2026-11-28")).drop(["ds"])
    shifted = day.set_column(
        day.schema.get_field_index("f0"), "f0", pa.compute.add(day.column("f0"), np.float32(1.0))
    )
    shifted = shifted.set_column(
        shifted.schema.get_field_index("f1"), "f1", pa.compute.add(day.column("f1"), np.float32(0.3))
    )
    current = tmp_path / "current" / "ds=2026-11-28"
    current.mkdir(parents=True)
    pq.write_table(shifted, current / "part-0.parquet")
    decisions = []
    for path in (out, profile):
        cfg = job_config(
            tmp_path / "current",
            model,
            tmp_path / f"out-{path.stem}",
            features=FEATURES,
            drift={"reference": str(path), "metric": "psi", "prediction": {"metric": "psi"}},
            runtime={"engine": "local", "dry_run": True},
        )
        with pytest.raises(GateFailedError) as info:
            Job.from_config(cfg).run()
        checks = info.value.result.manifest["checks"]
        drift = [o for o in checks["outcomes"] if o["stage"] in ("drift", "prediction_drift")]
        decisions.append(
            (
                {(o["stage"], o["check"], o["column"]): o["status"] for o in drift},
                {(o["stage"], o["check"], o["column"]): o["observed"] for o in drift},
                checks["gate"],
            )
        )
    (status, observed, gate), (status_s, observed_s, gate_s) = decisions
    assert status == status_s and gate == gate_s
    psi = {column: s for (stage, check, column), s in status.items() if stage == "drift" and check == "psi"}
    assert psi == {"f0": "failed", "f1": "warning", "f2": "passed", "f3": "passed"}, observed
    for key, value in observed.items():  # the same statistics, up to the edges' rank error
        if isinstance(value, float):
            assert value == pytest.approx(observed_s[key], abs=0.02), key


DEMO_CHILD = (
    WATCH
    + r"""
from batchinfer.cli import main
rc = main(["demo", "--dir", sys.argv[1], "--rows", "3000"])
stop.set(); t.join()
from pyspark import SparkContext  # Great Expectations imports pyspark.sql; no JVM is started
print(json.dumps({"rc": rc, "java": sorted(seen), "gateway": SparkContext._gateway is not None,
                  "workers_seen": len(workers)}))
"""
)


def test_a_fresh_demo_starts_no_jvm(tmp_path):
    """`batchinfer demo` from scratch (data, reference profile, job) in a fresh process: no java
    child, pyspark's gateway stays None; the console says what each step did and where the report is."""
    from batchinfer.demo import N_FEATURES

    # The demo trains its MLP only when the model is missing: a linear one keeps this test cheap.
    models.linear_classifier(tmp_path / "demo" / "models" / "churn.onnx", N_FEATURES)
    script = tmp_path / "child.py"
    script.write_text(DEMO_CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("SPARK_REMOTE", None)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["rc"] == 0 and got["java"] == [] and got["gateway"] is False and got["workers_seen"] >= 1
    err = proc.stderr
    assert "demo: wrote 3,000 rows in 3 ds partitions" in err
    assert "demo: profiled 1,000 reference rows (ds=2026-11-26)" in err and "(local engine, " in err
    assert "Traceback" not in err
    runs_dir = tmp_path / "demo" / "output" / "churn_scores" / "_batchinfer" / "runs"
    (run_dir,) = runs_dir.iterdir()
    line = next(x for x in proc.stdout.splitlines() if x.startswith("  report "))  # the page to open next
    page = line.split()[-1]
    assert page == str(run_dir / "report.html") and run_dir.name in Path(page).read_text()


def test_arrow_distinct_counts_equal_the_spark_aggregation(spark):
    """The Spark-free distinct counts (unique, unique_value_count) agree with the Spark job."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from batchinfer.checks import partials as P
    from batchinfer.checks.single_pass import distinct_metrics, distinct_metrics_arrow

    rng = np.random.default_rng(3)
    n = 300
    x = rng.integers(0, 50, size=n).astype(np.float64)
    x[[1, 2]] = np.nan
    table = pa.table(
        {
            "i": pa.array(np.r_[np.arange(n - 3), [5, 5, 7]], pa.int64()),
            "x": pa.array(x, mask=rng.random(n) < 0.1),
            "s": pa.array(list(rng.choice(["a", "b", None], size=n)), pa.string()),
        }
    )
    schema = P.SideSchema(table.column_names, {f.name: f.type for f in table.schema})
    df = spark.createDataFrame(table.to_pylist(), from_arrow_schema(table.schema))
    cols = ["i", "x", "s"]
    ours, theirs = distinct_metrics_arrow(table, cols, schema), distinct_metrics(spark, df, cols, schema)
    for c in cols:
        assert ours[c]["distinct"] == theirs[c]["distinct"], c
        assert ours[c]["duplicate_rows"] == theirs[c]["duplicate_rows"], c
        assert len(ours[c]["duplicate_sample"]) == len(theirs[c]["duplicate_sample"]), c


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGINT"])
def test_workers_die_with_a_killed_or_interrupted_driver(ws, tmp_path, sig):
    """SIGKILL (or Ctrl-C) only the driver while a worker is mid-task: no worker outlives it."""
    import signal
    import time

    from tests.support.fault_job import write_config

    root, data, model = ws
    cfg = job_config(data, model, tmp_path / "out", features=FEATURES, runtime={"engine": "local"})
    config = write_config(tmp_path / "job.yaml", cfg)
    marker = tmp_path / "pause"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        faults.PAUSE_AT_ENV: "scoring",
        faults.PAUSE_FILE_ENV: str(marker),
    }
    driver = subprocess.Popen(
        [sys.executable, "-m", "batchinfer.cli", "-q", "run", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        while not marker.exists() and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "no worker reached the scoring pause"
        step, worker = marker.read_text().split()
        worker = int(worker)
        assert step == "scoring" and worker != driver.pid
        os.kill(driver.pid, getattr(signal, sig))  # the driver only, not its process group
        driver.wait(timeout=120)
        deadline = time.monotonic() + 60
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), "a worker outlived its driver"
    finally:
        if driver.poll() is None:
            driver.kill()
        marker.unlink(missing_ok=True)  # lets a surviving worker finish


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
