"""The static table of GX expectations: in step with GX, and enough to validate without importing it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from batchinfer.checks import expectation_table as table
from batchinfer.checks.expectations import validate_specs

ROOT = Path(__file__).resolve().parents[2]


def test_table_matches_the_expectations_gx_registers():
    from tests.support.gx_signatures import gx_signatures

    arguments, validators, common = gx_signatures()
    # On a failure, regenerate with `python -m tests.support.gx_signatures` and review the diff.
    assert sorted(table.ARGUMENTS) == sorted(arguments)
    for name, args in arguments.items():
        assert table.ARGUMENTS[name] == args, name
        assert list(table.ARGUMENTS[name]) == list(args), f"{name}: GX field order changed"
    assert table.GX_VALIDATORS == {k: v for k, v in validators.items() if v}
    assert table.COMMON_ARGUMENTS == common


def test_every_gx_validator_is_reproduced_or_left_to_gx_on_purpose():
    used = {v for vs in table.GX_VALIDATORS.values() for v in vs}
    assert used == set(table.RULES) | set(table.LEFT_TO_GX)


def test_spark_type_names_match_pyspark():
    from pyspark.sql import types as T

    names = {n for n in dir(T) if n.endswith("Type") and isinstance(getattr(T, n), type)}
    assert table.SPARK_TYPE_NAMES == names


@pytest.mark.parametrize(
    ("spec", "where", "message"),
    [
        ({"expect": "row_count_between", "min": 10, "max": 1}, "checks.input[0]", "must not be greater"),
        (
            {"expect": "expect_table_row_count_to_be_between", "min_value": 10, "max_value": 1},
            "checks.input[0]",
            "min_value (10) must be less than or equal to max_value (1)",
        ),
        (
            {"expect": "expect_column_values_to_not_be_outliers", "column": "a", "method": "mad"},
            "checks.input[0].method",
            "unexpected value; permitted: 'iqr', 'std'",
        ),
        ({"expect": "in_set", "column": "a", "values": "abc"}, "checks.input[0].values", "valid list"),
        (
            {"expect": "distinct_in_set", "column": "a", "values": []},
            "checks.input[0].values",
            "not be empty",
        ),
        (
            {"expect": "expect_compound_columns_to_be_unique", "column_list": ["a"]},
            "checks.input[0].column_list",
            "column_list must contain at least two columns",
        ),
        (
            {"expect": "not_null", "column": "a", "kwargs": {"severity": "warning"}},
            "checks.input[0].severity",
            "use our 'severity: fail|warn'",
        ),
        ({"expect": "row_count_equal", "value": "many"}, "checks.input[0].value", "not a valid integer"),
        (
            {"expect": "expect_column_mean_to_be_between", "column": "a", "min_value": "soon"},
            "checks.input[0].min",
            "value is not a valid float",
        ),
        (
            {"expect": "not_null", "column": "a", "kwargs": {"mostly": 2}},
            "checks.input[0].mostly",
            "less than or equal to 1",
        ),
    ],
)
def test_static_checks_of_argument_kinds_and_rules(spec, where, message):
    problems = validate_specs([spec])
    assert problems and problems[0][0] == where, problems
    assert message in problems[0][1]


def test_valid_specs_of_every_kind_pass():
    assert (
        validate_specs(
            [
                {"expect": "between", "column": "a", "min": 0, "max": 1, "kwargs": {"strict_min": True}},
                {"expect": "expect_column_max_to_be_between", "column": "a", "min_value": "2026-01-01"},
                {"expect": "row_count_between", "min": 1, "kwargs": {"max_value": {"$PARAMETER": "n"}}},
                {"expect": "expect_column_values_to_match_regex_list", "column": "a", "regex_list": ["x"]},
                {"expect": "not_null", "column": "a", "kwargs": {"notes": "why", "catch_exceptions": False}},
                {"expect": "type_in", "column": "a", "dtype": ["DoubleType", "FloatType"]},
            ]
        )
        == []
    )


def test_validate_does_not_import_great_expectations_or_pyspark(tmp_path):
    """`batchinfer validate` on a demo-like config (checks, drift profile) stays light."""
    from tests.support.data import job_config, write_partitioned
    from tests.support.models import linear_classifier

    data = write_partitioned(tmp_path / "events", rows_per_file=50, files_per_day=1)
    model, _ = linear_classifier(tmp_path / "m.onnx", 4)
    cfg = job_config(
        data,
        model,
        tmp_path / "out",
        features=["f0", "f1", "f2", "f3"],
        checks={
            "input": [
                {"expect": "row_count_between", "min": 10},
                {"expect": "not_null", "column": "id"},
                {"expect": "in_set", "column": "cat", "values": ["a", "b", "c"]},
                {"expect": "between", "column": "f0", "min": -8, "max": 8, "mostly": 0.99},
                {"expect": "type", "column": "f1", "dtype": "FloatType"},
            ],
            "output": [{"expect": "between", "column": "score", "min": 0, "max": 1}],
        },
    )
    path = tmp_path / "job.json"
    path.write_text(json.dumps(cfg))
    script = tmp_path / "probe.py"
    script.write_text(
        "import sys\n"
        "from batchinfer import cli\n"
        f"rc = cli.main(['validate', {str(path)!r}])\n"
        "print(rc, [m for m in ('great_expectations', 'pyspark') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "0 []", out.stdout + out.stderr
