from __future__ import annotations

import pytest

from batchinfer.config import apply_overrides, load_config, load_config_full, redact
from batchinfer.errors import ConfigError

BASE = """
job: churn-daily
input:
  path: data/events
  partitions: {ds: 2026-11-28}
  passthrough: [customer_id, ds]
model:
  path: models/churn.onnx
  inputs:
    input: {columns: [f0, f1, f2]}
  outputs:
    probabilities: {column: churn_score, select: 1}
    label: {column: churn_label}
output:
  path: data/churn_scores
  partition_by: [ds]
"""


@pytest.fixture
def base(tmp_path):
    p = tmp_path / "job.yaml"
    p.write_text(BASE)
    return p


def test_valid_config_loads_with_defaults(base):
    cfg = load_config(base)
    assert cfg.job == "churn-daily"
    assert cfg.input.partitions == {"ds": "2026-11-28"}  # a YAML date stays a partition string
    assert cfg.output.mode == "overwrite_partitions"
    assert cfg.runtime.batch_rows == "auto"  # sized per worker to runtime.worker_memory
    assert len(cfg.digest()) == 64


def test_every_problem_reported_at_once_with_field_paths(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        BASE.replace("partition_by: [ds]", "partition_by: [ds]\n  modee: append").replace(
            "path: models/churn.onnx", "path: models/churn.onnx\n  sha256: nothex"
        )
        + "runtime: {batch_rows: -1}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(p)
    fields = {path for path, _ in info.value.problems}
    assert {"output.modee", "model.sha256", "runtime.batch_rows"} <= fields
    assert "unknown key" in dict(info.value.problems)["output.modee"]
    assert info.value.exit_code == 2


def test_set_overrides_apply_and_keep_dates_as_strings(base):
    cfg = load_config(
        base,
        overrides=[
            "input.partitions.ds=2026-11-29",
            "runtime.batch_rows=5000",
            "input.passthrough=[customer_id, ds, country]",
        ],
    )
    assert cfg.input.partitions["ds"] == "2026-11-29"
    assert cfg.runtime.batch_rows == 5000
    assert cfg.input.passthrough == ["customer_id", "ds", "country"]


def test_bad_override_syntax_is_a_config_error(base):
    with pytest.raises(ConfigError, match="KEY.PATH=VALUE"):
        load_config(base, overrides=["input.partitions.ds"])
    with pytest.raises(ConfigError, match="cannot set a key inside"):
        apply_overrides({"job": "x"}, ["job.name=y"])


def test_output_column_collisions_are_rejected(base):
    with pytest.raises(ConfigError, match="collide with input.passthrough"):
        load_config(base, overrides=["model.outputs.label.column=customer_id"])
    with pytest.raises(ConfigError, match="used twice"):
        load_config(base, overrides=["model.outputs.label.column=churn_score"])


def test_partition_by_must_be_an_output_column(base):
    with pytest.raises(ConfigError, match="add them to input.passthrough"):
        load_config(base, overrides=["output.partition_by=[region]"])


def test_tensor_input_needs_exactly_one_of_columns_or_column(base):
    with pytest.raises(ConfigError, match="exactly one of 'columns'"):
        load_config(base, overrides=["model.inputs.input.column=embedding"])


def test_select_and_argmax_are_exclusive_and_classes_need_argmax(base):
    with pytest.raises(ConfigError, match="exclusive"):
        load_config(base, overrides=["model.outputs.probabilities.argmax=true"])
    with pytest.raises(ConfigError, match="set 'argmax: true'"):
        load_config(base, overrides=["model.outputs.label.classes=[a, b]"])


def test_missing_file_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("job: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        load_config(scalar)


def test_env_interpolation_only_where_marked_and_secrets_recorded(base):
    text = base.read_text().replace("path: data/churn_scores", "path: ${env:OUT_ROOT}/scores")
    base.write_text(text + "description: '$HOME stays literal'\n")
    loaded = load_config_full(base, environ={"OUT_ROOT": "/secret/root"})
    assert loaded.config.output.path == "/secret/root/scores"
    assert loaded.config.description == "$HOME stays literal"
    assert redact({"a": "x /secret/root/scores"}, loaded.secrets) == {"a": "x ***/scores"}
    with pytest.raises(ConfigError, match="OUT_ROOT is not set"):
        load_config_full(base, environ={})


def test_env_overlay_layers(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "prod").mkdir()
    (tmp_path / "base" / "job.yaml").write_text(BASE)
    (tmp_path / "prod" / "job.yaml").write_text(
        "output: {path: s3a://bucket/scores}\nspark: {master: yarn}\n"
    )
    cfg = load_config(tmp_path / "base" / "job.yaml", env="prod")
    assert cfg.output.path == "s3a://bucket/scores"
    assert cfg.output.partition_by == ["ds"]  # merged, not replaced
    assert cfg.spark.master == "yarn"
    with pytest.raises(ConfigError, match="overlay .* not found"):
        load_config(tmp_path / "base" / "job.yaml", env="staging")


def test_one_pass_reports_field_cross_field_and_expectation_problems_in_one_syntax(tmp_path):
    """Cross-field and GX-level problems do not wait for the field errors to be fixed."""
    import re

    p = tmp_path / "bad.yaml"
    p.write_text(
        BASE.replace("partition_by: [ds]", "partition_by: [ds, region]")
        + "runtime: {batch_rows: -1}\n"
        + "checks:\n"
        + "  input:\n"
        + "    - {expect: not_null, column: f0, mostly: 1.5}\n"  # compact-spec error
        + "    - {expect: between, column: f1}\n"  # GX-level error (no bounds)
        + "    - {expect: expect_column_mean_to_be_between, column: f2, severity: high, min_value: 0,"
        + " strict_mn: true}\n"  # both in one spec
    )
    with pytest.raises(ConfigError) as info:
        load_config(p)
    problems = dict(info.value.problems)
    assert set(problems) == {
        "runtime.batch_rows",
        "output.partition_by",
        "checks.input[0].mostly",
        "checks.input[1]",
        "checks.input[2].severity",
        "checks.input[2].strict_mn",
    }
    assert problems["checks.input[2].strict_mn"].endswith("extra fields not permitted")
    assert "['region'] are not output columns" in problems["output.partition_by"]
    assert problems["checks.input[1]"] == "between: min_value and max_value cannot both be None"
    for path in problems:  # one syntax: dotted names, [i] for list items
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+|\[\d+\])*", path), path


def _iceberg_cfg(tmp_path, **iceberg):
    from tests.support.data import job_config

    cfg = job_config(tmp_path / "in", tmp_path / "m.onnx", tmp_path / "out", features=["f0"])
    cfg["output"]["format"] = "iceberg"
    if iceberg:
        cfg["output"]["iceberg"] = iceberg
    return cfg


@pytest.mark.parametrize(
    ("iceberg", "field", "says"),
    [
        ({}, "output.iceberg", "needs the table and its catalog"),
        (
            {"table": "churn", "catalog": {"type": "sql", "uri": "sqlite:///c.db"}},
            "output.iceberg.table",
            "pattern",
        ),
        (
            {"table": "s.churn", "catalog": {"type": "nessie", "uri": "x"}},
            "output.iceberg.catalog.type",
            "nessie",
        ),
        ({"table": "s.churn", "catalog": {"type": "sql"}}, "output.iceberg.catalog.uri", "sqlite:///"),
        ({"table": "s.churn"}, "output.iceberg.catalog", "missing"),
    ],
)
def test_iceberg_output_config_problems_are_one_line(tmp_path, iceberg, field, says):
    from batchinfer.config import validate_data
    from batchinfer.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        validate_data(_iceberg_cfg(tmp_path, **iceberg))
    assert any(p == field and says in m for p, m in info.value.problems), info.value.problems
    assert "\n" not in str(info.value)


def test_iceberg_section_is_refused_for_other_formats_and_accepted_for_iceberg(tmp_path):
    from batchinfer.config import validate_data
    from batchinfer.errors import ConfigError

    good = {"table": "scores.churn", "catalog": {"type": "rest", "uri": "https://cat", "credential": "a:b"}}
    cfg = validate_data(_iceberg_cfg(tmp_path, **good))
    assert cfg.output.iceberg.table == "scores.churn" and cfg.output.iceberg.catalog["type"] == "rest"
    other = _iceberg_cfg(tmp_path, **good)
    other["output"]["format"] = "delta"
    with pytest.raises(ConfigError, match="output.iceberg: is only read with output.format: iceberg"):
        validate_data(other)
