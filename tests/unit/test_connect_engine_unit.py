"""Spark Connect engine pieces that need no server: endpoint, refusals, model verification."""

from __future__ import annotations

import hashlib

import pytest

from batchinfer.config import JobConfig
from batchinfer.engines import resolve
from batchinfer.engines.connect import ArtifactModel, check_config, shown_url
from batchinfer.errors import ConfigError, ModelError


def _config(**sections) -> JobConfig:
    base = {
        "job": "j",
        "input": {"path": "/data", "passthrough": ["id"]},
        "model": {
            "path": "/m.onnx",
            "inputs": {"input": {"columns": ["f0"]}},
            "outputs": {"probabilities": {"column": "score", "select": 1}},
        },
        "output": {"path": "/out"},
    }
    return JobConfig.model_validate({**base, **sections})


def test_spark_remote_and_spark_remote_env_select_connect(monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    assert resolve(_config(spark={"remote": "sc://h:15002"})).name == "spark-connect"
    monkeypatch.setenv("SPARK_REMOTE", "sc://h:15002")
    choice = resolve(_config())
    assert (choice.name, choice.reason) == ("spark-connect", "SPARK_REMOTE is set")


def test_endpoint_is_shown_without_its_token():
    assert shown_url("sc://h:15002/;token=s3cr3t;user_id=me") == "sc://h:15002"
    assert shown_url("local[2]") == "local[2]"


@pytest.mark.parametrize(
    ("section", "what"),
    [
        ({"runtime": {"reader": "spark"}}, "runtime.reader: spark"),
        ({"output": {"path": "/o", "writer": "spark"}}, "output.writer: spark"),
    ],
)
def test_accumulator_paths_are_refused_in_one_line(section, what):
    with pytest.raises(ConfigError, match=f"{what} is not supported on Spark Connect") as info:
        check_config(_config(**section))
    assert "\n" not in str(info.value) and "auto" in info.value.hint


def test_connect_engine_without_an_endpoint_says_how_to_set_one(monkeypatch):
    from batchinfer.spark import get_connect_session

    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    with pytest.raises(ConfigError, match="neither spark.remote nor SPARK_REMOTE is set"):
        get_connect_session(_config(runtime={"engine": "spark-connect"}))


def test_artifact_model_checks_the_digest(tmp_path, monkeypatch):
    """Outside Spark, SparkFiles falls back to the working directory (the session's artifact dir)."""
    content = b"model bytes"
    name = "batchinfer-model-x.onnx"
    (tmp_path / name).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    assert ArtifactModel(name, hashlib.sha256(content).hexdigest()).value == content
    with pytest.raises(ModelError, match="expected 000000000000"):
        _ = ArtifactModel(name, "0" * 64).value
    with pytest.raises(ModelError, match="is not on this worker"):
        _ = ArtifactModel("missing.onnx", "0" * 64).value
