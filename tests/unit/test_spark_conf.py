"""Spark property precedence: command line > spark-defaults.conf > config spark.conf > batchinfer defaults."""

from __future__ import annotations

import pytest

from batchinfer import cli
from batchinfer.errors import ConfigError
from batchinfer.spark_conf import (
    master_notice,
    parse_conf_args,
    read_spark_defaults,
    resolve_conf,
    spark_defaults_path,
)

DEFAULTS = {"spark.ui.showConsoleProgress": "false", "spark.sql.shuffle.partitions": "200"}


def test_embedded_order_command_line_then_spark_defaults_then_config_then_defaults():
    conf, notices = resolve_conf(
        DEFAULTS,
        {"spark.sql.shuffle.partitions": 4, "spark.executor.cores": "2", "spark.a": True},
        spark_defaults={"spark.sql.shuffle.partitions": "12", "spark.executor.cores": "3"},
        command_line={"spark.sql.shuffle.partitions": "16", "spark.ui.showConsoleProgress": "true"},
    )
    assert conf == {
        "spark.ui.showConsoleProgress": "true",  # --conf beats batchinfer's default
        "spark.sql.shuffle.partitions": "16",  # --conf beats spark-defaults.conf and the config
        "spark.executor.cores": "3",  # spark-defaults.conf beats the config
        "spark.a": "true",  # booleans as Spark spells them
    }
    assert notices == [
        "spark.conf.spark.sql.shuffle.partitions=4 in the job config is overridden by --conf: "
        "spark.sql.shuffle.partitions=16",
        "spark.conf.spark.executor.cores=2 in the job config is overridden by spark-defaults.conf: "
        "spark.executor.cores=3",
    ]


def test_under_spark_submit_the_launched_conf_wins_and_is_not_set_again():
    launched = {
        "spark.sql.shuffle.partitions": "16",
        "spark.ui.showConsoleProgress": "true",
        "spark.master": "yarn",
    }
    conf, notices = resolve_conf(
        DEFAULTS,
        {"spark.sql.shuffle.partitions": "4", "spark.executor.memory": "2g"},
        command_line={"spark.executor.memory": "3g", "spark.ui.showConsoleProgress": "false"},
        launched=launched,
    )
    # Only what spark-submit did not set: the job's --conf, then the config.
    assert conf == {"spark.executor.memory": "3g"}
    assert notices == [
        "spark.ui.showConsoleProgress=false in --conf is overridden by spark-submit "
        "(--conf or spark-defaults.conf): spark.ui.showConsoleProgress=true",
        "spark.conf.spark.sql.shuffle.partitions=4 in the job config is overridden by spark-submit "
        "(--conf or spark-defaults.conf): spark.sql.shuffle.partitions=16",
    ]


def test_notices_mask_secret_looking_values():
    _, notices = resolve_conf(
        {},
        {"spark.hadoop.fs.s3a.secret.key": "s3cr3t"},
        command_line={"spark.hadoop.fs.s3a.secret.key": "other"},
    )
    assert notices == [
        "spark.conf.spark.hadoop.fs.s3a.secret.key=*** in the job config is overridden by --conf: "
        "spark.hadoop.fs.s3a.secret.key=***"
    ]


def test_master_notice():
    assert master_notice("local[2]", "local[2]") is None and master_notice(None, "yarn") is None
    assert master_notice("local[*]", "yarn") == (
        "spark.master=local[*] in the job config is ignored under spark-submit: "
        "the master is yarn (spark-submit --master)"
    )


def test_spark_defaults_file(tmp_path):
    (tmp_path / "spark-defaults.conf").write_text(
        "# comment\nspark.sql.shuffle.partitions   12\n\nspark.executor.cores=3\nspark.flag\n"
    )
    path = spark_defaults_path({"SPARK_CONF_DIR": str(tmp_path)})
    assert path == str(tmp_path / "spark-defaults.conf")
    assert read_spark_defaults(path) == {
        "spark.sql.shuffle.partitions": "12",
        "spark.executor.cores": "3",
        "spark.flag": "",
    }
    assert spark_defaults_path({"SPARK_HOME": "/opt/spark"}) == "/opt/spark/conf/spark-defaults.conf"
    assert read_spark_defaults(str(tmp_path / "missing.conf")) == {}


def test_conf_args_parse_and_bad_ones_are_config_errors(capsys):
    assert parse_conf_args(["spark.a=1", "spark.b=x=y"]) == {"spark.a": "1", "spark.b": "x=y"}
    with pytest.raises(ConfigError) as info:
        parse_conf_args(["spark.a", "foo=1"])
    assert [p for p, _ in info.value.problems] == ["--conf spark.a", "--conf foo=1"]
    assert cli.main(["run", "conf/demo.yaml", "--conf", "shuffle=4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("batchinfer: config error: invalid --conf")
    assert "--conf shuffle=4: expected a Spark property KEY=VALUE" in err
