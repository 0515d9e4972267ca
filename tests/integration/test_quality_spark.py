"""Great Expectations 1.x on a real Spark DataFrame: outcomes, severity, caching, formatting."""

from __future__ import annotations

import json
import logging

import pytest

from batchinfer.checks.gate import CheckOutcome
from batchinfer.checks.quality import QualityResult, format_outcomes_table, run_expectations
from batchinfer.errors import ConfigError

pytestmark = pytest.mark.spark

SPECS = [
    {"expect": "not_null", "column": "f0"},
    {"expect": "between", "column": "f1", "min": -9, "max": 9, "mostly": 0.99, "severity": "warn"},
    {"expect": "in_set", "column": "country", "values": ["DE", "FR", "US"]},
    {"expect": "column_exists", "column": "customer_id"},
    {"expect": "row_count_between", "min": 100},
    {"expect": "expect_column_mean_to_be_between", "column": "f0", "min_value": -1, "max_value": 1},
    {"expect": "type", "column": "f0", "dtype": "DoubleType"},
    {"expect": "unique", "column": "customer_id"},
]


@pytest.fixture(scope="module")
def events(spark):
    """200 rows: f1 spans [-10, 10) (10% outside [-9, 9]), a third of countries are 'XX'."""
    from pyspark.sql import functions as F

    return spark.range(200, numPartitions=2).select(
        F.col("id").alias("customer_id"),
        ((F.col("id") % 7) / 7.0 - 0.5).alias("f0"),
        ((F.col("id") % 20) - 10.0 + 0.5 * (F.col("id") % 2)).alias("f1"),
        F.when(F.col("id") % 3 == 0, "DE").when(F.col("id") % 3 == 1, "FR").otherwise("XX").alias("country"),
    )


@pytest.fixture(scope="module")
def result(events) -> QualityResult:
    return run_expectations(events, SPECS, stage="input")


def test_outcomes_in_config_order_with_our_severity(result):
    assert [o.check for o in result.outcomes] == [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_to_exist",
        "expect_table_row_count_to_be_between",
        "expect_column_mean_to_be_between",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_unique",
    ]
    assert all(o.stage == "input" for o in result.outcomes)
    by_check = {o.check: o for o in result.outcomes}
    between = by_check["expect_column_values_to_be_between"]
    assert (between.severity, between.passed, between.status) == ("warn", False, "warning")
    assert between.column == "f1"
    assert between.unexpected_percent == pytest.approx(10.0)
    assert between.observed["unexpected_count"] == 20 and between.observed["element_count"] == 200
    assert between.message == "20 of 200 values unexpected (allowed: 1%)"
    assert between.threshold == {"mostly": 0.99, "min_value": -9.0, "max_value": 9.0}

    in_set = by_check["expect_column_values_to_be_in_set"]
    assert (in_set.severity, in_set.status) == ("fail", "failed")
    assert in_set.observed["sample"] == ["XX"]
    assert len(in_set.details["unexpected_sample"]) == 20

    assert by_check["expect_table_row_count_to_be_between"].observed == 200
    assert by_check["expect_table_row_count_to_be_between"].column is None
    assert by_check["expect_column_values_to_be_of_type"].observed == "DoubleType"
    assert by_check["expect_column_mean_to_be_between"].passed


def test_success_follows_our_severity_policy(result):
    assert result.success is False  # in_set is a fail-severity check
    assert [o.check for o in result.decision.failures] == ["expect_column_values_to_be_in_set"]
    assert len(result.decision.warnings) == 1
    assert result.gx_result["success"] is False


def test_results_are_json_able_and_summarised(result):
    json.dumps(result.gx_result)
    summary = result.summary()
    json.dumps(summary)
    assert {k: summary[k] for k in ("stage", "success", "checks", "passed", "failed", "warnings")} == {
        "stage": "input",
        "success": False,
        "checks": 8,
        "passed": 6,
        "failed": 1,
        "warnings": 1,
    }
    assert len(summary["outcomes"]) == 8
    # Every expectation runs as Spark jobs over the persisted data; none collects to pandas.
    assert isinstance(result.spark_jobs, int) and result.spark_jobs > 0


def test_dataframe_is_unpersisted_and_gx_logging_restored(events, result):
    assert not events.is_cached
    assert logging.getLogger("great_expectations").level == logging.NOTSET
    # GX sets this one to INFO itself; we quiet it during the run only
    assert logging.getLogger("great_expectations.data_context.types.base").level == logging.INFO


