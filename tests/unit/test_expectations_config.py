"""The compact expectation spec: parsing, mapping to GX arguments, and config-time validation."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml
from pydantic import ValidationError

from batchinfer.checks.expectations import (
    ChecksConfig,
    ExpectationSpec,
    build_expectations,
    load_suite_expectations,
    validate_specs,
    validate_suite_file,
)
from batchinfer.errors import ConfigError

EXAMPLE_YAML = """
checks:
  input:
    - {expect: not_null, column: f0}
    - {expect: between, column: f1, min: -10, max: 10, mostly: 0.99, severity: warn}
    - {expect: in_set, column: country, values: [DE, FR, US]}
    - {expect: column_exists, column: customer_id}
    - {expect: row_count_between, min: 1000}
    - {expect: expect_column_mean_to_be_between, column: f2, min_value: -1, max_value: 1}
  output:
    - {expect: between, column: churn_score, min: 0, max: 1}
  input_suite: null
  output_suite: null
"""


def _checks() -> ChecksConfig:
    return ChecksConfig.model_validate(yaml.safe_load(EXAMPLE_YAML)["checks"])


def test_example_yaml_parses_and_maps_to_gx_names_and_arguments():
    cfg = _checks()
    assert cfg.result_format == "SUMMARY"
    assert [s.gx_type for s in cfg.input] == [
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_to_exist",
        "expect_table_row_count_to_be_between",
        "expect_column_mean_to_be_between",
    ]
    assert cfg.input[1].severity == "warn" and cfg.input[0].severity == "fail"
    assert cfg.input[1].gx_kwargs() == {"column": "f1", "mostly": 0.99, "min_value": -10, "max_value": 10}
    assert cfg.input[2].gx_kwargs() == {"column": "country", "value_set": ["DE", "FR", "US"]}
    assert cfg.input[4].gx_kwargs() == {"min_value": 1000}
    # full GX names pass their arguments through
    assert cfg.input[5].kwargs == {"min_value": -1, "max_value": 1}
    assert cfg.input[5].gx_kwargs() == {"column": "f2", "min_value": -1, "max_value": 1}
    assert cfg.output[0].gx_type == "expect_column_values_to_be_between"
    assert cfg.problems() == []


def test_row_level_flags():
    cfg = _checks()
    assert [s.is_row_level for s in cfg.input] == [True, True, True, False, False, False]


def test_friendly_arguments_for_types_and_column_sets():
    s = ExpectationSpec(expect="type_in", column="x", dtype=["DoubleType", "FloatType"])
    assert s.gx_kwargs() == {"column": "x", "type_list": ["DoubleType", "FloatType"]}
    s = ExpectationSpec(expect="columns_match_set", values=["a", "b"])
    assert s.gx_kwargs() == {"column_set": ["a", "b"]}
    s = ExpectationSpec(expect="between", column="x", min=0, kwargs={"strict_min": True})
    assert s.gx_kwargs() == {"column": "x", "min_value": 0, "strict_min": True}


def test_to_compact_round_trips():
    for spec in _checks().input:
        again = ExpectationSpec.model_validate(spec.to_compact())
        assert again == spec
        assert list(spec.to_compact())[0] == "expect"


def test_unknown_alias_is_a_parse_error_with_suggestion():
    with pytest.raises(ValidationError, match="unknown expectation 'not_nul'; did you mean 'not_null'"):
        ExpectationSpec.model_validate({"expect": "not_nul", "column": "a"})
    probs = validate_specs([{"expect": "not_nul", "column": "a"}])
    assert probs[0][0] == "checks.input[0].expect"
    assert "did you mean 'not_null'" in probs[0][1]


def test_empty_expectation_name():
    with pytest.raises(ValidationError, match="must name an expectation"):
        ExpectationSpec.model_validate({"expect": "  "})


def test_unknown_argument_for_alias_is_rejected_with_the_fix():
    with pytest.raises(ValidationError, match=r"unknown argument\(s\) 'bogus' for 'between'.*kwargs"):
        ExpectationSpec.model_validate({"expect": "between", "column": "f1", "min": 0, "bogus": 1})


def test_argument_both_top_level_and_in_kwargs():
    with pytest.raises(ValidationError, match="min_value given both at top level and in 'kwargs'"):
        ExpectationSpec.model_validate(
            {"expect": "expect_column_mean_to_be_between", "min_value": 0, "kwargs": {"min_value": 1}}
        )


def test_bad_severity_mostly_and_bounds():
    probs = validate_specs(
        [
            {"expect": "not_null", "column": "a", "severity": "error"},
            {"expect": "not_null", "column": "a", "mostly": 1.5},
            {"expect": "between", "column": "a", "min": 5, "max": 1},
            {"expect": "between", "column": "a", "min": "x"},
        ],
        path="checks.output",
    )
    assert probs[0] == ("checks.output[0].severity", "Input should be 'fail' or 'warn'")
    assert probs[1] == ("checks.output[1].mostly", "Input should be less than or equal to 1")
    assert probs[2] == ("checks.output[2]", "min (5) must not be greater than max (1)")
    assert probs[3][0] == "checks.output[3].min" and "valid number" in probs[3][1]


def test_validate_specs_uses_gx_for_full_names_and_arguments():
    probs = validate_specs(
        [
            {"expect": "expect_column_mean_to_be_betwen", "column": "f2", "min_value": -1},
            {"expect": "between", "column": "f1"},
            {"expect": "column_exists"},
            {"expect": "expect_column_mean_to_be_between", "column": "f2", "min_value": 0, "foo": 3},
            {"expect": "in_set", "column": "c", "kwargs": {"mostly": "lots"}},
            {"expect": "type", "column": "c", "dtype": "double"},
            {"expect": "type_in", "column": "c", "dtype": ["DoubleType", "Foo"]},
            {"expect": "not_null", "column": "ok"},
        ]
    )
    assert probs == [
        (
            "checks.input[0].expect",
            "unknown Great Expectations expectation 'expect_column_mean_to_be_betwen'; "
            "did you mean 'expect_column_mean_to_be_between'?",
        ),
        ("checks.input[1]", "between: min_value and max_value cannot both be None"),
        ("checks.input[2].column", "column_exists: field required"),
        ("checks.input[3].foo", "expect_column_mean_to_be_between: extra fields not permitted"),
        ("checks.input[4].mostly", "in_set: value is not a valid float"),
        ("checks.input[4].values", "in_set: field required"),
        (
            "checks.input[5].dtype",
            "type: 'double' is not a Spark type name; use e.g. 'DoubleType', 'LongType', "
            "'StringType' (classes of pyspark.sql.types)",
        ),
        (
            "checks.input[6].dtype",
            "type_in: 'Foo' is not a Spark type name; use e.g. 'DoubleType', 'LongType', "
            "'StringType' (classes of pyspark.sql.types)",
        ),
    ]


def test_checks_config_problems_cover_both_stages_and_suite_files(tmp_path):
    cfg = ChecksConfig.model_validate(
        {
            "input": [{"expect": "between", "column": "f1"}],
            "output": [{"expect": "column_exists"}],
            "output_suite": str(tmp_path / "missing.json"),
        }
    )
    paths = [p for p, _ in cfg.problems()]
    assert paths == ["checks.input[0]", "checks.output[0].column", "checks.output_suite"]
    assert "no such file" in cfg.problems()[-1][1]


def test_checks_config_forbids_unknown_keys():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ChecksConfig.model_validate({"inputs": []})
    with pytest.raises(ValidationError, match="result_format"):
        ChecksConfig.model_validate({"result_format": "VERBOSE"})


def test_build_expectations_raises_config_error_listing_every_problem():
    with pytest.raises(ConfigError) as info:
        build_expectations(
            [ExpectationSpec(expect="between", column="a"), ExpectationSpec(expect="column_exists")]
        )
    assert [p for p, _ in info.value.problems] == ["checks[0]", "checks[1].column"]
    assert "Invalid expectations: checks[0]: between: min_value and max_value" in str(info.value)


def test_build_expectations_keeps_our_severity_and_index_in_meta():
    exps = build_expectations(_checks().input)
    assert exps[1].meta["batchinfer"] == {"severity": "warn", "expect": "between", "index": 1}
    assert str(getattr(exps[1].severity, "value", exps[1].severity)) == "warning"
    assert exps[0].expectation_type == "expect_column_values_to_not_be_null"


def _write(tmp_path, data, name="suite.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_load_suite_file(tmp_path):
    p = _write(
        tmp_path,
        {
            "name": "events",
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "f0"}},
                {"expectation_type": "expect_column_to_exist", "kwargs": {"column": "f1"}, "meta": {}},
            ],
        },
    )
    exps = load_suite_expectations(p)
    assert [e.expectation_type for e in exps] == [
        "expect_column_values_to_not_be_null",
        "expect_column_to_exist",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"name": "x"}, "expected a JSON object with an 'expectations' list"),
        ({"expectations": [{"kwargs": {}}]}, "expected an object with 'type' and 'kwargs'"),
        (
            {"expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "a"}}]},
            "min_value and max_value cannot both be None",
        ),
        ({"expectations": [{"type": "expect_nothing", "kwargs": {}}]}, "expect_nothing"),
    ],
)
def test_bad_suite_files(tmp_path, content, message):
    p = _write(tmp_path, content)
    probs = validate_suite_file(p, path="checks.input_suite")
    assert probs and probs[0][0].startswith("checks.input_suite")
    assert message in probs[0][1]
    with pytest.raises(ConfigError, match=message):
        load_suite_expectations(p)


def test_missing_suite_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file: .*nope.json"):
        load_suite_expectations(tmp_path / "nope.json")


def test_module_does_not_import_great_expectations():
    code = textwrap.dedent(
        """
        import sys
        import batchinfer.checks.expectations, batchinfer.checks.quality
        import batchinfer.checks.quarantine, batchinfer.checks.starter
        heavy = [m for m in ("great_expectations", "pyspark") if m in sys.modules]
        print(heavy)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
