"""Starter suite: proposals from one Spark aggregation, YAML that round-trips, and passes on its data."""

from __future__ import annotations

import pytest
import yaml

from batchinfer.checks.expectations import ChecksConfig
from batchinfer.checks.starter import propose_expectations, write_suite_yaml
from batchinfer.errors import ConfigError, InputDataError

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def df(spark):
    from pyspark.sql import functions as F

    return spark.range(100, numPartitions=2).select(
        F.col("id"),
        (F.col("id") / 10.0 - 2.0).alias("x"),  # -2.0 .. 7.9
        F.when(F.col("id") % 10 == 0, None).otherwise(F.col("id") % 5).cast("int").alias("k"),
        F.when(F.col("id") % 2 == 0, "a").otherwise("b").alias("cat"),
        F.concat(F.lit("u"), F.col("id").cast("string")).alias("user"),  # 100 distinct
        F.when(F.col("id") == 3, float("nan")).otherwise(F.lit(1.5)).alias("c"),
        (F.col("id") % 2 == 0).alias("flag"),
    )


@pytest.fixture(scope="module")
def proposed(df):
    return propose_expectations(df, margin=0.1, max_categories=5)


def _for(specs, column):
    return {s["expect"]: s for s in specs if s.get("column") == column}


def test_proposals(proposed):
    assert proposed[0] == {"expect": "row_count_between", "min": 1}
    ident = _for(proposed, "id")
    assert ident["column_exists"] == {"expect": "column_exists", "column": "id"}
    assert ident["type"]["dtype"] == "LongType"
    assert ident["not_null"] == {"expect": "not_null", "column": "id"}
    assert ident["between"] == {"expect": "between", "column": "id", "min": 0, "max": 109}  # no negatives

    x = _for(proposed, "x")["between"]
    assert x["min"] == pytest.approx(-2.99) and x["max"] == pytest.approx(8.89)

    k = _for(proposed, "k")
    assert k["not_null"] == {"expect": "not_null", "column": "k", "mostly": 0.89}  # 10% nulls + margin
    assert k["between"] == {"expect": "between", "column": "k", "min": 0, "max": 5}

    assert _for(proposed, "cat")["in_set"] == {"expect": "in_set", "column": "cat", "values": ["a", "b"]}
    assert "in_set" not in _for(proposed, "user")  # too many categories
    assert _for(proposed, "user")["type"]["dtype"] == "StringType"

    c = _for(proposed, "c")["between"]  # constant column widened around its value; NaN tolerated
    assert c["min"] == pytest.approx(1.35) and c["max"] == pytest.approx(1.65)
    assert c["mostly"] == 0.989  # 1 NaN in 100 (1.1% with the margin)

    flag = _for(proposed, "flag")
    assert flag["type"]["dtype"] == "BooleanType" and "between" not in flag


def _jobs(spark, fn) -> int:
    import uuid

    sc = spark.sparkContext
    group = f"starter-count-{uuid.uuid4().hex}"
    sc.setJobGroup(group, "count jobs")
    try:
        fn()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    return len(sc.statusTracker().getJobIdsForGroup(group))


def test_one_aggregation_plus_one_for_categories(spark, df):
    # With adaptive query execution each aggregation is two Spark jobs (shuffle map + result).
    no_strings = df.drop("cat", "user")
    assert _jobs(spark, lambda: propose_expectations(no_strings)) <= 2
    assert _jobs(spark, lambda: propose_expectations(df, max_categories=5)) <= 4


def test_written_yaml_round_trips_and_holds_on_its_own_data(proposed, df, tmp_path):
    from batchinfer.checks.quality import run_expectations

    path = write_suite_yaml(proposed, tmp_path / "suites" / "events.yaml", comment="events, 2026-11")
    text = path.read_text()
    assert text.startswith("# events, 2026-11\n# Proposed by batchinfer")
    assert "  - {expect: in_set, column: cat, values: [a, b]}" in text.splitlines()
    cfg = ChecksConfig.model_validate(yaml.safe_load(text))
    assert [s.to_compact() | {} for s in cfg.input] == [
        {k: (float(v) if k in ("min", "max") else v) for k, v in s.items()} for s in proposed
    ]
    assert cfg.problems() == []
    res = run_expectations(df, cfg.input, stage="input")
    assert res.success, [o for o in res.outcomes if not o.passed]


def test_write_suite_yaml_rejects_bad_specs(tmp_path):
    with pytest.raises(ConfigError, match=r"input\[1\].expect: unknown expectation 'notnull'"):
        write_suite_yaml([{"expect": "not_null", "column": "a"}, {"expect": "notnull"}], tmp_path / "s.yaml")
    assert not (tmp_path / "s.yaml").exists()


def test_bad_arguments_and_empty_data(spark, df):
    with pytest.raises(ValueError, match="margin must be >= 0, got -0.1"):
        propose_expectations(df, margin=-0.1)
    with pytest.raises(ValueError, match="max_categories must be a positive integer, got 0"):
        propose_expectations(df, max_categories=0)
    with pytest.raises(InputDataError, match=r"empty DataFrame \(0 rows\)"):
        propose_expectations(df.limit(0))
    with pytest.raises(InputDataError, match="without columns"):
        propose_expectations(df.select())
