"""The single pass on real Spark: same GX results as GX on Spark, few Spark jobs, exact accounting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from batchinfer.checks import partials as P
from batchinfer.checks.quality import run_built, suite_expectations
from batchinfer.checks.reference import build_reference_profile
from batchinfer.checks.single_pass import distinct_metrics
from batchinfer.errors import GateFailedError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, snapshot, write_partitioned

FEATURES = ["f0", "f1", "f2", "f3"]


# --------------------------------------------------------------------------- equivalence with GX
def _variants(n=400, seed=5):
    """Clean and violating variants of each column, nulls present in both."""
    rng = np.random.default_rng(seed)
    nulls = rng.random(n) < 0.08
    clean_x = rng.uniform(-1, 1, size=n)
    bad_x = clean_x.copy()
    bad_x[rng.random(n) < 0.05] = 7.5
    bad_x[3] = np.nan
    cats = rng.choice(["a", "b"], size=n).astype(object)
    bad_cats = cats.copy()
    bad_cats[rng.random(n) < 0.04] = "zz"
    cats[nulls], bad_cats[nulls] = None, None
    ids = np.arange(n)
    dup_ids = ids.copy()
    dup_ids[10:14] = 3
    return pa.table(
        {
            "clean_x": pa.array(clean_x, mask=nulls),
            "bad_x": pa.array(bad_x, mask=nulls),
            "clean_s": pa.array(list(cats), pa.string()),
            "bad_s": pa.array(list(bad_cats), pa.string()),
            "clean_i": pa.array(ids, pa.int64()),
            "bad_i": pa.array(dup_ids, pa.int64()),
        }
    )


def _suite():
    specs = [{"expect": "row_count_between", "min": 100}, {"expect": "row_count_equal", "value": 401}]
    for v in ("clean", "bad"):
        x, s, i = f"{v}_x", f"{v}_s", f"{v}_i"
        for mostly in (None, 0.9):
            m = {} if mostly is None else {"mostly": mostly}
            specs += [
                {"expect": "not_null", "column": x, **m},
                {"expect": "between", "column": x, "min": -1, "max": 1, **m},
                {"expect": "between", "column": x, "min": -1, **m},
                {"expect": "in_set", "column": s, "values": ["a", "b"], **m},
                {"expect": "not_in_set", "column": s, "values": ["zz"], **m},
                {"expect": "match_regex", "column": s, "regex": "^[ab]$", **m},
                {"expect": "unique", "column": i, **m},
            ]
        specs += [
            {"expect": "null", "column": x},
            {"expect": "distinct_in_set", "column": s, "values": ["a", "b"]},
            {"expect": "mean_between", "column": x, "min": -0.2, "max": 0.2},
            {"expect": "stdev_between", "column": x, "min": 0.1, "max": 1.0},
            {"expect": "sum_between", "column": i, "min": 0},
            {"expect": "min_between", "column": x, "min": -1, "max": 0},
            {"expect": "max_between", "column": x, "min": 0, "max": 1},
            {"expect": "non_null_fraction_between", "column": s, "min": 0.95},
            {"expect": "unique_count_between", "column": i, "min": 400},
            {"expect": "type", "column": x, "dtype": "DoubleType"},
            {"expect": "type_in", "column": s, "values": ["StringType"]},
            {"expect": "column_exists", "column": x},
        ]
    specs.append({"expect": "columns_match_set", "values": list(_variants().column_names)})
    return specs


def _by_index(doc):
    return {r["expectation_config"]["meta"]["batchinfer"]["index"]: r for r in doc["results"]}


def test_single_pass_gives_gx_results_identical_to_gx_on_spark(spark):
    from great_expectations.execution_engine import SparkDFExecutionEngine

    table = _variants()
    from pyspark.sql.pandas.types import from_arrow_schema

    # From Python rows, not pandas: pandas would turn the planted NaN into a null.
    df = spark.createDataFrame(table.to_pylist(), from_arrow_schema(table.schema)).repartition(1)
    specs = _suite()
    gx = _by_index(run_built(df, suite_expectations(specs, stage="input"), stage="input").gx_result)

    exps = suite_expectations(specs, stage="input")
    schema = P.SideSchema(
        table.column_names, {f.name: f.type for f in table.schema}, frozenset(table.column_names)
    )
    engine = SparkDFExecutionEngine(spark=spark, persist=False)
    ops, routes = P.plan_routes(exps, schema, execution_engine=engine)
    assert {r.path for r in routes} == {P.SINGLE_PASS, P.AGGREGATION}, [(r.gx_type, r.reason) for r in routes]
    states = []
    for batch in table.to_batches(max_chunksize=57):  # many "tasks"
        st = P.new_state()
        P.observe(ops, st, batch)
        states.append(P.decode(P.encode(st)))
    merged = P.merge_states(ops, states)
    agg = sorted({r.column for r in routes if r.path == P.AGGREGATION})
    distinct = distinct_metrics(spark, df, agg, schema)

    failures = 0
    for r in routes:
        ours = P.validate(
            r, P.metrics_for(r, merged, schema, distinct), execution_engine=engine
        ).to_json_dict()
        theirs = gx[r.index]
        what = (r.gx_type, r.expectation.configuration.kwargs)
        assert ours["success"] == theirs["success"], what
        failures += not theirs["success"]
        a, b = ours["result"], theirs["result"]
        for key in ("unexpected_count", "element_count", "missing_count", "unexpected_percent"):
            assert a.get(key) == b.get(key), (what, key)
        oa, ob = a.get("observed_value"), b.get("observed_value")
        if isinstance(ob, float):
            assert oa == pytest.approx(ob, rel=1e-9), what
        elif isinstance(ob, list):
            assert sorted(map(str, oa)) == sorted(map(str, ob)), what
        else:
            assert oa == ob, what
        if "partial_unexpected_list" in b:  # the same values (Spark may order them differently)
            assert sorted(map(str, a["partial_unexpected_list"])) == sorted(
                map(str, b["partial_unexpected_list"])
            )
    assert failures >= 15  # the violating variants really violate


# --------------------------------------------------------------------------- whole jobs
@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("onepass")

    def extra(n, rng):
        return {
            "country": rng.choice(["DE", "FR", "US"], size=n),
            "plan": rng.choice(["free", "pro"], size=n),
        }

    data = write_partitioned(root / "events", rows_per_file=1500, extra=extra)
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    return root, data, model


DEMO_CHECKS = {
    "input": [
        {"expect": "row_count_between", "min": 1000},
        {"expect": "not_null", "column": "id"},
        {"expect": "unique", "column": "id"},
        {"expect": "in_set", "column": "country", "values": ["DE", "FR", "US", "GB"]},
        {"expect": "in_set", "column": "plan", "values": ["free", "basic", "pro"]},
        {"expect": "between", "column": "f0", "min": -8, "max": 8},
        {"expect": "between", "column": "f1", "min": -8, "max": 8, "mostly": 0.999, "severity": "warn"},
    ],
    "output": [
        {"expect": "not_null", "column": "score"},
        {"expect": "between", "column": "score", "min": 0, "max": 1},
        {"expect": "in_set", "column": "label", "values": [0, 1]},
    ],
}


def _cfg(data, model, out, **sections):
    return job_config(
        data, model, out, features=FEATURES, passthrough=["id", "country", "plan", "ds"], **sections
    )


def _jobs_between(spark, run):
    """Spark jobs started by ``run()``: the ids of two probe jobs bracket them."""
    sc = spark.sparkContext

    def probe():
        sc.setJobGroup("onepass-probe", "probe")
        sc.parallelize([1], 1).count()
        ids = sc.statusTracker().getJobIdsForGroup("onepass-probe")
        sc.setLocalProperty("spark.jobGroup.id", None)
        return max(ids)

    first = probe()
    result = run()
    return result, probe() - first - 1


@pytest.fixture(scope="module")
def demo_runs(spark, ws):
    root, data, model = ws
    profile_path = root / "profile.json"
    build_reference_profile(Job.from_config(_cfg(data, model, root / "p")), spark=spark).save(profile_path)
    runs = {}
    for reader in ("pyarrow", "spark"):
        cfg = _cfg(
            data,
            model,
            root / f"out-{reader}",
            checks=DEMO_CHECKS,
            drift={"reference": str(profile_path)},
            runtime={"batch_rows": 300, "reader": reader},
        )
        runs[reader] = _jobs_between(spark, lambda cfg=cfg: Job.from_config(cfg).run(spark=spark))
    return runs


def test_demo_checks_and_drift_take_at_most_two_spark_jobs(demo_runs):
    result, jobs = demo_runs["pyarrow"]
    assert result.status == "succeeded"
    assert jobs <= 2, jobs  # the scoring pass and the one distinct-count aggregation
    assert result.manifest["spark_jobs"] == jobs
    c = result.manifest["checks"]
    assert c["single_pass"] is True
    assert c["input_expectations"]["paths"] == {"single_pass": 6, "aggregation": 1, "gx_spark": 0}
    assert c["output_expectations"]["paths"] == {"single_pass": 3, "aggregation": 0, "gx_spark": 0}
    assert c["drift"]["columns"] >= 4 and c["prediction_drift"]["columns"] == 2
    unique = next(o for o in c["outcomes"] if o["check"] == "expect_column_values_to_be_unique")
    assert unique["status"] == "passed" and unique["details"]["path"] == "aggregation"
    run_dir = result.output_path + f"/_batchinfer/runs/{result.run_id}"
    gx_input = json.loads(open(f"{run_dir}/gx_input.json").read())
    assert len(gx_input["results"]) == 7 and gx_input["statistics"]["evaluated_expectations"] == 7
    from batchinfer.report import summary_text

    assert "inside the scoring tasks (one pass, no extra read)" in summary_text(result.manifest)
    assert c["in_task_seconds"] > 0 and c["seconds"]["distinct_aggregation"] > 0
    drift_counts = json.loads(open(f"{run_dir}/drift_input_counts.json").read())
    assert drift_counts["row_count"] == result.rows_out == 6000  # every scored row counted once


def test_spark_reader_gives_the_same_check_results(demo_runs):
    a, b = demo_runs["pyarrow"][0], demo_runs["spark"][0]
    assert b.manifest["reader"] == "spark"

    def observed(result):
        return [
            (o["stage"], o["check"], o["column"], o["status"], json.dumps(o["observed"], default=str))
            for o in result.manifest["checks"]["outcomes"]
        ]

    assert observed(a) == observed(b)


def test_failing_input_check_scores_once_and_writes_nothing(spark, ws, tmp_path):
    root, data, model = ws
    out = tmp_path / "out"
    Job.from_config(_cfg(data, model, out)).run(spark=spark)
    before = snapshot(out)
    checks = {"input": [{"expect": "in_set", "column": "country", "values": ["DE", "FR"]}]}
    with pytest.raises(GateFailedError, match=r"input:expect_column_values_to_be_in_set\[country\]") as info:
        Job.from_config(_cfg(data, model, out, checks=checks)).run(spark=spark)
    assert snapshot(out) == before
    manifest = info.value.result.manifest
    assert manifest["status"] == "gate_failed" and manifest["error"]["exit_code"] == 5
    assert "score_and_stage" in manifest["timings"]  # the trade: the pass ran, nothing was read twice


def test_exported_gx_suite_runs_unchanged_and_uncovered_types_fall_back(spark, ws, tmp_path):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    root, data, model = ws
    suite = gx.ExpectationSuite(
        name="exported",
        expectations=[
            gxe.ExpectColumnValuesToNotBeNull(column="f0", severity="critical"),
            gxe.ExpectColumnMedianToBeBetween(
                column="f0", min_value=-0.5, max_value=0.5, severity="critical"
            ),
            gxe.ExpectColumnMedianToBeBetween(column="f1", min_value=5, max_value=6, severity="warning"),
            gxe.ExpectColumnValuesToBeInSet(column="plan", value_set=["free"], mostly=0.2),
        ],
    )
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite.to_json_dict()))
    res = Job.from_config(_cfg(data, model, tmp_path / "out", checks={"input_suite": str(path)})).run(
        spark=spark
    )
    assert res.status == "succeeded"
    summary = res.manifest["checks"]["input_expectations"]
    assert [p["path"] for p in summary["per_expectation"]] == [
        "single_pass",
        "gx_spark",
        "gx_spark",
        "single_pass",
    ]
    assert summary["per_expectation"][1]["reason"] == "metric column.median has no single-pass form"
    statuses = [(o["check"], o["column"], o["status"]) for o in res.manifest["checks"]["outcomes"]]
    assert statuses == [
        ("expect_column_values_to_not_be_null", "f0", "passed"),
        ("expect_column_median_to_be_between", "f0", "passed"),
        ("expect_column_median_to_be_between", "f1", "warning"),  # GX on Spark decided: median ~0
        ("expect_column_values_to_be_in_set", "plan", "passed"),
    ]


def test_quarantine_in_the_task_with_reasons(spark, tmp_path):
    def extra(n, rng):
        bad = np.zeros(n, dtype=np.float32)
        bad[:3] = np.nan
        bad[3] = np.inf
        return {"f9": bad}

    data = write_partitioned(tmp_path / "ev", days=("2026-11-27",), rows_per_file=400, extra=extra)
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 4)
    q = {"enabled": True, "path": str(tmp_path / "q"), "max_fraction": 0.05}
    cfg = job_config(
        data,
        model,
        tmp_path / "out",
        features=["f0", "f1", "f2", "f9"],
        passthrough=["id", "ds"],
        quarantine=q,
        input={"invalid_features": "quarantine"},
    )
    res = Job.from_config(cfg).run(spark=spark)
    assert res.manifest["reader"] == "pyarrow"  # no Spark-reader detour
    qs = res.manifest["checks"]["quarantine"]
    assert (
        qs["rows_total"] == 800 and qs["rows_quarantined"] == 8 and qs["rows_scored"] == 792 == res.rows_out
    )
    assert qs["reasons"] == {"f9 is NaN": 6, "f9 is infinite": 2}
    bad = ds.dataset(tmp_path / "q", partitioning="hive", ignore_prefixes=["_", "."]).to_table()
    assert bad.num_rows == 8 and sorted(set(bad.column("_quarantine_reason").to_pylist())) == [
        "f9 is NaN",
        "f9 is infinite",
    ]


@pytest.mark.slow
def test_quarantine_accounting_is_exact_under_task_retries(tmp_path):
    """First attempts of two tasks fail after writing a scored batch and its quarantined rows:
    the retry's files count, the failed attempts' never do (scored + quarantined = input)."""
    from batchinfer.scoring.udf import FAULT_ENV
    from tests.support.fault_job import ChildRun, child_env, write_config

    def extra(n, rng):
        bad = rng.normal(size=n).astype(np.float32)
        bad[:3] = np.nan
        bad[3] = -np.inf
        return {"f9": bad}

    data = write_partitioned(tmp_path / "ev", rows_per_file=400, extra=extra)
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 4)
    q = {"enabled": True, "path": str(tmp_path / "q"), "max_fraction": 0.05}
    cfg = job_config(
        data,
        model,
        tmp_path / "out",
        features=["f0", "f1", "f2", "f9"],
        passthrough=["id", "ds"],
        quarantine=q,
        input={"invalid_features": "quarantine"},
        checks={"output": [{"expect": "between", "column": "score", "min": 0, "max": 1}]},
    )
    cfg["spark"] = {"master": "local[2,3]"}
    config = write_config(tmp_path / "job.yaml", cfg)
    child = ChildRun(config, child_env(tmp_path, **{FAULT_ENV: "0:0,1:late"}), workdir=tmp_path / "child")
    rc = child.wait()
    assert rc == 0, child.stderr[-3000:]
    manifest = json.loads(child.stdout)
    # The failed attempts really ran: Spark logged them in the run's log (not on the console).
    assert "injected test fault" in Path(manifest["spark_log"]).read_text()
    qs = manifest["checks"]["quarantine"]
    assert qs["rows_total"] == 1600 == manifest["rows_in"]
    assert qs["rows_quarantined"] == 16 and qs["rows_scored"] == 1584 == manifest["rows_out"]
    assert qs["reasons"] == {"f9 is NaN": 12, "f9 is infinite": 4}

    def ids(path):
        t = ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."]).to_table()
        return t.column("id").to_pylist()

    scored, quarantined, inputs = ids(tmp_path / "out"), ids(tmp_path / "q"), ids(data)
    assert len(scored) == len(set(scored)) == 1584 and len(quarantined) == len(set(quarantined)) == 16
    assert sorted(scored + quarantined) == sorted(inputs)
