"""``batchinfer submit``: the spark-submit line it builds (run for real in tests/integration/test_package.py)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from batchinfer import cli
from batchinfer.submit import spark_home, submit_command

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "conf" / "demo.yaml")
ENTRY = str(ROOT / "batchinfer" / "submit.py")


def _line(capsys, *args) -> list[str]:
    assert cli.main(["submit", DEMO, "--print", *args]) == 0
    return shlex.split(capsys.readouterr().out)


def test_line_uses_this_pythons_spark_the_configs_master_and_conf(capsys, monkeypatch):
    monkeypatch.delenv("SPARK_HOME", raising=False)
    argv = _line(capsys, "--set", "input.partitions.ds=2026-11-28", "--set", "spark.master=local[2]")
    home = Path(spark_home())
    assert home == Path(__import__("pyspark").__file__).parent  # no python3-on-PATH lookup
    assert argv[0] == str(home / "bin" / "spark-submit") and Path(argv[0]).exists()
    assert argv[argv.index("--master") + 1] == "local[2]"  # the config's spark.master
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert "spark.sql.shuffle.partitions=4" in confs
    assert f"spark.pyspark.driver.python={sys.executable}" in confs
    i = argv.index(ENTRY)  # the wheel's entry point, by absolute path
    assert argv[i + 1 :] == [
        "--config",
        DEMO,
        *("--set", "input.partitions.ds=2026-11-28", "--set", "spark.master=local[2]"),
    ]


def test_line_without_a_master_in_the_config_uses_all_local_cores(capsys, monkeypatch):
    # conf/demo.yaml sets no master (the embedded engine's default); spark-submit gets Spark's local[*].
    monkeypatch.delenv("SPARK_HOME", raising=False)
    argv = _line(capsys, "--set", "input.partitions.ds=2026-11-28")
    assert argv[argv.index("--master") + 1] == "local[*]"


def test_master_conf_archive_and_job_options(capsys, tmp_path):
    archive = tmp_path / "env.tar.gz"
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("runtime: {batch_rows: 500}\n")
    argv = _line(
        capsys,
        *("--master", "yarn", "--archive", str(archive), "--conf", "spark.sql.shuffle.partitions=16"),
        *("--dry-run", "--json", "--manifest-out", "m.json", "--attempt", "a1", "--overlay", str(overlay)),
    )
    assert argv[argv.index("--master") + 1] == "yarn"
    assert argv[argv.index("--archives") + 1] == f"{archive}#environment"
    confs = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert "spark.pyspark.python=./environment/bin/python" in confs
    assert "spark.sql.shuffle.partitions=16" in confs and "spark.sql.shuffle.partitions=4" not in confs
    assert argv[argv.index(ENTRY) + 1 :] == [
        *("--config", DEMO, "--overlay", str(overlay)),
        *("--dry-run", "--json", "--manifest-out", "m.json", "--attempt", "a1"),
    ]


def test_environment_values_stay_off_the_command_line(tmp_path, monkeypatch):
    cfg = tmp_path / "job.yaml"
    text = (ROOT / "conf" / "demo.yaml").read_text()
    old = 'conf: {spark.sql.shuffle.partitions: "4"}'
    assert old in text
    cfg.write_text(text.replace(old, old[:-1] + ', spark.hadoop.token: "${env:TOKEN_FOR_TEST}"}'))
    monkeypatch.setenv("TOKEN_FOR_TEST", "s3cr3t-value")
    argv, env, notes = submit_command(str(cfg))
    assert not any("s3cr3t-value" in a for a in argv)
    assert notes == [
        "spark.conf.spark.hadoop.token comes from the environment: the job sets it, not the command line"
    ]
    assert env["PYSPARK_DRIVER_PYTHON"] == sys.executable and env["SPARK_HOME"] == spark_home()


def test_local_cluster_work_dir_is_outside_the_installation(monkeypatch, tmp_path):
    # local-cluster workers put executors' directories in $SPARK_HOME/work (they ignore
    # SPARK_WORKER_DIR): the line runs with a SPARK_HOME of symlinks whose work/ is elsewhere.
    monkeypatch.delenv("SPARK_WORKER_DIR", raising=False)
    _, env, _ = submit_command(DEMO, master="local-cluster[2,1,1024]")
    real = Path(spark_home()).resolve()
    farm = Path(env["SPARK_HOME"])
    assert farm != real and farm.name.startswith("batchinfer-spark-home-")
    assert (farm / "jars").resolve() == real / "jars" and (farm / "bin" / "spark-class").exists()
    assert (farm / "work").is_dir() and not (farm / "work").is_symlink()
    monkeypatch.setenv("SPARK_WORKER_DIR", str(tmp_path / "w"))
    _, env, _ = submit_command(DEMO, master="local-cluster[2,1,1024]")
    assert (Path(env["SPARK_HOME"]) / "work").resolve() == tmp_path / "w"
    _, env, _ = submit_command(DEMO)  # other masters: the real installation
    assert Path(env["SPARK_HOME"]).resolve() == real


def test_bad_config_fails_before_spark(capsys):
    assert cli.main(["submit", "conf/nope.yaml", "--print"]) == 2
    assert capsys.readouterr().err.startswith(
        "batchinfer: config error: config file conf/nope.yaml not found"
    )
    with pytest.raises(SystemExit):
        cli.main(["submit", DEMO, "--deploy-mode", "sideways"])
