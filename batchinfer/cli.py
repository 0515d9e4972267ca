"""The ``batchinfer`` command. Imports nothing heavy at module level, so ``--help`` is instant."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence

from batchinfer.errors import (
    EXIT_CODES,
    EXIT_MANIFEST_NOT_WRITTEN,
    EXIT_OK,
    EXIT_UNEXPECTED,
    BatchInferError,
    ConfigError,
)

log = logging.getLogger("batchinfer")

EPILOG = "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in sorted(EXIT_CODES.items()))


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="job config YAML (e.g. conf/demo.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set input.partitions.ds=2026-11-28 (repeatable)",
    )
    p.add_argument("--env", help="environment overlay: conf/base/X.yaml + conf/<env>/X.yaml")
    p.add_argument(
        "--overlay", action="append", default=[], metavar="YAML", help="extra config layer (repeatable)"
    )


class _CommandParser(argparse.ArgumentParser):
    """A parser that accepts the global ``-v/-q`` flags, before or after any subcommand.

    Subparsers inherit the class (argparse's ``add_subparsers`` defaults ``parser_class`` to it),
    so subcommands registered by feature modules get the flags too. Below the top level they
    default to ``SUPPRESS``: leaving them out after the subcommand keeps what was given before it.
    """

    def __init__(self, *args, top_level: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        verbose = {"default": 0} if top_level else {"default": argparse.SUPPRESS}
        quiet = {"default": False} if top_level else {"default": argparse.SUPPRESS}
        self.add_argument(
            "-v", "--verbose", action="count", help="more logging (-vv: Spark's too)", **verbose
        )
        self.add_argument("-q", "--quiet", action="store_true", help="only errors", **quiet)


def build_parser() -> argparse.ArgumentParser:
    parser = _CommandParser(
        top_level=True,
        prog="batchinfer",
        description="Offline batch scoring of ONNX models on Apache Spark, with data-quality and drift gates.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a scoring job", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_config_args(run)
    run.add_argument("--dry-run", action="store_true", help="run everything but the write")
    run.add_argument(
        "--conf",
        dest="spark_conf",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Spark property, e.g. --conf spark.sql.shuffle.partitions=16 (repeatable); beats the "
        "config's spark.conf and spark-defaults.conf (under spark-submit, pass --conf to spark-submit)",
    )
    run.add_argument(
        "--keep-staging",
        action="store_true",
        help="dry runs: keep the scored rows in the temporary staging directory (default: removed)",
    )
    run.add_argument("--sample-fraction", type=float, help="score a random sample of the input rows")
    run.add_argument("--json", action="store_true", help="print the run manifest as JSON on stdout")
    run.add_argument(
        "--manifest-out",
        metavar="PATH",
        help="also write the manifest JSON to PATH (parent directories are created; "
        f"exit {EXIT_MANIFEST_NOT_WRITTEN} if that fails after a successful commit)",
    )
    run.add_argument(
        "--attempt",
        metavar="ID",
        help="an id the caller chose for this try (a scheduler's task attempt), recorded in the "
        "manifest as 'attempt' so the caller can tell its manifest from a stale one",
    )

    val = sub.add_parser("validate", help="check config, data schema and model signature without scoring")
    _add_config_args(val)
    val.add_argument("--json", action="store_true", help="print the resolved plan as JSON")

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    show = cfg_sub.add_parser("show", help="print the fully resolved config (layers, --set, env applied)")
    _add_config_args(show)
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")

    unlock = sub.add_parser("unlock", help="clear a stale output lock left by a dead run")
    unlock.add_argument("output", help="output path of the job (output.path)")

    recover = sub.add_parser("recover", help="roll back a half-done commit left by a killed run")
    recover.add_argument("output", help="output path of the job (output.path)")
    for store_cmd in (unlock, recover):  # a store only Hadoop reaches (viewfs://, hdfs:// without libhdfs)
        store_cmd.add_argument(
            "--conf",
            dest="spark_conf",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="a Spark property for the Spark session that opens a store pyarrow cannot "
            "(e.g. spark.hadoop.fs.viewfs.mounttable.*); repeatable",
        )

    demo = sub.add_parser("demo", help="make the demo data and model (if missing) and run the demo job")
    demo.add_argument("--dir", default="demo", help="where demo data, model and output go (default: demo/)")
    demo.add_argument("--rows", type=int, default=240_000, help="rows in the demo dataset")
    demo.add_argument("--json", action="store_true", help="print the manifest as JSON")

    _register_extensions(sub)
    return parser


def _register_extensions(sub) -> None:
    """Subcommands that live next to their feature (model tools, profiles, expectations, packaging)."""
    from batchinfer import commands

    for register in commands.REGISTRY:
        register(sub)


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose >= 1 else logging.INFO)
    from batchinfer.redaction import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(RedactingFilter())  # no ${env:...} value in any log line
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    logging.getLogger("py4j").setLevel(logging.ERROR)
    if verbose >= 2:
        os.environ.setdefault("SPARK_CONF_DIR", "")  # keep Spark's own log4j config: show its logs


def _print_error(exc: BatchInferError) -> None:
    from batchinfer.redaction import REDACTOR

    REDACTOR.scrub(exc)
    problems = getattr(exc, "problems", [])
    headline = exc.message.split(": ", 1)[0] if problems else exc.message  # the problems follow, one a line
    kind = "" if exc.kind == "error" else f"{exc.kind} "
    print(f"batchinfer: {kind}error: {headline}", file=sys.stderr)
    for path, msg in problems:
        print(f"  - {path}: {msg}", file=sys.stderr)
    if exc.hint:
        print(f"  fix: {exc.hint}", file=sys.stderr)
    spark_log = getattr(getattr(exc, "result", None), "manifest", {}).get("spark_log")
    if spark_log:  # Spark's own trace of the failure is there, not on the console
        print(f"  log: {spark_log}", file=sys.stderr)
    result = getattr(exc, "result", None)
    if result is not None:  # after the error and its fix: where the run's report is
        from batchinfer.report_html import report_location

        where = report_location(result)
        if where:
            print(f"  report: {where}", file=sys.stderr)


def cmd_run(args) -> int:
    from batchinfer.job import Job
    from batchinfer.progress import progress_reporter
    from batchinfer.report import summary_text
    from batchinfer.spark_conf import parse_conf_args

    spark_conf = parse_conf_args(args.spark_conf)
    job = Job.from_yaml(args.config, overrides=args.overrides, overlays=args.overlay, env=args.env)
    job.spark_conf = spark_conf
    from batchinfer import faults

    faults.crash_once()  # test-only switch, off unless BATCHINFER_TEST_CRASH_ONCE is set
    if args.sample_fraction is not None and not (0 < args.sample_fraction <= 1):
        raise ConfigError(
            "--sample-fraction must be in (0, 1]", problems=[("--sample-fraction", str(args.sample_fraction))]
        )
    preexisting = _active_spark()  # a caller's session (tests, notebooks) is theirs to stop
    try:
        with progress_reporter(enabled=not args.quiet and not args.json) as progress:
            try:
                result = job.run(
                    dry_run=args.dry_run or None,
                    sample_fraction=args.sample_fraction,
                    progress=progress,
                    attempt=args.attempt,
                    keep_staging=args.keep_staging,
                )
            except BatchInferError as exc:
                res = getattr(exc, "result", None)
                if res is not None:
                    # A manifest that cannot be written is a warning here: the job's own error
                    # (and its exit code) is what the caller must see.
                    _emit_manifest(args, res.manifest, res.manifest_path)
                    if not args.json:
                        _print_checks(res.manifest, file=sys.stderr)
                raise
        written = _emit_manifest(args, result.manifest, result.manifest_path)
        if not args.quiet and not args.json:
            _print_checks(result.manifest)
            print(summary_text(result.manifest))
            _print_report_location(result)
        return EXIT_OK if written else EXIT_MANIFEST_NOT_WRITTEN
    finally:
        if preexisting is None:
            _stop_spark()


def _active_spark():
    if "pyspark" not in sys.modules:  # never import Spark just to look
        return None
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def _stop_spark() -> None:
    """Stop the SparkSession this run started: executors shut down cleanly (no local-cluster
    "Failed to launch executor" noise after a successful job) and the driver exits at once."""
    active = _active_spark()
    if active is not None:
        try:
            active.stop()
        except Exception as exc:  # the run's outcome is decided; a failing stop must not change it
            log.debug("stopping Spark failed: %s", exc)


def _print_report_location(result, file=None) -> None:
    from batchinfer.report_html import report_location

    where = report_location(result)
    if where:
        print(f"  report        {where}", file=file or sys.stdout)


def _write_manifest_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a manifest), creating parents."""
    target = os.path.abspath(path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _emit_manifest(args, manifest: dict, record_path: str | None = None) -> bool:
    """Print (``--json``) and write (``--manifest-out``) the manifest; False if the file failed."""
    from batchinfer.redaction import REDACTOR

    text = json.dumps(REDACTOR.data(manifest), indent=2, default=str)
    if args.json:
        print(text)
    path = getattr(args, "manifest_out", None)
    if not path:
        return True
    try:
        _write_manifest_file(path, text)
    except OSError as exc:
        where = f"; the manifest is at {record_path}" if record_path else ""
        done = {
            "succeeded": "the run succeeded and its output is committed",
            "dry_run": "the dry run succeeded",
        }.get(manifest.get("status"), f"the run ended with status {manifest.get('status')}")
        print(
            f"batchinfer: warning: {done}, but --manifest-out {path} could not be written "
            f"({exc.strerror or exc}){where}",
            file=sys.stderr,
        )
        return False
    return True


def _print_checks(manifest: dict, file=None) -> None:
    """The checks table (expectation, column, observed, unexpected %, severity, status)."""
    outcomes = manifest.get("checks", {}).get("outcomes")
    if not outcomes:
        return
    from batchinfer.checks.gate import CheckOutcome
    from batchinfer.checks.quality import format_outcomes_table

    objs = [CheckOutcome(**{k: v for k, v in o.items() if k != "status"}) for o in outcomes]
    # Drift yields several rows per column: show the ones that did not pass, then one line.
    drift_stages = ("drift", "prediction_drift")
    shown = [o for o in objs if o.stage not in drift_stages or not o.passed]
    if shown:  # a passing drift-only run has no table rows: the drift line below says it all
        print(format_outcomes_table(shown), file=file or sys.stdout)
    drift = [
        o
        for o in objs
        if o.stage in drift_stages
        and o.check not in ("null_rate_increase", "unseen_category_share", "drifted_column_share")
    ]
    if drift:
        flagged = sorted({o.column for o in drift if not o.passed and o.column})
        print(
            f"drift: {len(drift)} columns checked ({', '.join(sorted({o.check for o in drift}))}); "
            f"{len(flagged)} flagged{': ' + ', '.join(flagged) if flagged else ''}",
            file=file or sys.stdout,
        )


def cmd_validate(args) -> int:
    from batchinfer.job import Job

    job = Job.from_yaml(args.config, overrides=args.overrides, overlays=args.overlay, env=args.env)
    try:
        plan = job.plan()
        from batchinfer.commands import validate_extensions

        validate_extensions(job, plan)
    finally:
        job.release_hadoop()  # a store only Hadoop reaches started Spark for the plan
    from batchinfer import engines

    choice = engines.resolve(job.config)  # what `run` would use (no session passed in)
    if args.json:
        from batchinfer.redaction import REDACTOR

        print(
            json.dumps(REDACTOR.data({**plan.summary(), "engine": choice.to_dict()}), indent=2, default=str)
        )
    else:
        sel = plan.selection
        print(
            f"config OK: job {job.config.job}; {sel.rows:,} rows in {len(sel.files)} files "
            f"({len(sel.partitions)} partitions); model {plan.model.sha256[:12]} "
            f"({len(plan.spec.inputs)} inputs → {len(plan.spec.outputs)} outputs)"
        )
        print(f"engine: {choice.name} ({choice.reason})")
        print(f"batches: {plan.batch_policy.describe()}")
        for note in plan.notes:
            if note.startswith("storage:") and plan.storage:  # the Hadoop fallback, as the manifest says
                print(note)
    from batchinfer.io.storage import plain_parquet_warning

    if job.config.output.format == "parquet" and plain_parquet_warning(job.config.output.path):
        print(f"batchinfer: warning: {plain_parquet_warning(job.config.output.path)}", file=sys.stderr)
    return EXIT_OK


def cmd_config_show(args) -> int:
    from batchinfer.config import load_config_full, redact

    loaded = load_config_full(args.config, overrides=args.overrides, overlays=args.overlay, env=args.env)
    data = redact(loaded.config.model_dump(mode="json"), loaded.secrets)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        import yaml

        print(f"# resolved from: {', '.join(loaded.sources)}")
        print(yaml.safe_dump(data, sort_keys=False), end="")
    return EXIT_OK


def _open_with_hadoop(args) -> None:
    """``unlock``/``recover`` on a store pyarrow cannot open: through a classic Spark driver."""
    from batchinfer.io import storage

    conf = {}
    if getattr(args, "spark_conf", None):
        from batchinfer.spark_conf import parse_conf_args

        conf = parse_conf_args(args.spark_conf)
    storage.configure(storage.StorageOptions.from_spark_conf(conf))
    if not storage.needs_hadoop(args.output) or storage.hadoop_session() is not None:
        return
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("batchinfer-" + args.command)
    for key, value in conf.items():
        builder = builder.config(key, value)
    storage.use_hadoop(builder.getOrCreate())  # spark-defaults.conf, HADOOP_CONF_DIR apply


def cmd_unlock(args) -> int:
    from batchinfer.io.sink import OutputTable

    _open_with_hadoop(args)
    holder = OutputTable(args.output).force_unlock()
    if holder is None:
        print(f"{args.output}: no lock held")
    else:
        print(
            f"{args.output}: cleared the lock of run {holder.get('run_id')} (host {holder.get('host')}, "
            f"pid {holder.get('pid')}, since {holder.get('since')})"
        )
    return EXIT_OK


def cmd_recover(args) -> int:
    from batchinfer.io.sink import OutputTable
    from batchinfer.job import new_run_id

    _open_with_hadoop(args)
    table = OutputTable(args.output)
    run_id = new_run_id()
    table.acquire_lock(run_id, "recover")
    try:
        actions = table.recover(current_run=run_id)
    finally:
        table.release_lock(run_id)
    print("\n".join(actions) if actions else f"{args.output}: nothing to recover")
    return EXIT_OK


def cmd_demo(args) -> int:
    from batchinfer.demo import run_demo

    return run_demo(args.dir, rows=args.rows, as_json=args.json)


def dispatch(args, parser) -> int:
    if args.version:
        from batchinfer import __version__

        print(__version__)
        return EXIT_OK
    handlers = {
        "run": cmd_run,
        "validate": cmd_validate,
        "unlock": cmd_unlock,
        "recover": cmd_recover,
        "demo": cmd_demo,
    }
    if args.command == "config":
        if args.config_command == "show":
            return cmd_config_show(args)
        parser.parse_args(["config", "--help"])
    if args.command in handlers:
        return handlers[args.command](args)
    handler = getattr(args, "handler", None)
    if handler is not None:
        return handler(args)
    parser.print_help()
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    try:
        return dispatch(args, parser)
    except BatchInferError as exc:
        _print_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        print("batchinfer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: keep the traceback, it is a bug or an infrastructure failure
        log.exception("batchinfer: unexpected error: %s", exc)
        return EXIT_UNEXPECTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
