"""Run the stages in order: plan → read → checks → score → stage → gate → commit → report.

>>> from batchinfer import run_job
>>> result = run_job("conf/demo.yaml", overrides=["input.partitions.ds=2026-11-28"])  # doctest: +SKIP
>>> result.rows_out  # doctest: +SKIP
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from batchinfer import errors, faults
from batchinfer.config import JobConfig, LoadedConfig, load_config_full, redact
from batchinfer.errors import BatchInferError
from batchinfer.plan import JobPlan, build_plan, check_output_location
from batchinfer.redaction import scrubs_errors

_TYPED_ERROR = re.compile(r"batchinfer\.errors\.(\w+): (.+?)(?:\n|$)")
_FAILED_READ = re.compile(r"Encountered error while reading file (\S+?)\.?(?:\s|$)")


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


class Timings:
    """Wall-clock seconds per stage, in the order the stages ran."""

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str, progress: Callable[[str], None] | None = None):
        if progress:
            progress(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.values[name] = round(self.values.get(name, 0.0) + time.perf_counter() - t0, 3)

    def total(self) -> float:
        return round(time.perf_counter() - self._start, 3)


def reraise_executor_error(exc: BaseException) -> None:
    """Errors raised inside executors arrive wrapped in Spark exceptions: restore their type."""
    text = str(exc)
    match = _TYPED_ERROR.search(text)
    if match and hasattr(errors, match.group(1)):
        cls = getattr(errors, match.group(1))
        if isinstance(cls, type) and issubclass(cls, BatchInferError):
            message = match.group(2).strip()
            hint = None
            if message.endswith(")") and " (fix: " in message:
                message, _, hint = message.rpartition(" (fix: ")
                hint = hint[:-1]
            raise cls(message, hint=hint) from exc
    # A data page Spark cannot decode (the footer was fine at plan time): name the file.
    match = _FAILED_READ.search(text)
    if match:
        raise errors.InputDataError(
            f"corrupt or unreadable Parquet file {match.group(1)} (Spark failed reading its data pages)",
            hint="repair or remove the file; input.on_corrupt_file: skip only skips files whose footer "
            "is unreadable",
        ) from exc


@dataclass
class JobResult:
    """What a run produced; renders as a table in Jupyter."""

    status: str  # succeeded | dry_run | gate_failed | failed
    run_id: str
    manifest: dict
    output_path: str | None
    manifest_path: str | None = None
    staged_path: str | None = None  # dry runs: where the scored rows were left for inspection
    error: BatchInferError | None = None
    extras: dict = field(default_factory=dict)

    @property
    def rows_out(self) -> int:
        return int(self.manifest.get("rows_out", 0))

    @property
    def rows_in(self) -> int:
        return int(self.manifest.get("rows_in", 0))

    @property
    def succeeded(self) -> bool:
        return self.status in ("succeeded", "dry_run")

    def scored_rows(self, n: int = 10):
        """A pandas DataFrame of up to ``n`` scored rows (from the output, or the dry run's staging)."""
        import pyarrow.dataset as ds

        path = self.staged_path or self.output_path
        if path is None:
            return None
        dataset = ds.dataset(path, format="parquet", partitioning="hive", ignore_prefixes=["_", "."])
        return dataset.head(n).to_pandas()

    def _repr_html_(self) -> str:
        from batchinfer.report_html import render_report

        return render_report(self.manifest, self.extras.get("attachments"), standalone=False)

    def __repr__(self) -> str:
        return (
            f"JobResult(status={self.status!r}, run_id={self.run_id!r}, rows_in={self.rows_in}, "
            f"rows_out={self.rows_out}, output={self.output_path!r})"
        )


class Job:
    """A loaded, validated job config; ``plan()`` checks it, ``run()`` executes it."""

    def __init__(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        # Spark properties from the command line (`batchinfer run --conf`): they beat the config's
        # spark.conf (batchinfer/spark_conf.py).
        self.spark_conf: dict[str, str] = {}
        self._gx_import = None  # the thread importing Great Expectations during a run

    @classmethod
    def from_yaml(
        cls,
        path,
        *,
        overrides: Sequence[str] = (),
        overlays: Sequence[str] = (),
        env: str | None = None,
    ) -> Job:
        return cls(load_config_full(path, overrides=overrides, overlays=overlays, env=env))

    @classmethod
    def from_config(cls, config: JobConfig | dict, *, overrides: Sequence[str] = ()) -> Job:
        data = config.model_dump(mode="json") if isinstance(config, JobConfig) else config
        return cls(load_config_full(data, overrides=overrides))

    @property
    def config(self) -> JobConfig:
        return self.loaded.config

    @scrubs_errors
    def plan(self) -> JobPlan:
        """Load the model and list the input (no Spark), then check the config against both."""
        from batchinfer.io.source import discover
        from batchinfer.model.artifact import load_model
        from batchinfer.model.card import apply_card, resolve_model_source

        cfg = self.config
        from batchinfer.io import storage

        # spark.hadoop.fs.* settings reach the pyarrow filesystems too (one config for both readers).
        storage.configure(storage.StorageOptions.from_spark_conf({**cfg.spark.conf, **self.spark_conf}))
        fallback = self._open_hadoop_stores()  # stores only Spark's Hadoop FileSystem reaches
        cfg = self.config
        check_output_location(cfg)
        model_path, expected_sha, card = resolve_model_source(cfg.model)
        model = load_model(model_path, expected_sha256=expected_sha)
        needed = list(cfg.input.passthrough)
        for binding in cfg.model.inputs.values():
            needed.extend(c for c in binding.source_columns if c not in needed)
        selection = discover(
            cfg.input.path,
            partitions=cfg.input.partition_filter(),
            needed_columns=needed,
            allow_empty=cfg.input.allow_empty,
            on_corrupt_file=cfg.input.on_corrupt_file,
        )
        plan = build_plan(cfg, model, selection)
        plan.notes.extend(
            storage.storage_notes({"input": cfg.input.path, "model": model_path, "output": cfg.output.path})
        )
        if fallback is not None:
            plan.notes.extend(fallback.notes)
            plan.storage = {
                "hadoop_via_spark_driver": {
                    role: storage.hadoop_served(uri)
                    for role, uri in (
                        ("input", cfg.input.path),
                        ("model", model_path),
                        ("output", cfg.output.path),
                    )
                    if uri and storage.hadoop_served(uri)
                },
                "reader": fallback.reader,
                "writer": fallback.writer,
            }
        if cfg.output.format == "parquet" and storage.plain_parquet_warning(cfg.output.path):
            plan.notes.append(storage.plain_parquet_warning(cfg.output.path))
        plan.card = card
        return apply_card(plan, card)  # canary batch, batch-dependence pinning

    def _open_hadoop_stores(self):
        """Where pyarrow cannot open the input, model or output: open them through classic Spark.

        Starts the Spark engine now (planning reads footers and the model through the driver's
        Hadoop FileSystem), switches ``runtime.reader`` / ``output.writer`` from auto to spark
        (the tasks cannot reach the driver's JVM) and returns the
        :class:`~batchinfer.io.storage.IoDecision`; None when pyarrow reaches every location.
        A one-line ConfigError when the engine has no driver JVM or pyarrow was asked for.
        """
        from batchinfer import engines
        from batchinfer.errors import ConfigError
        from batchinfer.io import storage

        cfg = self.config
        uris = {"input": cfg.input.path, "model": cfg.model.path or "", "output": cfg.output.path}
        if cfg.quarantine.enabled and cfg.quarantine.path:
            uris["quarantine"] = cfg.quarantine.path
        problems = {role: storage.pyarrow_problem(uri) for role, uri in uris.items() if uri}
        blocked = [role for role, problem in problems.items() if problem]
        if not blocked:
            return None
        role, uri = blocked[0], uris[blocked[0]]
        what = f"{role} {uri}: {problems[role]}"
        native = (
            ", or install a Hadoop client with libhdfs for pyarrow (docs/storage.md)"
            if uri.lower().startswith("hdfs://")
            else ""
        )
        choice = engines.resolve(cfg, getattr(self, "_session", None))
        if choice.name != "spark":
            raise ConfigError(
                f"{what}; only classic Spark's driver can open it (through Hadoop), but the engine is "
                f"{choice.name} ({choice.reason})",
                hint=f"use runtime.engine: spark{native}",
            )
        if problems.get("output") and cfg.output.format != "parquet":
            raise ConfigError(
                f"output.format {cfg.output.format} on {uris['output']} ({problems['output']}): "
                f"the {cfg.output.format} writer has no Hadoop FileSystem fallback",
                hint="use output.format: parquet there (committed through Spark's Hadoop FileSystem), "
                "or a store the table format's own client opens",
            )
        decision = storage.spark_fallback(
            uris,
            cfg.runtime.reader,
            cfg.output.writer,
            {r: problems.get(r) is None for r in ("input", "output")},
        )
        if decision.blocked:
            where = "input" if problems.get("input") and cfg.runtime.reader == "pyarrow" else "output"
            field_name = "runtime.reader" if where == "input" else "output.writer"
            raise ConfigError(
                f"{field_name} is pyarrow, but pyarrow cannot open the {where} {uris[where]} "
                f"({problems[where]})",
                hint=f"set {field_name}: auto (or spark): Spark's {'reader' if where == 'input' else 'writer'} "
                f"opens it through Hadoop{native}",
            )
        engine = getattr(self, "_engine", None)
        if engine is None or getattr(engine, "name", None) != "spark":
            self._close_engine()
            engine = self._engine = engines.start(
                choice, cfg, spark=getattr(self, "_session", None), command_line_conf=self.spark_conf
            )
        storage.use_hadoop(engine.session)
        self._uses_hadoop = True
        if (cfg.runtime.reader, cfg.output.writer) != (decision.reader, decision.writer):
            self.loaded.config = cfg.model_copy(
                update={
                    "runtime": cfg.runtime.model_copy(update={"reader": decision.reader}),
                    "output": cfg.output.model_copy(update={"writer": decision.writer}),
                }
            )
        return decision

    def release_hadoop(self) -> None:
        """Stop opening stores through this job's Spark session (after a run or a validate)."""
        if getattr(self, "_uses_hadoop", False):
            from batchinfer.io import storage

            storage.use_hadoop(None)
            self._uses_hadoop = False

    @scrubs_errors
    def run(
        self,
        *,
        spark=None,
        dry_run: bool | None = None,
        sample_fraction: float | None = None,
        progress: Callable[[str], None] | None = None,
        session_factory=None,
        commit_pause=None,
        attempt: str | None = None,
        keep_staging: bool = True,
    ) -> JobResult:
        """Run the job. Expected failures raise typed errors; a failed gate raises GateFailedError.

        The manifest of a failed run (after planning) is still written under
        ``<output>/_batchinfer/runs/<run_id>/`` and attached to the error as ``error.result``.
        ``attempt`` (a scheduler's id for this try) is recorded in the manifest. A dry run's
        scored rows stay in a temporary directory (``result.staged_path``) unless
        ``keep_staging=False`` (what the CLI does without ``--keep-staging``).
        """
        from batchinfer.io.sink import OutputTable
        from batchinfer.report import ManifestBuilder

        cfg = self.config
        dry_run = cfg.runtime.dry_run if dry_run is None else dry_run
        sample_fraction = sample_fraction if sample_fraction is not None else cfg.input.sample_fraction
        run_id = new_run_id()
        timings = Timings()
        manifest = ManifestBuilder(run_id, self.loaded, dry_run=dry_run)
        if attempt:
            manifest.extra["attempt"] = attempt
        from batchinfer import engines

        self._session = spark
        self._engine = engines.prestart(cfg, spark)  # embedded workers import while we plan
        from batchinfer.checks import runner, single_pass

        # The single pass needs Great Expectations on the driver (seconds to import), in a thread.
        # Beside the embedded engine's workers, or a Spark session already running, it overlaps
        # planning; a Spark session still to start covers it better (seconds of JVM start), so it
        # starts after planning there, which it would slow by holding the GIL.
        gx_early = self._engine is not None or spark is not None
        self._gx_import = single_pass.warm_up() if gx_early and runner.checks_configured(cfg) else None
        try:
            with timings.stage("plan", progress):
                plan = self.plan()
                # Everything `batchinfer validate` checks (expectations, drift profile, device) fails
                # here, before Spark starts, not in a task after retries.
                from batchinfer.commands import validate_extensions

                validate_extensions(self, plan)
        except BaseException:
            self._close_engine()
            self.release_hadoop()
            raise
        cfg = self.config  # a store only Hadoop reaches switched reader/writer to spark
        manifest.set_plan(plan)
        manifest.notes.extend(plan.notes)
        if plan.storage:
            manifest.extra["storage"] = plan.storage
        if hasattr(progress, "set_rows"):  # rows/s and ETA in the progress display
            progress.set_rows(int(plan.selection.rows * (sample_fraction or 1.0)))

        table = OutputTable(cfg.output.path)
        scratch = None
        if dry_run:
            scratch = tempfile.mkdtemp(prefix=f"batchinfer-dryrun-{run_id}-")
            stage_table = OutputTable(scratch)
        else:
            stage_table = table
            try:
                table.acquire_lock(run_id, cfg.job)
            except BaseException:
                self._close_engine()
                self.release_hadoop()
                raise
        try:
            if not dry_run:
                manifest.recovered = table.recover(current_run=run_id)
            result = self._execute(
                plan,
                run_id,
                table,
                stage_table,
                manifest,
                timings,
                spark=spark,
                dry_run=dry_run,
                sample_fraction=sample_fraction,
                progress=progress,
                session_factory=session_factory,
                commit_pause=commit_pause,
            )
            result.extras.setdefault("attachments", self._attachments(manifest))  # for the inline report
            return result
        except BaseException as exc:
            err = exc if isinstance(exc, BatchInferError) else None
            status = "gate_failed" if isinstance(exc, errors.GateFailedError) else "failed"
            if not isinstance(exc, (KeyboardInterrupt, SystemExit)):
                if not dry_run:
                    try:
                        table.discard(run_id)
                    except Exception:  # never hide the original error behind a cleanup error
                        pass
                doc = manifest.finish(status, timings, error=exc)
                path = None if dry_run else self._write_records(table, run_id, doc, manifest)
                result = JobResult(status, run_id, doc, table.root.uri, path, error=err)
                result.extras["attachments"] = self._attachments(manifest)
                try:
                    exc.result = result  # type: ignore[attr-defined]
                except AttributeError:
                    pass
            raise
        finally:
            self._close_engine()
            from batchinfer import engines

            engines.finish()
            if not dry_run:
                table.release_lock(run_id)
            elif scratch is not None and not keep_staging:
                import shutil

                shutil.rmtree(scratch, ignore_errors=True)
            self.release_hadoop()

    def _execute(
        self,
        plan,
        run_id,
        table,
        stage_table,
        manifest,
        timings,
        *,
        spark,
        dry_run,
        sample_fraction,
        progress,
        session_factory,
        commit_pause,
    ) -> JobResult:
        from batchinfer import spark as spark_mod
        from batchinfer.io.sink import OutputTable
        from batchinfer.io.source import read_dataframe
        from batchinfer.scoring.udf import score_dataframe

        cfg = self.config
        if not plan.selection.files:
            # allow_empty and nothing selected: a successful run that scores and writes nothing.
            manifest.notes.append("no input rows selected (input.allow_empty: true); nothing written")
            doc = manifest.finish("dry_run" if dry_run else "succeeded", timings)
            path = None if dry_run else self._write_records(table, run_id, doc, manifest)
            return JobResult(doc["status"], run_id, doc, table.root.uri, path)

        from batchinfer.checks import runner, single_pass

        gx_import = self._gx_import  # started by run(), before planning, or now
        if gx_import is None and runner.checks_configured(cfg):
            gx_import = self._gx_import = single_pass.warm_up()

        from batchinfer import engines

        choice = engines.resolve(cfg, spark)
        manifest.extra["engine"] = choice.to_dict()
        log_offset = spark_mod.driver_log_size()  # 0 for a new session: its start-up is logged too
        with timings.stage(engines.start_stage(choice), progress):
            engine = self._engine = engines.start(
                choice, cfg, spark=spark, command_line_conf=self.spark_conf, prestarted=self._engine
            )
        session = engine.session  # None for the embedded engine
        manifest.spark = engine.describe(cfg, self.spark_conf)
        from batchinfer.scoring.batch_size import policy_for_session

        # batch_rows auto: the workers' memory budget from the engine's real settings.
        manifest.extra["batching"] = policy_for_session(plan, session, engine=choice.name).to_dict()
        if session is not None and spark_mod.driver_log():  # Spark logs to a file: keep this run's part
            manifest.spark_log_offset = log_offset
            manifest.extra["spark_log"] = (
                spark_mod.driver_log() if dry_run else table.run_dir(run_id).join("spark.log").uri
            )
        engine.begin(run_id, cfg.job)

        from batchinfer.scoring.rowgroups import reader_for, score_row_groups

        checks_on = runner.checks_configured(cfg)
        # One pass (checks/single_pass.py): the scoring tasks compute every gate's metrics and
        # split off quarantined rows; otherwise (Spark writer) the checks run as Spark jobs.
        one_pass = None
        if checks_on and single_pass.applies(cfg):
            quarantine_table = _quarantine_table(cfg, stage_table, dry_run)
            with timings.stage("checks_plan", progress):
                one_pass = single_pass.prepare(
                    session,
                    plan,
                    run_id=run_id,
                    out_schema_fields=_out_schema(plan),
                    quarantine_table=quarantine_table,
                    warm=gx_import,
                )
        needs_input = checks_on and one_pass is None and runner.input_checks_configured(cfg)
        reader = reader_for(cfg)
        manifest.extra["reader"] = reader
        if sample_fraction is not None and sample_fraction < 1.0:
            manifest.notes.append(f"scored a {sample_fraction:.2%} sample of the input rows")
        df = None
        if reader == "spark" or needs_input:
            if reader == "spark":
                columns = list(plan.spec.read_columns)
                if one_pass is not None:
                    columns += [c for c in one_pass.extra_columns if c not in columns]
                elif checks_on:
                    columns += [c for c in runner.input_columns_needed(cfg, plan) if c not in columns]
            else:
                # The workers read the rows they score themselves; Spark reads (and caches) only the
                # columns the input expectations look at.
                columns = runner.expectation_columns(cfg) or list(plan.spec.read_columns)
            with timings.stage("read", progress):  # Spark lists the files and reads their schema here
                df = read_dataframe(session, plan.selection, columns)
            if sample_fraction is not None and sample_fraction < 1.0:
                df = df.sample(fraction=sample_fraction, seed=17)

        outcomes: list = []
        cached = None
        if one_pass is None:
            quarantine_table = None
        if needs_input:
            from pyspark import StorageLevel

            # GX runs a dozen Spark jobs over these rows (and the Spark reader scores them too):
            # read the Parquet once.
            cached = df = df.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            if needs_input:
                if cfg.quarantine.enabled:
                    quarantine_table = OutputTable(
                        stage_table.root.join("_quarantine").uri if dry_run else cfg.quarantine.path
                    )
                with timings.stage("input_checks", progress):
                    df, stage = runner.run_input_checks(
                        session, df, plan, run_id=run_id, quarantine_table=quarantine_table
                    )
                outcomes.extend(stage.outcomes)
                _record_checks(manifest, stage, outcomes)
                _enforce_gate(outcomes, "input")

            counter, reference = (
                runner.inline_drift_counter(session, plan) if checks_on and one_pass is None else (None, None)
            )
            drift_kw = {}
            if counter is not None:
                drift_kw = {"extra_columns": counter.features, "wrap": counter.wrap}
            if one_pass is not None:
                drift_kw = {"extra_columns": one_pass.extra_columns}
            staging = stage_table.staging(run_id)
            sink = None
            if cfg.output.writer in ("auto", "pyarrow"):
                from batchinfer.io.direct_writer import DirectParquetSink

                lineage = cfg.output.lineage
                sink = DirectParquetSink(
                    staging_uri=staging.uri,
                    partition_by=tuple(cfg.output.partition_by),
                    compression=None if cfg.output.compression == "none" else cfg.output.compression,
                    lineage=tuple(
                        (name, value)
                        for name, value in (
                            (lineage.model_digest, plan.model.sha256),
                            (lineage.run_id, run_id),
                        )
                        if name
                    ),
                    checks=one_pass.checks if one_pass is not None else None,
                )
                drift_kw["sink"] = sink
            manifest.extra["writer"] = "pyarrow" if sink is not None else "spark"
            scored = None
            if reader == "pyarrow" and sink is not None and counter is None:
                # The one task (batchinfer/task.py), scheduled by the engine; its results are data.
                from batchinfer.scoring.rowgroups import row_group_tasks
                from batchinfer.task import ModelBytes, ScoringTask

                task = ScoringTask.from_plan(
                    plan,
                    sink=sink,
                    model=ModelBytes(plan.model.content),
                    extra_columns=drift_kw.get("extra_columns", ()),
                    sample_fraction=sample_fraction,
                    session_factory=session_factory,
                )
                run_tasks = lambda: engine.run(task, row_group_tasks(plan))  # noqa: E731
            elif reader == "pyarrow":
                # Driver side only: the row-group task list and the model broadcast.
                scored = score_row_groups(
                    session,
                    plan,
                    run_id=run_id,
                    sample_fraction=sample_fraction,
                    session_factory=session_factory,
                    task_errors=True,
                    **{k: v for k, v in drift_kw.items() if k != "sink"},
                )
            else:
                scored = score_dataframe(
                    session,
                    df,
                    plan,
                    run_id=run_id,
                    session_factory=session_factory,
                    task_errors=True,
                    **drift_kw,
                )
            with timings.stage("score_and_stage", progress):
                written = None
                try:
                    if scored is None:
                        written = run_tasks()
                    elif sink is not None:
                        written = [r.asDict() for r in scored.df.collect()]
                    else:
                        writer = scored.df.write.mode("overwrite").option(
                            "compression",
                            "uncompressed" if cfg.output.compression == "none" else cfg.output.compression,
                        )
                        if cfg.output.partition_by:
                            writer = writer.partitionBy(*cfg.output.partition_by)
                        writer.parquet(staging.uri)
                except Exception as exc:
                    reraise_executor_error(exc)
                    raise
                if written is not None:  # the tasks' results: files, partial metrics, worker stats
                    from batchinfer.task import TaskResults

                    results = TaskResults.from_rows(written)
                    try:  # deterministic errors come back as data, never retried
                        results.raise_task_errors(log=lambda records: _log_task_errors(session, records))
                    finally:
                        manifest.workers = results.manifest_workers()  # a failed run's too (canary)
                else:
                    try:
                        scored.raise_task_errors()
                    finally:
                        manifest.workers = scored.stats.value
                if sink is not None:
                    sink.publish(written)
                    if one_pass is not None and one_pass.quarantine_sink is not None:
                        one_pass.quarantine_sink.publish(written, kind="quarantine")
        finally:
            if cached is not None:
                cached.unpersist()
        if scored is not None:
            scored.model_broadcast.unpersist(blocking=False)

        if one_pass is not None:
            with timings.stage("checks", progress):
                stages = single_pass.decide(
                    session,
                    one_pass,
                    written,
                    plan,
                    staging_uri=staging.uri,
                    read_input=lambda: (
                        _clean_input(session, plan, sample_fraction)
                        if session is not None
                        else single_pass.clean_input_frame(plan, one_pass.checks, sample_fraction)
                    ),
                )
            for stage in stages:
                outcomes.extend(stage.outcomes)
                _record_checks(manifest, stage, outcomes)
            manifest.checks["single_pass"] = True
            manifest.checks["in_task_seconds"] = one_pass.in_task_seconds
            # "cache": the tasks' metric list came from an earlier run's plan (checks/plan_cache.py)
            # and started before Great Expectations was imported; "gx": planned by GX first.
            manifest.checks["plan_source"] = one_pass.plan_source
        if counter is not None:
            with timings.stage("drift", progress):
                stage = runner.evaluate_inline_drift(plan, counter, reference)
            outcomes.extend(stage.outcomes)
            _record_checks(manifest, stage, outcomes)
        if checks_on and one_pass is None and (cfg.checks.output or cfg.checks.output_suite):
            staged_df = session.read.option("basePath", staging.uri).parquet(staging.uri)
            with timings.stage("output_checks", progress):
                stage = runner.run_output_checks(session, staged_df, plan)
            outcomes.extend(stage.outcomes)
            _record_checks(manifest, stage, outcomes)
        if checks_on:
            c = cfg.checks
            expectations = bool(c.input or c.input_suite or c.output or c.output_suite)
            if not expectations and not cfg.quarantine.enabled:  # checks_on: drift is all there is
                stage_label = "drift"  # a drift-only gate says so
            elif one_pass is not None:
                stage_label = "single-pass"
            else:
                stage_label = "output" if (c.output or c.output_suite) or counter is None else "drift"
            _enforce_gate(outcomes, stage_label)
        manifest.extra["spark_jobs"] = engine.jobs_started(run_id)

        if dry_run:
            with timings.stage("commit", progress):
                staged = stage_table.staged_units(run_id, cfg.output.partition_by)
            doc = manifest.finish_dry_run(timings, staged, stage_table)
            return JobResult("dry_run", run_id, doc, table.root.uri, None, staged_path=staging.uri)

        with timings.stage("commit", progress):
            if cfg.output.format != "parquet":  # delta, iceberg: one transaction of the format
                from batchinfer.io.formats import commit_table_format

                committed, record = commit_table_format(
                    cfg.output,
                    table,
                    run_id,
                    model_sha256=plan.model.sha256,
                    pause=commit_pause or faults.driver_pause_hook(),
                )
                manifest.extra[cfg.output.format] = record
            else:
                committed = table.commit(
                    run_id,
                    mode=cfg.output.mode,
                    partition_by=cfg.output.partition_by,
                    # Test-only BATCHINFER_TEST_PAUSE_AT switch when no seam is given (batchinfer/faults.py).
                    pause=commit_pause or faults.driver_pause_hook(),
                )
        manifest.set_commit(committed)
        if quarantine_table is not None:
            # Only after every gate passed and the output is committed: a run the output never
            # accepted leaves the quarantine table as it was.
            with timings.stage("quarantine_commit", progress):
                _commit_quarantine(quarantine_table, run_id, cfg)
        doc = manifest.finish("succeeded", timings)
        path = self._write_records(table, run_id, doc, manifest)
        return JobResult("succeeded", run_id, doc, table.root.uri, path)

    def _close_engine(self) -> None:
        engine, self._engine = getattr(self, "_engine", None), None
        if engine is not None and hasattr(engine, "close"):  # the embedded engine's workers
            engine.close()

    def _attachments(self, manifest) -> dict[str, str]:
        """The run's files besides the manifest (GX results, drift counts), secrets redacted."""
        return {name: redact(content, self.loaded.secrets) for name, content in manifest.attachments.items()}

    def _write_records(self, table, run_id: str, doc: dict, manifest) -> str | None:
        import json

        text = json.dumps(redact(doc, self.loaded.secrets), indent=2, sort_keys=False, default=str)
        try:
            path = table.write_run_file(run_id, "manifest.json", text)
            table.write_latest(text)
            files = self._attachments(manifest)
            for name, content in files.items():
                table.write_run_file(run_id, name, content)
            if manifest.spark_log_offset is not None:
                from batchinfer import spark as spark_mod

                table.write_run_file(
                    run_id, "spark.log", spark_mod.read_driver_log(manifest.spark_log_offset)
                )
        except OSError:
            return None
        from batchinfer.report_html import write_report

        write_report(table, run_id, doc, files)  # report.html next to the manifest; never fails the run
        return path


def _log_task_errors(session, records: list[dict]) -> None:
    from batchinfer.scoring.udf import log_task_errors

    log_task_errors(session, records)


def _quarantine_table(cfg: JobConfig, stage_table, dry_run: bool):
    if not cfg.quarantine.enabled:
        return None
    from batchinfer.io.sink import OutputTable

    return OutputTable(stage_table.root.join("_quarantine").uri if dry_run else cfg.quarantine.path)


def _out_schema(plan):
    """The scored batches' Arrow schema (passthrough + outputs), from the plan alone."""
    import pyarrow as pa

    from batchinfer.scoring.tensors import output_arrow_schema

    schema = plan.selection.schema
    return output_arrow_schema(plan.spec, pa.schema([schema.field(c) for c in plan.spec.read_columns]))


def _clean_input(session, plan, sample_fraction):
    """The input as GX on Spark sees it (quarantined rows removed): only for fallback expectations."""
    from batchinfer.checks.quarantine import split_rows
    from batchinfer.io.source import read_dataframe

    cfg = plan.config
    keys = list(plan.selection.partition_keys)
    columns = [f.name for f in plan.selection.schema if f.name not in keys] + keys
    df = read_dataframe(session, plan.selection, columns)
    if sample_fraction is not None and sample_fraction < 1.0:
        df = df.sample(fraction=sample_fraction, seed=17)
    if cfg.quarantine.enabled:
        df, _ = split_rows(
            df,
            feature_columns=plan.spec.feature_columns,
            specs=cfg.checks.input,
            rules=cfg.quarantine.rules,
            reasons=cfg.quarantine.reasons,
        )
    return df


def _commit_quarantine(quarantine_table, run_id: str, cfg: JobConfig) -> None:
    """Swap in the quarantined rows this run staged (the same partition protocol as the output)."""
    quarantine_table.acquire_lock(run_id, cfg.job)
    try:
        quarantine_table.recover(current_run=run_id)
        quarantine_table.commit(
            run_id,
            mode=cfg.output.mode if cfg.output.mode != "error_if_exists" else "overwrite_partitions",
            partition_by=cfg.output.partition_by,
        )
    finally:
        quarantine_table.release_lock(run_id)


def _record_checks(manifest, stage, outcomes: list) -> None:
    from batchinfer.checks.gate import decide

    decision = decide(outcomes)
    checks = manifest.checks
    checks.update(stage.summary)
    checks["gate"] = decision.summary()
    checks["outcomes"] = [o.to_dict() for o in outcomes]
    checks.setdefault("seconds", {}).update(stage.seconds)
    manifest.attachments.update(stage.attachments)


def _enforce_gate(outcomes: list, stage: str) -> None:
    """All checks of a stage have run: fail now if any fail-severity check is unmet."""
    from batchinfer.checks.gate import decide

    decision = decide(outcomes)
    if not decision.passed:
        raise errors.GateFailedError(
            f"check gate failed after the {stage} checks ({len(decision.failures)} failed, "
            f"{len(decision.warnings)} warnings): {decision.describe_failures()}",
            failures=[o.to_dict() for o in decision.failures],
            hint="inspect the checks table in the run manifest; nothing was written",
        )


def run_job(
    config: str | Path | dict | JobConfig,
    *,
    overrides: Sequence[str] = (),
    env: str | None = None,
    spark=None,
    dry_run: bool | None = None,
    sample_fraction: float | None = None,
    engine: str | None = None,
) -> JobResult:
    """Load a job config (path, mapping or JobConfig) and run it.

    ``engine`` sets ``runtime.engine`` (``"local"``, ``"spark"``, ``"spark-connect"``, ``"auto"``);
    ``spark`` passes a session in (its kind then decides under ``auto``).

    >>> result = run_job("conf/demo.yaml", dry_run=True, sample_fraction=0.05)  # doctest: +SKIP
    >>> result = run_job("conf/demo.yaml", engine="local")  # doctest: +SKIP
    """
    if engine is not None:
        overrides = [*overrides, f"runtime.engine={engine}"]
    if isinstance(config, (str, Path)):
        job = Job.from_yaml(config, overrides=overrides, env=env)
    else:
        job = Job.from_config(config, overrides=overrides)
    return job.run(spark=spark, dry_run=dry_run, sample_fraction=sample_fraction)
