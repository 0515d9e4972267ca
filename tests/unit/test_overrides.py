"""``--set`` paths: dotted keys (Spark properties) and mappings that merge instead of replacing."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchinfer.config import apply_overrides, load_config
from batchinfer.errors import ConfigError
from batchinfer.layering import split_key_path

ROOT = Path(__file__).resolve().parents[2]
CHURN = ROOT / "conf" / "base" / "churn.yaml"


@pytest.fixture(autouse=True)
def bucket(monkeypatch):
    monkeypatch.setenv("CHURN_BUCKET", "test-bucket")  # conf/prod/churn.yaml reads it


def test_spark_conf_keys_with_dots_plain_or_quoted():
    for key in ("spark.conf.spark.sql.shuffle.partitions", 'spark.conf."spark.sql.shuffle.partitions"'):
        cfg = load_config(CHURN, env="prod", overrides=[f"{key}=8"])
        assert cfg.spark.conf["spark.sql.shuffle.partitions"] == 8
        assert cfg.spark.conf["spark.executor.memory"] == "8g"  # the rest of the overlay stays
        assert "spark" not in cfg.spark.conf  # no nested {"spark": {"sql": ...}} left behind


def test_quoted_parts_anywhere_and_single_quotes():
    data = apply_overrides({"a": {}}, ["a.'x.y'.z=1", 'a."p.q"=2'])
    assert data == {"a": {"x.y": {"z": 1}, "p.q": 2}}


def test_mapping_value_merges_into_the_mapping():
    cfg = load_config(CHURN, env="prod", overrides=["spark.conf={spark.sql.shuffle.partitions: 8}"])
    assert cfg.spark.conf["spark.sql.shuffle.partitions"] == 8
    assert cfg.spark.conf["spark.executor.memory"] == "8g"
    assert cfg.spark.conf["spark.dynamicAllocation.enabled"] is True
    # null clears, so "replace" is still possible: clear, then set.
    cfg = load_config(CHURN, env="prod", overrides=["spark.conf=null", "spark.conf={a.b: 1}"])
    assert cfg.spark.conf == {"a.b": 1}


@pytest.mark.parametrize(
    "item, why",
    [
        ('spark.conf."spark.sql=8', 'unclosed " in the key'),
        ("input..partitions=1", "empty part in the key path"),
        ("input.partitions.=1", "empty part in the key path"),
        ('a."b"c=1', "a quoted part must be followed by '.' or the end"),
    ],
)
def test_bad_key_paths_say_why(item, why):
    with pytest.raises(ConfigError, match="invalid --set override") as info:
        apply_overrides({}, [item])
    (field, message), *_ = info.value.problems
    assert field == f"--set {item}" and message.startswith(why) and "KEY.PATH=VALUE" in message


def test_split_key_path_leaves_other_sections_alone():
    assert split_key_path("input.partitions.ds") == ["input", "partitions", "ds"]
    assert split_key_path("spark.conf") == ["spark", "conf"]
    assert split_key_path("spark.master") == ["spark", "master"]
