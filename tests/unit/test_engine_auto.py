"""runtime.engine: auto resolves without starting anything, and `batchinfer validate` says how."""

from __future__ import annotations

import json

import pytest

from batchinfer import cli, engines
from batchinfer.config import load_config

BASE = {
    "job": "t",
    "input": {"path": "data/events"},
    "model": {
        "path": "m.onnx",
        "inputs": {"input": {"columns": ["f0"]}},
        "outputs": {"label": {"column": "y"}},
    },
    "output": {"path": "out"},
}


def cfg(**sections):
    data = json.loads(json.dumps(BASE))
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return load_config(data)


@pytest.mark.parametrize(
    ("sections", "name", "why"),
    [
        ({}, "local", "spark.master is unset and the input and output are local paths"),
        ({"input": {"path": "file:///data/events"}}, "local", "local paths"),
        ({"spark": {"master": "local[2]"}}, "spark", "spark.master is local[2]"),
        ({"spark": {"remote": "sc://h:15002"}}, "spark-connect", "spark.remote is set"),
        ({"input": {"path": "s3://bucket/events"}}, "spark", "the input path is not local"),
        ({"output": {"path": "gs://bucket/out"}}, "spark", "the output path is not local"),
        ({"output": {"writer": "spark"}}, "spark", "output.writer: spark needs Spark"),
        ({"runtime": {"reader": "spark"}}, "spark", "runtime.reader: spark needs Spark"),
        ({"runtime": {"engine": "spark"}}, "spark", "runtime.engine: spark"),
        ({"runtime": {"engine": "local"}, "spark": {"master": "yarn"}}, "local", "runtime.engine: local"),
    ],
)
def test_auto_resolution(monkeypatch, sections, name, why):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("SPARK_ENV_LOADED", raising=False)
    choice = engines.resolve(cfg(**sections))
    assert choice.name == name and why in choice.reason, choice


def test_spark_submit_keeps_spark(monkeypatch):
    from batchinfer import spark as spark_mod

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.setattr(spark_mod, "launched_by_spark_submit", lambda: True)
    assert engines.resolve(cfg()).name == "spark"


def test_validate_prints_the_engine_and_why(tmp_path, capsys, monkeypatch):
    from tests.support.data import job_yaml

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    config, _, _ = job_yaml(tmp_path, "validate-engine", files_per_day=1, rows_per_file=20)
    assert cli.main(["validate", str(config)]) == 0
    out = capsys.readouterr().out
    assert "engine: local (spark.master is unset and the input and output are local paths" in out
    assert cli.main(["validate", str(config), "--set", "spark.master=local[2]"]) == 0
    assert "engine: spark (spark.master is local[2])" in capsys.readouterr().out
    assert cli.main(["validate", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["engine"]["name"] == "local"


def test_validate_refuses_spark_only_settings_on_local(tmp_path, capsys):
    from tests.support.data import job_yaml

    config, _, _ = job_yaml(tmp_path, "validate-engine", files_per_day=1, rows_per_file=20)
    rc = cli.main(["validate", str(config), "--set", "runtime.engine=local", "--set", "output.writer=spark"])
    err = capsys.readouterr().err
    assert rc == 2 and "output.writer: spark needs Spark, but runtime.engine is local" in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[1].strip().startswith("fix: "), err  # the error and its fix
