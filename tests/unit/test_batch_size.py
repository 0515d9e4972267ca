"""Memory-aware batches: the arithmetic, the budget defaults, and the sizer on real memory."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from batchinfer.config import RuntimeConfig
from batchinfer.scoring import batch_size as bs
from batchinfer.scoring.batch_size import GiB, KiB, MiB


# ------------------------------------------------------------------------------ memory values
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1g", GiB),
        ("1G", GiB),
        ("512m", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("2048 MB", 2 * GiB),
        ("1.5g", int(1.5 * GiB)),
        ("64k", 64 * KiB),
        (3 * GiB, 3 * GiB),
        ("1073741824", GiB),
    ],
)
def test_parse_memory(text, expected):
    assert bs.parse_memory(text) == expected


@pytest.mark.parametrize("bad", ["lots", "1x", "", "-1g", True, None, [1], float("nan")])
def test_parse_memory_rejects(bad):
    with pytest.raises(ValueError, match="expected a memory size such as 4g or 512m"):
        bs.parse_memory(bad)


def test_spark_memory_numbers_are_mib():
    assert bs.parse_memory("4096", bare_unit=MiB) == 4 * GiB


@pytest.mark.parametrize(
    ("conf", "master", "expected", "source"),
    [
        ({"spark.driver.memory": "2g"}, "local[2]", GiB, "spark.driver.memory 2g / 2 task slots, local[2]"),
        ({}, "local", GiB, "spark.driver.memory 1g / 1 task slot, local"),  # Spark's default 1g
        ({"spark.driver.memory": "8g"}, "local[*]", 2 * GiB, "spark.driver.memory 8g / 4 task slots"),
        ({"spark.driver.memory": "4g"}, "local[4,3]", GiB, "4 task slots"),  # local[N, retries]
        (
            {"spark.driver.memory": "4g", "spark.task.cpus": "2"},
            "local[4]",
            2 * GiB,
            "spark.driver.memory 4g / 2 task slots",
        ),
        ({"spark.executor.memory": "2g"}, "local-cluster[2,2,2048]", GiB, "spark.executor.memory 2g / 2"),
        (
            {"spark.executor.memory": "16g", "spark.executor.cores": "4"},
            "yarn",
            4 * GiB,
            "spark.executor.memory 16g / 4 task slots, per executor",
        ),
        ({}, None, GiB, "spark.executor.memory 1g / 1 task slot"),  # spark-submit: a cluster
        (
            {
                "spark.executor.memory": "16g",
                "spark.executor.cores": "4",
                "spark.executor.pyspark.memory": "2g",
            },
            "spark://h:7077",
            512 * MiB,
            "spark.executor.pyspark.memory 2g / 4 task slots",  # Spark's own Python limit wins
        ),
        ({"spark.executor.memory": "4096"}, "k8s://x", 4 * GiB, "spark.executor.memory 4096"),  # MiB
    ],
)
def test_default_worker_memory(conf, master, expected, source):
    size, where = bs.default_worker_memory(conf, master, cpu_count=4)
    assert size == expected and source in where


def test_embedded_engine_gets_a_share_of_the_machine():
    size, where = bs.default_worker_memory({}, None, engine="local", cpu_count=4, total_memory=16 * GiB)
    assert size == 2 * GiB and where == "50% of this machine's 16 GiB / 4 cores"


def test_spark_limit_on_the_python_worker_lowers_the_budget():
    assert bs.effective_budget(GiB, {"PYSPARK_EXECUTOR_MEMORY_MB": "256"}) == (
        256 * MiB,
        "PYSPARK_EXECUTOR_MEMORY_MB",
    )
    assert bs.effective_budget(GiB, {"PYSPARK_EXECUTOR_MEMORY_MB": "4096"}) == (GiB, None)
    assert bs.effective_budget(GiB, {"PYSPARK_EXECUTOR_MEMORY_MB": "junk"}) == (GiB, None)


# ------------------------------------------------------------------------------- the config
def test_batch_rows_auto_is_the_default_and_a_number_still_works():
    assert RuntimeConfig().batch_rows == "auto" and RuntimeConfig().worker_memory is None
    assert RuntimeConfig(batch_rows=5000).batch_rows == 5000
    assert RuntimeConfig(batch_rows="AUTO").batch_rows == "auto"
    policy = bs.batch_policy(RuntimeConfig(batch_rows=5000), {}, "local[2]")
    assert not policy.auto and policy.max_rows == 5000
    assert policy.describe() == "batches of 5,000 rows (runtime.batch_rows)"
    policy = bs.batch_policy(RuntimeConfig(worker_memory="3g"), {}, "local[2]")
    assert policy.auto and policy.worker_memory == 3 * GiB and policy.max_rows == bs.DEFAULT_MAX_ROWS
    assert "to 3 GiB per worker (runtime.worker_memory)" in policy.describe()
    assert policy.to_dict()["mode"] == "auto"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_rows", 0, "must be auto or a whole number of rows from 1 to 10,000,000"),
        ("batch_rows", "many", "must be auto or a whole number of rows"),
        ("batch_rows", 2.5, "must be auto or a whole number of rows"),
        ("worker_memory", "lots", "expected a memory size such as 4g or 512m, or auto"),
        ("worker_memory", "1m", "must be at least 64 MiB"),
    ],
)
def test_bad_batch_settings_are_config_errors(tmp_path, field, value, message):
    from batchinfer.config import load_config
    from batchinfer.errors import ConfigError

    cfg = {
        "job": "j",
        "input": {"path": str(tmp_path)},
        "model": {"path": "m.onnx", "inputs": {"x": {"columns": ["a"]}}, "outputs": {"y": {"column": "y"}}},
        "output": {"path": str(tmp_path / "out")},
        "runtime": {field: value},
    }
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert message in dict(info.value.problems)[f"runtime.{field}"]


# ------------------------------------------------------------------------------- arithmetic
def test_estimate_from_two_probes():
    est = bs.estimate((64, 20 * MiB), (256, 68 * MiB))
    assert est.bytes_per_row == 256 * KiB and est.fixed_bytes == 4 * MiB
    assert bs.estimate((256, 68 * MiB), (64, 20 * MiB)) == est  # order does not matter
    assert bs.estimate((64, 5 * MiB), (1024, 4 * MiB)).bytes_per_row == 0  # noise: flat
    with pytest.raises(ValueError, match="two different positive row counts"):
        bs.estimate((64, 1), (64, 2))


def test_choose_rows_fits_the_usable_memory_and_clamps():
    est = bs.MemoryEstimate(bytes_per_row=256 * KiB, fixed_bytes=4 * MiB)
    rows = bs.choose_rows(est, usable_bytes=GiB, min_rows=1, max_rows=10_000)
    assert est.peak(rows) <= GiB < est.peak(rows + 1)
    assert bs.choose_rows(est, usable_bytes=100 * GiB, min_rows=1, max_rows=10_000) == 10_000
    assert bs.choose_rows(est, usable_bytes=MiB, min_rows=8, max_rows=10_000) == 8
    with pytest.raises(ValueError):
        bs.choose_rows(est, usable_bytes=GiB, min_rows=10, max_rows=5)


def test_second_probe_stays_within_a_quarter_of_the_memory():
    for per_row in (1 * KiB, 256 * KiB, 8 * MiB):
        usable = GiB
        rows = bs.second_probe_rows(64, 64 * per_row, usable_bytes=usable, max_rows=10_000)
        assert rows != 64 and (rows * per_row <= usable / 4 or rows < 64)


def test_halve_and_allocation_failures():
    assert [bs.halve(n) for n in (10_000, 2, 1)] == [5_000, 1, None]
    assert bs.halve(40, min_rows=32) == 32
    assert bs.is_allocation_failure(MemoryError())
    ort_text = (
        "[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running MatMul node. "
        "Status Message: bfc_arena.cc:360 Failed to allocate memory for requested buffer of size 1048576000"
    )
    assert bs.is_allocation_failure(RuntimeError(ort_text))
    assert bs.is_allocation_failure(RuntimeError("CUDA failure 2: out of memory ; GPU=0"))
    assert not bs.is_allocation_failure(RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad input"))
    assert not bs.is_allocation_failure(ValueError("shape mismatch"))


# ------------------------------------------------------------------ the sizer on real memory
def _allocating_call(bytes_per_row: int, calls: list, fail_above: int | None = None):
    """A scoring call that really holds ``bytes_per_row`` per row (touched pages), like a model."""

    def call(chunk, clean):
        n = len(chunk["x"])
        calls.append((n, clean))
        if fail_above is not None and n > fail_above:
            raise MemoryError(f"Unable to allocate {n * bytes_per_row} bytes")
        big = np.ones((n, bytes_per_row // 8))  # float64
        return [chunk["x"] * 2 + big[:, :1] - 1]

    return call


def test_sizer_measures_the_rows_and_sizes_calls_to_the_budget():
    meter = bs.MemoryMeter()
    if not meter.resettable:
        pytest.skip("needs Linux /proc/self/clear_refs")
    calls: list = []
    budget = meter.rss() + 400 * MiB  # the process as it is, plus room for ~1,200 rows at 256 KiB
    sizer = bs.BatchSizer(budget=budget, max_rows=10_000, meter=meter)
    x = np.arange(10_000, dtype=np.float64).reshape(-1, 1)
    (out,) = sizer.run(_allocating_call(256 * KiB, calls), {"x": x}, len(x))
    np.testing.assert_array_equal(out, x * 2)  # every row once, in order
    assert calls[0] == (bs.PROBE_ROWS, True)  # probes release the arena (clean)
    assert 200 * KiB < sizer.summary()["bytes_per_row"] < 400 * KiB
    assert 100 < sizer.rows < 10_000
    # The chosen calls fit: the estimate at the chosen size is within the usable budget.
    s = sizer.summary()
    assert s["baseline_rss_bytes"] + sizer.rows * s["bytes_per_row"] <= bs.HEADROOM * budget
    assert max(n for n, _ in calls) <= max(sizer.rows, max(p[0] for p in s["probes"]))
    assert not any(clean for _, clean in calls[len(s["probes"]) :])  # steady state: plain calls
    # A later task of the same worker reuses the estimate: no new probes.
    before = len(s["probes"])
    sizer.run(_allocating_call(256 * KiB, calls), {"x": x[:3000]}, 3000)
    assert len(sizer.summary()["probes"]) == before


def test_cheap_rows_get_the_largest_batches():
    meter = bs.MemoryMeter()
    if not meter.resettable:
        pytest.skip("needs Linux /proc/self/clear_refs")
    sizer = bs.BatchSizer(budget=meter.rss() + 512 * MiB, max_rows=10_000, meter=meter)
    x = np.ones((20_000, 1))
    sizer.run(_allocating_call(8, []), {"x": x}, len(x))
    assert sizer.rows == 10_000


def test_failed_allocations_halve_and_retry_without_growing_back():
    calls: list = []
    sizer = bs.BatchSizer(budget=None, max_rows=10_000)  # e.g. a GPU: no measuring, shrink only
    x = np.arange(9000, dtype=np.float64).reshape(-1, 1)
    (out,) = sizer.run(_allocating_call(8, calls, fail_above=1500), {"x": x}, len(x))
    np.testing.assert_array_equal(out, x * 2)
    assert [n for n, _ in calls[:4]] == [9000, 4500, 2250, 1125]  # the failed call's size, halved
    assert sizer.rows == 1125 and sizer.retries == 3
    assert all(n <= 1125 for n, _ in calls[4:]) and all(clean for _, clean in calls[3:])
    assert sizer.summary() == {"rows": 1125, "retries": 3}


def test_one_row_that_does_not_fit_is_a_typed_error():
    sizer = bs.BatchSizer(budget=None, max_rows=64)
    x = np.ones((100, 1))
    with pytest.raises(bs.WorkerMemoryError, match=r"scoring 1 row\(s\) ran out of memory") as info:
        sizer.run(_allocating_call(8, [], fail_above=0), {"x": x}, len(x))
    assert info.value.exit_code == 7 and isinstance(info.value, MemoryError)
    assert "runtime.worker_memory" in info.value.hint


def test_other_errors_are_not_retried():
    sizer = bs.BatchSizer(budget=None, max_rows=64)

    def call(chunk, clean):
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        sizer.run(call, {"x": np.ones((10, 1))}, 10)
    assert sizer.retries == 0


def test_real_onnxruntime_allocation_failure_is_retried_smaller(tmp_path):
    """Under an address-space limit (what spark.executor.pyspark.memory sets on Python workers)
    onnxruntime's arena fails a 1 GB call; the sizer halves it until it fits and scores every row."""
    from tests.support import models

    path = models.wide_activation_model(tmp_path / "wide.onnx")
    script = textwrap.dedent(
        f"""
        import json, resource
        import numpy as np, onnxruntime as ort
        from batchinfer.scoring.batch_size import BatchSizer
        so = ort.SessionOptions(); so.intra_op_num_threads = 1
        session = ort.InferenceSession({str(path)!r}, so, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).normal(size=(4_000, 64)).astype(np.float32)
        vm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmSize"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (vm + 400 * 2**20, hard))
        sizer = BatchSizer(budget=None, max_rows=10_000)
        (out,) = sizer.bind(session, ["score"])({{"input": x}})
        err = float(np.max(np.abs(out[:, 0] - 0.5 * x.sum(axis=1))))
        print(json.dumps({{"rows": sizer.rows, "retries": sizer.retries, "n": len(out), "err": err}}))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["n"] == 4_000 and result["err"] < 1e-3
    assert result["retries"] >= 1 and result["rows"] <= 2_000  # 4,000 rows × 256 KiB did not fit
