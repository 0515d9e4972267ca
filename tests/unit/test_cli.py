"""The ``batchinfer`` command: instant help, exit codes, one-line errors, config show, progress."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchinfer import __version__, cli
from batchinfer.errors import EXIT_CODES

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pyspark", "onnxruntime", "great_expectations", "onnx", "pandas", "pyarrow", "sklearn")


def test_help_imports_nothing_heavy():
    code = (
        "import sys, time; t = time.perf_counter(); import batchinfer.cli as c; p = c.build_parser(); "
        "p.format_help(); "
        f"print([m for m in {HEAVY!r} if m in sys.modules], round(time.perf_counter() - t, 3))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    heavy, _seconds = out.stdout.rsplit(" ", 1)
    assert heavy == "[]", heavy


def test_help_lists_every_exit_code_and_the_package_command(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for code, meaning in EXIT_CODES.items():
        assert f"  {code}  {meaning}" in text
    assert "package" in text and "config" in text


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def _run_cli(*args, env=None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "batchinfer.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
    )


def test_config_error_is_one_line_without_traceback_exit_2():
    proc = _run_cli("run", "conf/does-not-exist.yaml")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first == "batchinfer: config error: config file conf/does-not-exist.yaml not found"
    assert "fix: check the path; is this a typo?" in proc.stderr


def test_bad_override_and_unknown_key_exit_2(tmp_path, capsys):
    assert cli.main(["config", "show", "conf/demo.yaml", "--set", "runtime.batch_rows"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("batchinfer: config error: invalid --set override")
    cfg = tmp_path / "job.yaml"
    cfg.write_text((ROOT / "conf" / "demo.yaml").read_text() + "runtme: {}\n")
    assert cli.main(["config", "show", str(cfg)]) == 2
    assert "runtme: unknown key; is this a typo?" in capsys.readouterr().err


def test_input_and_model_errors_exit_codes(tmp_path, capsys):
    from tests.support.data import job_yaml

    cfg, data, model = job_yaml(tmp_path, "cli-test", files_per_day=1, rows_per_file=20)
    # Planning fails before any Spark starts: the partition does not exist → input error (3).
    assert cli.main(["-q", "run", str(cfg), "--set", "input.partitions.ds=2031-01-01"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("batchinfer: input error:") and "2031-01-01" in err and "Traceback" not in err
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    assert cli.main(["validate", str(cfg), "--set", f"model.path={bad}"]) == 4
    assert capsys.readouterr().err.startswith("batchinfer: model error:")
    assert cli.main(["run", str(cfg), "--sample-fraction", "1.5"]) == 2


def test_config_show_layers_prod_with_env_values_redacted():
    proc = _run_cli(
        "config", "show", "conf/base/churn.yaml", "--env", "prod", env={"CHURN_BUCKET": "acme-ml-prod-7f3a"}
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.splitlines()[0] == "# resolved from: conf/base/churn.yaml, conf/prod/churn.yaml"
    assert "acme-ml-prod-7f3a" not in out
    assert "path: s3a://***/warehouse/events" in out
    assert "path: s3a://***/scores/churn" in out
    assert "master: yarn" in out and "threads_per_task: 2" in out
    assert "passthrough:\n  - customer_id" in out  # from the base layer

    proc = _run_cli(
        "config",
        "show",
        "conf/base/churn.yaml",
        "--env",
        "prod",
        "--json",
        env={"CHURN_BUCKET": "acme-ml-prod-7f3a"},
    )
    data = json.loads(proc.stdout)
    assert data["spark"]["master"] == "yarn" and data["spark"]["conf"]["spark.executor.memory"] == "8g"
    assert data["spark"]["conf"]["spark.sql.shuffle.partitions"] == "200"
    assert data["model"]["path"] == "s3a://***/models/churn/v3/churn.onnx"
    assert data["job"] == "churn-scoring"


def test_config_show_names_a_missing_env_variable():
    env = {k: v for k, v in os.environ.items() if k != "CHURN_BUCKET"}
    proc = subprocess.run(
        [sys.executable, "-m", "batchinfer.cli", "config", "show", "conf/base/churn.yaml", "--env", "prod"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.returncode == 2
    assert "environment variable CHURN_BUCKET is not set" in proc.stderr and "Traceback" not in proc.stderr
    assert _run_cli("config", "show", "conf/base/churn.yaml", "--env", "staging").returncode == 2


@pytest.mark.slow
def test_dry_run_json_with_quiet_spark_console(tmp_path):
    """A real run (local Spark): --json gives the manifest on stdout; Spark's startup noise is gone."""
    from tests.support.data import job_yaml

    cfg, _, _ = job_yaml(
        tmp_path,
        "cli-spark",
        files_per_day=1,
        rows_per_file=50,
        extra='spark: {master: "local[1]", conf: {spark.sql.shuffle.partitions: 3}}\n',
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYSPARK_SUBMIT_ARGS", "SPARK_CONF_DIR")}
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "batchinfer.cli", "run", str(cfg), "--dry-run", "--json"),
            *("--conf", "spark.sql.shuffle.partitions=7"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads(proc.stdout)
    assert manifest["status"] == "dry_run" and manifest["rows_out"] == 100
    # --conf beats the config's spark.conf, which beats batchinfer's defaults; one notice line.
    assert manifest["spark"]["conf"]["spark.sql.shuffle.partitions"] == "7"
    assert manifest["spark"]["conf"]["spark.ui.showConsoleProgress"] == "false"
    assert (
        "batchinfer: notice: spark.conf.spark.sql.shuffle.partitions=3 in the job config is overridden "
        "by --conf: spark.sql.shuffle.partitions=7"
    ) in proc.stderr.splitlines()
    assert not (tmp_path / "out").exists()
    # The dry run's staging directory is gone (--keep-staging keeps it).
    assert not [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("batchinfer-dryrun-")]
    for noise in (
        "Using incubator modules",
        "Setting default log level",
        "sc.setLogLevel",
        "WARN NativeCodeLoader",
    ):
        assert noise not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("argv", "verbose", "quiet"),
    [
        (["run", "c.yaml", "-q"], 0, True),
        (["-q", "run", "c.yaml"], 0, True),
        (["validate", "c.yaml", "-v"], 1, False),
        (["-v", "config", "show", "c.yaml", "--verbose"], 1, False),
        (["model", "inspect", "m.onnx", "-q"], 0, True),
        (["run", "c.yaml"], 0, False),
    ],
)
def test_global_flags_are_accepted_before_or_after_the_subcommand(argv, verbose, quiet):
    args = cli.build_parser().parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_flag_after_the_subcommand_is_not_an_unrecognized_argument():
    proc = _run_cli("validate", "conf/does-not-exist.yaml", "-q")
    assert "unrecognized arguments" not in proc.stderr and proc.returncode == 2
