"""spark-submit's entry point, shipped in the wheel, and ``batchinfer submit`` that builds the line.

The primary resource for spark-submit is this file (``batchinfer.airflow.submit_application()``
or ``python -c "import batchinfer.submit as s; print(s.__file__)"`` prints its path)::

    spark-submit --master yarn ... /path/to/site-packages/batchinfer/submit.py --config job.yaml --set k=v

It takes the same options as ``batchinfer run`` (``--config`` names the YAML) and exits with the
documented exit codes. ``batchinfer submit CONFIG`` runs exactly such a line for you: the
interpreter's own spark-submit with ``SPARK_HOME`` found (a bare ``.venv/bin/spark-submit`` looks
for Spark through whatever ``python3`` is first on PATH), ``--master`` from the option or the
config's ``spark.master``, the config's resolved ``spark.conf`` as ``--conf``, the archive of
``batchinfer package`` with ``spark.pyspark.python``, and this Python as the driver's.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    # Run as a script (by spark-submit), Python puts batchinfer/ itself first on sys.path, where
    # its modules would shadow top-level ones (batchinfer/io → io, airflow.py → airflow).
    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == _here:
        del sys.path[0]

ALIAS = "environment"


def main(argv: list[str]) -> int:
    """``--config PATH [run options]`` → ``batchinfer run PATH [run options]``."""
    from batchinfer.cli import main as cli_main

    args = list(argv)
    if "--config" in args:
        i = args.index("--config")
        if i + 1 >= len(args):
            print("batchinfer: config error: --config needs a path", file=sys.stderr)
            return 2
        config = args[i + 1]
        del args[i : i + 2]
        args = ["run", config, *args]
    else:
        args = ["run", *args]
    return cli_main(args)


# --------------------------------------------------------------------------- batchinfer submit


def spark_home() -> str:
    """``$SPARK_HOME``, else the pip pyspark package (which is a Spark distribution), found without
    importing it."""
    home = os.environ.get("SPARK_HOME")
    if home:
        return home
    import importlib.util

    from batchinfer.errors import ConfigError

    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.origin:
        raise ConfigError(
            "no Spark found: SPARK_HOME is not set and pyspark is not installed in " + sys.prefix,
            hint="set SPARK_HOME to a Spark installation, or pip install pyspark",
        )
    return os.path.dirname(spec.origin)


def submit_command(
    config: str,
    *,
    overrides: list[str] | tuple[str, ...] = (),
    overlays: list[str] | tuple[str, ...] = (),
    env: str | None = None,
    master: str | None = None,
    deploy_mode: str | None = None,
    archive: str | None = None,
    conf: dict[str, str] | None = None,
    job_args: list[str] | tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str], list[str]]:
    """The spark-submit argv, the environment to run it with, and the notes worth printing.

    The config is loaded (and validated) here, so a bad config fails before Spark starts.
    """
    from batchinfer.config import load_config_full
    from batchinfer.spark_conf import as_conf_value

    loaded = load_config_full(config, overrides=overrides, overlays=overlays, env=env)
    cfg = loaded.config
    home = spark_home()
    secret_values = [s for s in loaded.secrets if s]
    props: dict[str, str] = {}
    notes: list[str] = []
    for key, value in cfg.spark.conf.items():
        text = as_conf_value(value)
        if any(s in text for s in secret_values):
            notes.append(
                f"spark.conf.{key} comes from the environment: the job sets it, not the command line"
            )
            continue
        props[key] = text
    python = sys.executable
    if archive:
        props["spark.pyspark.python"] = f"./{ALIAS}/bin/python"
    if deploy_mode != "cluster":
        props["spark.pyspark.driver.python"] = python
    props.update(conf or {})
    chosen_master = master or cfg.spark.master or "local[*]"
    argv = [os.path.join(home, "bin", "spark-submit"), "--master", chosen_master]
    if deploy_mode:
        argv += ["--deploy-mode", deploy_mode]
    argv += ["--name", cfg.spark.app_name or f"batchinfer:{cfg.job}"]
    if archive:
        archive_uri = archive if "://" in archive else os.path.abspath(archive)
        argv += ["--archives", f"{archive_uri}#{ALIAS}"]
    for key, value in props.items():
        argv += ["--conf", f"{key}={value}"]
    from batchinfer.airflow import submit_application

    argv += [submit_application(), "--config", os.path.abspath(config)]
    if env:
        argv += ["--env", env]
    for layer in overlays:
        argv += ["--overlay", os.path.abspath(layer)]
    for item in overrides:
        argv += ["--set", item]
    argv += list(job_args)
    run_env = dict(os.environ)
    run_env["SPARK_HOME"] = home
    run_env["PYSPARK_DRIVER_PYTHON"] = python
    if not archive:
        run_env.setdefault("PYSPARK_PYTHON", python)
    if chosen_master.startswith("local-cluster"):
        # Executors' directories (with the unpacked archive) outside the Spark installation.
        from batchinfer.spark import local_cluster_spark_home

        run_env["SPARK_HOME"] = local_cluster_spark_home(home, worker_dir=run_env.get("SPARK_WORKER_DIR"))
    return argv, run_env, notes


def cmd_submit(args) -> int:
    import shlex
    import subprocess

    from batchinfer.spark_conf import parse_conf_args, shown

    job_args: list[str] = []
    for flag in ("dry_run", "json", "keep_staging"):
        if getattr(args, flag):
            job_args.append("--" + flag.replace("_", "-"))
    for flag in ("manifest_out", "attempt"):
        if getattr(args, flag):
            job_args += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    argv, run_env, notes = submit_command(
        args.config,
        overrides=args.overrides,
        overlays=args.overlay,
        env=args.env,
        master=args.master,
        deploy_mode=args.deploy_mode,
        archive=args.archive,
        conf=parse_conf_args(args.spark_conf),
        job_args=job_args,
    )
    shown_argv = [
        f"{k}={shown(k, v)}" if "=" in a and a.startswith("spark.") else a
        for a in argv
        for k, _, v in [a.partition("=")]
    ]
    for note in notes:
        print(f"batchinfer: notice: {note}", file=sys.stderr)
    line = shlex.join(shown_argv)
    if args.print_only:
        print(line)
        return 0
    print(f"batchinfer: {line}", file=sys.stderr)
    return subprocess.run(argv, env=run_env).returncode


def register(sub) -> None:
    from batchinfer.cli import _add_config_args

    p = sub.add_parser(
        "submit",
        help="run a job through spark-submit (the right SPARK_HOME, master, archive, conf and Python)",
    )
    _add_config_args(p)
    p.add_argument("--master", help="Spark master (default: the config's spark.master, else local[*])")
    p.add_argument("--deploy-mode", choices=["client", "cluster"], help="spark-submit --deploy-mode")
    p.add_argument("--archive", metavar="ENV_TAR_GZ", help="environment archive from `batchinfer package`")
    p.add_argument(
        "--conf",
        dest="spark_conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark property for spark-submit (repeatable); beats the config's spark.conf",
    )
    p.add_argument("--print", dest="print_only", action="store_true", help="print the line, do not run it")
    p.add_argument("--dry-run", action="store_true", help="passed to the job: everything but the commit")
    p.add_argument("--keep-staging", action="store_true", help="passed to the job (dry runs)")
    p.add_argument("--json", action="store_true", help="passed to the job: the manifest on stdout")
    p.add_argument("--manifest-out", metavar="PATH", help="passed to the job")
    p.add_argument("--attempt", metavar="ID", help="passed to the job")
    p.set_defaults(handler=cmd_submit)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
