"""Quarantine: split rows by Spark expressions, reasons, config, and the budget outcome."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from batchinfer.checks.quarantine import (
    REASON_COLUMN,
    QuarantineConfig,
    quarantine_outcome,
    split_rows,
)
from batchinfer.errors import ConfigError, InputDataError

NAN, INF = float("nan"), float("inf")

ROWS = [
    # id, f0, f1, country, n, vec
    (1, 0.5, 1.0, "DE", 3, [0.1, 0.2]),
    (2, None, 1.0, "FR", 3, [0.1, 0.2]),
    (3, NAN, 1.0, "DE", 3, [0.1, 0.2]),
    (4, 0.5, INF, "XX", 3, [0.1, 0.2]),
    (5, 0.5, 50.0, "DE", None, [0.1, NAN]),
    (6, 0.5, 2.0, None, 3, None),
    (7, 0.5, -INF, "US", 3, [0.1, 0.2]),
]
CHECKS = [
    {"expect": "between", "column": "f1", "min": -10, "max": 10, "mostly": 0.99, "severity": "warn"},
    {"expect": "in_set", "column": "country", "values": ["DE", "FR", "US"]},
    {"expect": "not_null", "column": "n"},
    {"expect": "row_count_between", "min": 1},  # not row-level: ignored
]


@pytest.fixture(scope="module")
def df(spark):
    schema = "id long, f0 double, f1 double, country string, n int, vec array<double>"
    return spark.createDataFrame(ROWS, schema)


def _reasons(quarantined) -> dict[int, str]:
    return {r["id"]: r[REASON_COLUMN] for r in quarantined.select("id", REASON_COLUMN).collect()}


def test_default_rules_null_and_non_finite_features(df):
    clean, quarantined = split_rows(df, feature_columns=["f0", "f1", "vec"])
    assert clean.columns == df.columns
    assert quarantined.columns == [*df.columns, REASON_COLUMN]
    assert sorted(r["id"] for r in clean.collect()) == [1]
    assert _reasons(quarantined) == {
        2: "f0 is null",
        3: "f0 is NaN",
        4: "f1 is infinite",
        5: "vec has a NaN element",
        6: "vec is null",
        7: "f1 is infinite",
    }


def test_input_checks_add_row_level_reasons_all_named(df):
    clean, quarantined = split_rows(
        df,
        feature_columns=["f0"],
        specs=CHECKS,
        rules=["null_features", "non_finite_features", "input_checks"],
    )
    assert sorted(r["id"] for r in clean.collect()) == [1, 6]
    reasons = _reasons(quarantined)
    assert reasons[2] == "f0 is null"
    assert reasons[3] == "f0 is NaN"
    assert reasons[4] == "f1 out of range [-10, 10]; country not in set"
    assert reasons[5] == "f1 out of range [-10, 10]; n is null"
    assert reasons[7] == "f1 out of range [-10, 10]"  # -inf: not a feature here, but out of range
    assert 6 not in reasons  # in_set does not judge nulls, as in Great Expectations


def test_first_reason_only_and_strict_bounds(df):
    specs = [
        {"expect": "between", "column": "f1", "min": 1, "kwargs": {"strict_min": True}},
        {"expect": "in_set", "column": "country", "values": ["DE"]},
    ]
    _, quarantined = split_rows(df, feature_columns=[], specs=specs, rules=["input_checks"], reasons="first")
    reasons = _reasons(quarantined)
    assert reasons[1] == "f1 out of range [1, inf]"  # 1.0 is not > 1
    assert reasons[2] == "f1 out of range [1, inf]"  # first only, though FR is not in set too
    assert reasons[7] == "f1 out of range [1, inf]"
    assert reasons[4] == "country not in set"


def test_specs_ignored_without_input_checks_rule_and_no_rules_at_all(df):
    clean, quarantined = split_rows(df, feature_columns=[], specs=CHECKS)
    assert clean is df
    assert quarantined.count() == 0 and REASON_COLUMN in quarantined.columns


def test_other_row_level_rules(df):
    specs = [
        {"expect": "not_in_set", "column": "country", "values": ["US"]},
        {"expect": "match_regex", "column": "country", "regex": "^[A-Z]{2}$"},
        {"expect": "expect_column_values_to_be_between", "column": "n", "max_value": 2},
    ]
    _, quarantined = split_rows(df, feature_columns=[], specs=specs, rules=["input_checks"])
    assert _reasons(quarantined) == {
        1: "n out of range [-inf, 2]",
        2: "n out of range [-inf, 2]",
        3: "n out of range [-inf, 2]",
        4: "n out of range [-inf, 2]",
        6: "n out of range [-inf, 2]",
        7: "country in forbidden set; n out of range [-inf, 2]",
    }


def test_missing_columns_are_input_errors(df):
    with pytest.raises(InputDataError, match=r"feature column\(s\) \['f9'\] not in the data"):
        split_rows(df, feature_columns=["f0", "f9"])
    with pytest.raises(InputDataError, match=r"checked column\(s\) \['zz'\] not in the data"):
        split_rows(
            df,
            feature_columns=["f0"],
            specs=[{"expect": "not_null", "column": "zz"}],
            rules=["input_checks"],
        )


def test_existing_reason_column_is_rejected(df):
    from pyspark.sql import functions as F

    with pytest.raises(InputDataError, match="already has a '_quarantine_reason' column"):
        split_rows(df.withColumn(REASON_COLUMN, F.lit("x")), feature_columns=["f0"])


def test_bad_rules_reasons_and_specs_are_config_errors(df):
    with pytest.raises(ConfigError, match=r"quarantine.rules: unknown rule\(s\) \['nulls'\]"):
        split_rows(df, feature_columns=["f0"], rules=["nulls"])
    with pytest.raises(ConfigError, match="quarantine.reasons: expected 'first' or 'all', got 'some'"):
        split_rows(df, feature_columns=["f0"], reasons="some")
    with pytest.raises(ConfigError, match=r"checks.input\[0\].expect: unknown expectation 'betwen'"):
        split_rows(
            df, feature_columns=[], specs=[{"expect": "betwen", "column": "f1"}], rules=["input_checks"]
        )


def test_quarantine_config():
    cfg = QuarantineConfig()
    assert (cfg.enabled, cfg.path, cfg.max_fraction, cfg.rules, cfg.reasons) == (
        False,
        None,
        0.01,
        ["null_features", "non_finite_features"],
        "all",
    )
    assert QuarantineConfig(enabled=True, path="out/q").path == "out/q"
    with pytest.raises(ValidationError, match="'path' is required when quarantine is enabled"):
        QuarantineConfig(enabled=True)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        QuarantineConfig(max_fraction=2)
    with pytest.raises(ValidationError, match="'null_features', 'non_finite_features' or 'input_checks'"):
        QuarantineConfig(rules=["nan"])
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        QuarantineConfig(enable=True)


def test_quarantine_outcome():
    ok = quarantine_outcome(1000, 10, 0.01)
    assert (ok.stage, ok.check, ok.passed, ok.severity) == (
        "quarantine",
        "quarantined_fraction",
        True,
        "fail",
    )
    assert ok.observed == 0.01 and ok.threshold == 0.01 and ok.unexpected_percent == 1.0
    assert ok.message == "10 of 1000 rows quarantined (1%)"
    bad = quarantine_outcome(1000, 11, 0.01)
    assert not bad.passed and bad.status == "failed"
    assert bad.message == "11 of 1000 rows quarantined (1.1%), above the allowed 1%"
    empty = quarantine_outcome(0, 0, 0.0)
    assert empty.passed and empty.observed == 0.0 and not math.isnan(empty.unexpected_percent)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 0.1), "row counts must be >= 0, got n_total=-1, n_quarantined=0"),
        ((10, 11, 0.1), r"n_quarantined \(11\) cannot exceed n_total \(10\)"),
        ((10, 1, 1.5), "max_fraction must be between 0 and 1, got 1.5"),
    ],
)
def test_quarantine_outcome_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        quarantine_outcome(*args)