def test_caller_cache_and_job_group_are_left_alone(spark, events):
    cached = events.where("customer_id < 100").cache()
    sc = spark.sparkContext
    sc.setJobGroup("callers-group", "caller")
    try:
        res = run_expectations(
            cached, [{"expect": "row_count_between", "min": 100, "max": 100}], stage="output"
        )
        assert res.success and res.outcomes[0].observed == 100
        assert cached.is_cached
        assert sc.getLocalProperty("spark.jobGroup.id") == "callers-group"
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
        cached.unpersist()


def test_suite_file_runs_with_mapped_severity_and_missing_column(events, tmp_path):
    suite = tmp_path / "events.json"
    suite.write_text(
        json.dumps(
            {
                "name": "events",
                "expectations": [
                    {
                        "type": "expect_column_values_to_be_in_set",
                        "kwargs": {"column": "country", "value_set": ["DE"]},
                        "severity": "warning",
                    },
                    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "nope"}},
                ],
            }
        )
    )
    res = run_expectations(
        events, [{"expect": "not_null", "column": "f0"}], stage="input", suite_path=str(suite)
    )
    assert [(o.check, o.status) for o in res.outcomes] == [
        ("expect_column_values_to_not_be_null", "passed"),
        ("expect_column_values_to_be_in_set", "warning"),
        ("expect_column_values_to_not_be_null", "failed"),
    ]
    missing = res.outcomes[2]
    assert missing.column == "nope"
    assert missing.message.startswith("could not evaluate:") and "does not exist" in missing.message
    assert missing.details["source"] == str(suite)
    assert res.success is False
    table = format_outcomes_table(res.outcomes)
    assert 'could not evaluate: Error: The column "nope"' in table


def test_bad_specs_raise_config_error_before_any_spark_job(spark, events):
    tracker = spark.sparkContext.statusTracker()
    before = len(tracker.getJobIdsForGroup(None))
    with pytest.raises(ConfigError) as info:
        run_expectations(
            events,
            [{"expect": "between", "column": "f1"}, {"expect": "in_sett", "column": "c"}],
            stage="output",
        )
    assert [p for p, _ in info.value.problems] == ["checks.output[1].expect"]
    assert "did you mean 'in_set'" in str(info.value)
    with pytest.raises(ConfigError, match=r"checks.output\[0\]: between: min_value and max_value"):
        run_expectations(events, [{"expect": "between", "column": "f1"}], stage="output")
    with pytest.raises(ConfigError, match=r"checks.result_format: expected one of \['BOOLEAN_ONLY'"):
        run_expectations(events, [], stage="input", result_format="FULL")
    with pytest.raises(ConfigError, match="no such file"):
        run_expectations(events, [], stage="input", suite_path="does/not/exist.json")
    assert len(tracker.getJobIdsForGroup(None)) == before


def test_no_checks_means_success_without_spark(events):
    res = run_expectations(events, [], stage="input")
    assert res.success and res.outcomes == [] and res.spark_jobs == 0
    assert format_outcomes_table(res.outcomes) == "(no checks)"


def test_format_outcomes_table(result):
    table = format_outcomes_table(result.outcomes)
    lines = table.splitlines()
    assert lines[0].split() == ["EXPECTATION", "COLUMN", "OBSERVED", "UNEXPECTED", "%", "SEVERITY", "STATUS"]
    assert len(lines) == 9
    row = next(line for line in lines if "expect_column_values_to_be_between" in line)
    assert "20 of 200 e.g." in row and "10" in row and row.split()[-2:] == ["warn", "warning"]
    assert next(line for line in lines if "in_set" in line).split()[-1] == "failed"
    assert "STAGE" not in lines[0]


def test_format_outcomes_table_clips_and_shows_stages():
    outcomes = [
        CheckOutcome(stage="input", check="x", passed=True, observed="y" * 100),
        CheckOutcome(stage="quarantine", check="quarantined_fraction", passed=False, observed=0.5),
    ]
    lines = format_outcomes_table(outcomes, max_width=20).splitlines()
    assert lines[0].startswith("STAGE")
    assert "y" * 17 + "..." in lines[1] and "y" * 18 not in lines[1]
    assert lines[2].split() == ["quarantine", "quarantined_fraction", "-", "0.5", "-", "fail", "failed"]
