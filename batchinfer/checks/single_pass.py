"""One pass over the data: the scoring task computes everything the gates need.

The task already reads each row group once, holds it as Arrow, scores it and writes it. With
checks on, the same task also (on the batches it holds, :class:`TaskChecks`):

1. splits off the rows that break the quarantine rules and writes them, with their reasons,
   under the quarantine table's staging (attempt directory, so retries count once);
2. computes the partial metrics of every input expectation (on the rows it scores) and every
   output expectation (on the scored rows), and the drift counts of features and predictions;
3. returns them as one ``kind = "metrics"`` row next to its written-file rows: data, not an
   accumulator, so only successful attempts count and Spark Connect can carry it.

The driver (:func:`decide`) merges the partials and lets GX decide each expectation from the
merged metrics (:mod:`batchinfer.checks.partials`); expectations needing exact distinct counts
get one Spark aggregation over the staged output, anything else GX on Spark. One gate decision
follows, then commit or discard as before. The trade: input checks no longer stop a job before
scoring; a failing input costs one pass of compute, and no data is ever read twice.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from batchinfer.checks import partials as P
from batchinfer.checks import plan_cache
from batchinfer.checks.runner import StageChecks

_ROWS_IN, _ROWS_OUT, _ROWS_QUARANTINED, _REASONS = "_rows_in", "_rows_scored", "_rows_quarantined", "_reasons"
_SECONDS = "_seconds"  # time the task spent on checks (split, partials, drift counts)


@dataclass(frozen=True)
class QuarantineSpec:
    """Executor side: what the task splits off and where it writes it."""

    rules: tuple
    reasons: str
    staging_uri: str
    partition_by: tuple[str, ...]
    compression: str | None


@dataclass(frozen=True)
class TaskChecks:
    """Picklable: what one scoring task computes for the gates (see the module docstring)."""

    input_ops: tuple = ()
    output_ops: tuple = ()
    drift_features: tuple[str, ...] = ()
    drift_predictions: tuple[str, ...] = ()
    feature_grid: Any = None
    prediction_grid: Any = None
    quarantine: QuarantineSpec | None = None

    @property
    def quarantines(self) -> bool:
        return self.quarantine is not None

    def new_state(self) -> dict:
        state = {_ROWS_IN: 0, _ROWS_OUT: 0, _ROWS_QUARANTINED: 0, _REASONS: {}, _SECONDS: 0.0}
        state["input"], state["output"] = P.new_state(), P.new_state()
        state["drift"] = (
            self.feature_grid.empty() if self.feature_grid else None,
            self.prediction_grid.empty() if self.prediction_grid else None,
        )
        return state

    def encode(self, state: dict) -> bytes:
        return P.encode(state)

    def quarantine_writer(self, tag: str, part_no: int):
        from batchinfer.io.direct_writer import PartitionedFiles
        from batchinfer.io.filesystem import resolve

        return _LazyQuarantineFiles(self.quarantine, tag, part_no, PartitionedFiles, resolve)

    def bind(self, scorer, state: dict, quarantine_files=None):
        """``scorer`` wrapped: input batches are split and measured, output batches measured."""
        checks = self

        def observed_inputs(batches):
            import pyarrow as pa

            q = checks.quarantine
            if q is not None:  # quarantine.py holds its config models too (pydantic): only if needed
                from batchinfer.checks.quarantine import split_batch

            # pyarrow imports pandas on its first numpy conversion (about 1 s per worker process),
            # which the scorer would pay anyway: do it outside the checks' timed share.
            pa.array([0.0]).to_numpy(zero_copy_only=False)
            for b in batches:
                t0 = time.perf_counter()
                state[_ROWS_IN] += b.num_rows
                if q is not None:
                    b, bad = split_batch(b, q.rules, q.reasons)
                    if bad is not None:
                        state[_ROWS_QUARANTINED] += bad.num_rows
                        reasons = state[_REASONS]
                        for r in bad.column(bad.num_columns - 1).to_pylist():
                            reasons[r] = reasons.get(r, 0) + 1
                        if quarantine_files is not None:
                            quarantine_files.write(bad)
                    if b.num_rows == 0:
                        state[_SECONDS] += time.perf_counter() - t0
                        continue
                if checks.input_ops:
                    P.observe(checks.input_ops, state["input"], b)
                if checks.feature_grid is not None:
                    checks.feature_grid.count_batch(
                        {c: b.column(c) for c in checks.drift_features}, *state["drift"][0]
                    )
                state[_SECONDS] += time.perf_counter() - t0
                yield b

        def measured(batches):
            for out in scorer(observed_inputs(batches)):
                t0 = time.perf_counter()
                state[_ROWS_OUT] += out.num_rows
                if checks.output_ops:
                    P.observe(checks.output_ops, state["output"], out)
                if checks.prediction_grid is not None:
                    checks.prediction_grid.count_batch(
                        {c: out.column(c) for c in checks.drift_predictions}, *state["drift"][1]
                    )
                state[_SECONDS] += time.perf_counter() - t0
                yield out

        return measured


class _LazyQuarantineFiles:
    """Opens the quarantine files only when a task has a broken row (most tasks have none)."""

    def __init__(self, spec: QuarantineSpec, tag: str, part_no: int, files_cls, resolve) -> None:
        self.spec, self.tag, self.part_no = spec, tag, part_no
        self._cls, self._resolve, self._files = files_cls, resolve, None

    def write(self, batch) -> None:
        if self._files is None:
            keys = [k for k in self.spec.partition_by if k in batch.schema.names]
            fields = [f for f in batch.schema if f.name not in keys]
            base = self._resolve(self.spec.staging_uri).join("_attempts", self.tag)
            self._files = self._cls(base, keys, fields, self.spec.compression, (), self.part_no)
        self._files.write(batch)

    def close(self) -> list[tuple[str, int]]:
        return self._files.close() if self._files is not None else []


# --------------------------------------------------------------------------- driver
@dataclass
class SidePlan:
    stage: str  # input | output
    expectations: list | None  # None until GX planned it (a cached plan: after the pass)
    schema: P.SideSchema
    ops: list
    routes: list | None
    seen: P.SideSchema | None = None  # what its tasks see (the routes are planned against it)
    specs: tuple = ()
    suite: str | None = None


@dataclass
class PassPlan:
    """Driver side: the task program plus what the decision needs afterwards."""

    checks: TaskChecks
    sides: list[SidePlan]
    extra_columns: list[str]
    result_format: str
    drift_profile: Any = None
    quarantine_sink: Any = None  # a DirectParquetSink over the quarantine staging
    engine: Any = None
    staged_schema: P.SideSchema | None = None  # the staged output's columns and Arrow types
    in_task_seconds: float = 0.0  # summed over the tasks (they run in parallel)
    spark_jobs: dict = field(default_factory=dict)
    plan_source: str = "gx"  # "cache": the tasks' ops came from checks/plan_cache.py
    session: Any = None  # for planning the routes after the pass (a cached plan)
    warm: Any = None  # the thread importing GX


def warm_up():
    """Import Great Expectations in a background thread (about 2 s), overlapping Spark's start.

    :func:`prepare` needs it; importing there would add those seconds to every run with checks.
    """
    import threading

    def load():
        try:
            import great_expectations  # noqa: F401
            import great_expectations.expectations  # noqa: F401
        except Exception:  # reported where it is really needed
            pass

    thread = threading.Thread(target=load, name="batchinfer-gx-import", daemon=True)
    thread.start()
    return thread


def applies(config) -> bool:
    """The single pass needs the direct writer (its tasks return rows); else the Spark checks run."""
    from batchinfer.checks.runner import checks_configured

    return checks_configured(config) and config.output.writer in ("auto", "pyarrow")


def prepare(session, plan, *, run_id: str, out_schema_fields, quarantine_table=None, warm=None) -> PassPlan:
    """Build the task program: routes per expectation, ops per side, drift grids, quarantine rules."""
    import pyarrow as pa

    from batchinfer.checks import runner
    from batchinfer.checks.quality import parse_specs

    config = plan.config
    c = config.checks
    selection_schema = plan.selection.schema
    keys = list(plan.selection.partition_keys)
    in_types = {f.name: f.type for f in selection_schema if f.name not in keys}
    in_types.update({k: pa.string() for k in keys})
    in_columns = [f.name for f in selection_schema if f.name not in keys] + keys

    lineage = config.output.lineage
    out_keys = list(config.output.partition_by)
    out_fields = list(out_schema_fields)
    out_types = {f.name: f.type for f in out_fields}
    for name in (lineage.model_digest, lineage.run_id):
        if name:
            out_types[name] = pa.string()
    out_columns = [f.name for f in out_fields if f.name not in out_keys]
    out_columns += [n for n in (lineage.model_digest, lineage.run_id) if n] + out_keys
    staged_columns = frozenset(out_columns)
    batch_out = {f.name: f.type for f in out_fields}

    inputs = []
    for stage, specs, suite in (("input", c.input, c.input_suite), ("output", c.output, c.output_suite)):
        if not specs and suite is None:
            continue
        if stage == "input":
            schema = P.SideSchema(in_columns, in_types, staged_columns)
        else:
            # The task sees the scored batch (no lineage columns): those go to the aggregation /
            # GX path; the table's columns and types are the staged output's.
            schema = P.SideSchema(out_columns, out_types, staged_columns)
        seen = P.SideSchema(schema.columns, in_types if stage == "input" else batch_out, staged_columns)
        inputs.append(SidePlan(stage, None, schema, [], None, seen, tuple(specs), suite))

    # Which ops the tasks compute is GX's decision (seconds of import). A plan kept from an
    # earlier run with the same suites, columns and versions lets the tasks start while GX
    # imports; the routes are then planned after the pass (:func:`_plan_routes`).
    key = None
    if inputs:
        key = plan_cache.plan_key(
            [
                plan_cache.side_key(sp.stage, parse_specs(list(sp.specs), sp.stage), sp.suite, sp.seen)
                for sp in inputs
            ],
            result_format=c.result_format,
            engine_kind="spark" if session is not None else "spark-types",
        )
    cached = plan_cache.load(key) if key is not None and warm is not None and warm.is_alive() else None
    engine = None
    if cached is not None and set(cached) <= {sp.stage for sp in inputs}:
        sides = [sp for sp in inputs if sp.stage in cached]
        for sp in sides:
            sp.ops = cached[sp.stage]
        source = "cache"
    else:
        if warm is not None:
            warm.join()
        engine = _spark_engine(session)
        sides = []
        for sp in inputs:
            _plan_routes(sp, c.result_format, engine)
            if sp.expectations:
                sides.append(sp)
        if key is not None:
            plan_cache.save(key, {sp.stage: sp.ops for sp in sides})
        source = "gx"

    extra: list[str] = []
    for side in sides:
        if side.stage == "input":
            extra.extend(o.column for o in side.ops if o.column and o.column not in extra)

    fg = pg = profile = None
    features: list[str] = []
    preds: list[str] = []
    if runner.drift_enabled(config):
        from batchinfer.checks.inline_counts import _subset
        from batchinfer.checks.profile import _Grid

        profile = runner.load_reference(config)
        features, preds = runner.drift_columns(config, profile, plan)
        if not config.drift.prediction.enabled:
            preds = []
        fg = _Grid.of(_subset(profile, features)) if features else None
        pg = _Grid.of(_subset(profile, preds)) if preds else None
        extra.extend(f for f in features if f not in extra)

    q_spec = q_sink = None
    if config.quarantine.enabled:
        from batchinfer.checks.quarantine import row_rules
        from batchinfer.io.direct_writer import DirectParquetSink

        read_cols = list(dict.fromkeys([*plan.spec.read_columns, *extra]))
        check_cols = (
            [s.column for s in c.input if s.column] if "input_checks" in config.quarantine.rules else []
        )
        read_cols += [col for col in check_cols if col not in read_cols and col in in_types]
        extra.extend(col for col in check_cols if col not in extra and col in in_types)
        batch_schema = pa.schema([pa.field(n, in_types[n]) for n in read_cols if n in in_types])
        rules = row_rules(
            batch_schema,
            feature_columns=plan.spec.feature_columns,
            specs=c.input,
            rules=config.quarantine.rules,
        )
        staging = quarantine_table.staging(run_id).uri
        compression = None if config.output.compression == "none" else config.output.compression
        q_spec = QuarantineSpec(
            tuple(rules), config.quarantine.reasons, staging, tuple(config.output.partition_by), compression
        )
        q_sink = DirectParquetSink(staging_uri=staging, partition_by=(), compression=compression, lineage=())

    in_ops = next((s.ops for s in sides if s.stage == "input"), [])
    out_ops = next((s.ops for s in sides if s.stage == "output"), [])
    checks = TaskChecks(tuple(in_ops), tuple(out_ops), tuple(features), tuple(preds), fg, pg, q_spec)
    staged = P.SideSchema(out_columns, out_types, staged_columns)
    pass_plan = PassPlan(checks, sides, extra, c.result_format, profile, q_sink, engine, staged)
    pass_plan.plan_source, pass_plan.session, pass_plan.warm = source, session, warm
    return pass_plan


def _plan_routes(side: SidePlan, result_format: str, engine, *, ran: bool = False) -> None:
    """GX's routes for one side, and its ops unless ``ran`` (the tasks ran a kept plan's ops)."""
    from batchinfer.checks.quality import suite_expectations

    side.expectations = suite_expectations(list(side.specs), stage=side.stage, suite_path=side.suite)
    ops, side.routes = P.plan_routes(
        side.expectations, side.seen, result_format=result_format, execution_engine=engine
    )
    if not ran:
        side.ops = ops


def _complete(pass_plan: PassPlan) -> None:
    """A cached plan's routes, once GX is imported: any metric the tasks lack falls back to GX."""
    if pass_plan.engine is not None or not pass_plan.sides:
        return
    if pass_plan.warm is not None:
        pass_plan.warm.join()
    pass_plan.engine = _spark_engine(pass_plan.session)
    for side in pass_plan.sides:
        _plan_routes(side, pass_plan.result_format, pass_plan.engine, ran=True)


def _spark_engine(session):
    """A GX Spark execution engine over the job's session: type checks compare Spark types.

    No session (the embedded engine): an engine that only gives GX Spark's type semantics, so a
    type expectation decides the same on every engine; it never computes anything.
    """
    if session is None:
        return _spark_types_engine()
    try:
        from great_expectations.execution_engine import SparkDFExecutionEngine

        return SparkDFExecutionEngine(spark=session, persist=False)
    except Exception:  # e.g. Spark Connect: type checks then take the GX-on-Spark path
        return None


def _spark_types_engine():
    try:
        from great_expectations.execution_engine import SparkDFExecutionEngine
    except Exception:  # GX without its Spark module: type checks take the GX fallback path
        return None

    class SparkTypesOnly(SparkDFExecutionEngine):
        """Spark type names for ``table.column_types`` decisions; no session, no JVM."""

        def __init__(self) -> None:  # noqa: D107  (the parent would start a SparkSession)
            pass

    return SparkTypesOnly()


def decide(
    session,
    pass_plan: PassPlan,
    written_rows,
    plan,
    *,
    staging_uri: str,
    read_input=None,
) -> list[StageChecks]:
    """Merge the tasks' partials; GX decides every expectation; drift and quarantine outcomes.

    ``read_input()`` returns the (clean) input as a Spark DataFrame, only called when an input
    expectation must fall back to GX on Spark. Without a session (the embedded engine) the
    distinct counts come from pyarrow over the staged files and the fallbacks run GX on pandas
    (``read_input`` then returns a pandas DataFrame).
    """
    from batchinfer.checks.quality import outcomes_from_gx, run_built

    _complete(pass_plan)
    config = plan.config
    states = [P.decode(r["partial"]) for r in written_rows if _kind(r) == "metrics" and r["partial"]]
    stages: list[StageChecks] = []

    totals = {k: sum(s[k] for s in states) for k in (_ROWS_IN, _ROWS_OUT, _ROWS_QUARANTINED)}
    pass_plan.in_task_seconds = round(sum(s.get(_SECONDS, 0.0) for s in states), 3)
    if pass_plan.checks.quarantines:
        from batchinfer.checks.quarantine import quarantine_outcome, rows_by_partition

        reasons: dict = {}
        for s in states:
            for k, v in s[_REASONS].items():
                reasons[k] = reasons.get(k, 0) + v
        st = StageChecks()
        outcome = quarantine_outcome(
            totals[_ROWS_IN], totals[_ROWS_QUARANTINED], config.quarantine.max_fraction
        )
        st.outcomes.append(outcome)
        st.summary["quarantine"] = {
            "rows_total": totals[_ROWS_IN],
            "rows_quarantined": totals[_ROWS_QUARANTINED],
            "rows_scored": totals[_ROWS_OUT],
            "fraction": outcome.observed,
            "max_fraction": config.quarantine.max_fraction,
            "path": config.quarantine.path,
            "reasons": dict(sorted(reasons.items(), key=lambda kv: -kv[1])[:50]),
            # The successful attempts' quarantine files, under their Hive partition directories.
            "rows_by_partition": rows_by_partition(
                [(r["file"].partition("/")[2], r["rows"]) for r in written_rows if _kind(r) == "quarantine"]
            ),
            "computed_in": "scoring tasks",
        }
        stages.append(st)

    staged_df = None
    distinct: dict = {}
    agg_columns = sorted(
        {r.column for side in pass_plan.sides for r in side.routes if r.path == P.AGGREGATION}
    )
    if agg_columns:
        t0 = time.perf_counter()
        if session is None:
            distinct = distinct_metrics_arrow(
                _staged_table(staging_uri, pass_plan, plan, agg_columns), agg_columns, pass_plan.staged_schema
            )
        else:
            staged_df = _staged_frame(session, staging_uri, pass_plan, plan)
            distinct = distinct_metrics(session, staged_df, agg_columns, pass_plan.staged_schema)
        pass_plan.spark_jobs["aggregation_seconds"] = round(time.perf_counter() - t0, 3)

    for side in pass_plan.sides:
        t0 = time.perf_counter()
        merged = P.merge_states(side.ops, (s[side.stage] for s in states))
        evrs: list = []
        paths: dict = {}
        fallback = []
        computed = {o.key for o in side.ops}  # the ops the tasks ran (a kept plan's, maybe)
        for route in side.routes:
            why = P.unavailable(route, merged, computed) if route.path != P.GX_SPARK else None
            if route.path == P.GX_SPARK or why:
                route.path, route.reason = P.GX_SPARK, route.reason or why or ""
                fallback.append(route)
                continue
            try:
                metrics = P.metrics_for(route, merged, side.schema, distinct)
                evr = P.validate(
                    route, metrics, result_format=pass_plan.result_format, execution_engine=pass_plan.engine
                )
            except Exception as exc:  # GX could not decide from our metrics: let GX on Spark do it
                route.path, route.reason = P.GX_SPARK, f"metrics_validate: {type(exc).__name__}"
                fallback.append(route)
                continue
            evrs.append(evr.to_json_dict())
        fallback_jobs = 0
        if fallback:
            if side.stage == "output" and session is None:
                df = pandas_for_gx(_staged_table(staging_uri, pass_plan, plan))
            elif side.stage == "output":
                df = (
                    staged_df
                    if staged_df is not None
                    else _staged_frame(session, staging_uri, pass_plan, plan)
                )
            else:
                df = read_input()
            qr = run_built(
                df,
                [r.expectation for r in fallback],
                stage=side.stage,
                name=f"{config.job}-{side.stage}-fallback",
                result_format=pass_plan.result_format,
            )
            evrs.extend(qr.gx_result.get("results", []))
            fallback_jobs = qr.spark_jobs or 0
        for route in side.routes:
            paths[str(_index(route))] = {"type": route.gx_type, "path": route.path, "reason": route.reason}
        gx_doc = P.suite_result(evrs, name=f"{config.job}-{side.stage}", paths=paths)
        outcomes = outcomes_from_gx(gx_doc, side.stage)
        by_index = {str(_index(r)): r for r in side.routes}
        for o, r in zip(outcomes, sorted(side.routes, key=_index), strict=False):
            o.details["path"] = by_index[str(_index(r))].path
        st = StageChecks()
        st.outcomes.extend(outcomes)
        from batchinfer.checks.gate import decide as gate_decide

        d = gate_decide(outcomes)
        st.summary[f"{side.stage}_expectations"] = {
            "stage": side.stage,
            "success": d.passed,
            "checks": len(outcomes),
            "passed": sum(o.passed for o in outcomes),
            "failed": len(d.failures),
            "warnings": len(d.warnings),
            "paths": {
                p: sum(1 for r in side.routes if r.path == p)
                for p in (P.SINGLE_PASS, P.AGGREGATION, P.GX_SPARK)
            },
            "per_expectation": list(paths.values()),
            "spark_jobs": fallback_jobs,
            "outcomes": [o.to_dict() for o in outcomes],
        }
        st.attachments[f"gx_{side.stage}.json"] = json.dumps(gx_doc, indent=2, default=str)
        st.seconds[f"{side.stage}_expectations"] = round(time.perf_counter() - t0, 3)
        if "aggregation_seconds" in pass_plan.spark_jobs:  # the one distinct-count Spark job
            st.seconds["distinct_aggregation"] = pass_plan.spark_jobs["aggregation_seconds"]
        stages.append(st)

    if pass_plan.checks.feature_grid is not None or pass_plan.checks.prediction_grid is not None:
        from batchinfer.checks.runner import evaluate_inline_drift

        stages.append(
            evaluate_inline_drift(plan, _MergedDrift(pass_plan.checks, states), pass_plan.drift_profile)
        )
    return stages


def _index(route) -> int:
    meta = (route.expectation.meta or {}).get("batchinfer") or {}
    return int(meta.get("index", route.index))


def _kind(row) -> str:
    from batchinfer.io.direct_writer import _kind as kind

    return kind(row)


@dataclass
class _MergedDrift:
    """The drift counts of all tasks, with the interface ``evaluate_inline_drift`` reads."""

    checks: TaskChecks
    states: list

    @property
    def features(self) -> list[str]:
        return list(self.checks.drift_features)

    @property
    def predictions(self) -> list[str]:
        return list(self.checks.drift_predictions)

    def results(self):
        fg, pg = self.checks.feature_grid, self.checks.prediction_grid
        feats = preds = None
        if fg is not None:
            parts = [s["drift"][0] for s in self.states] or [fg.empty()]
            feats = fg.to_profile(*fg.reduce(parts))
        if pg is not None:
            parts = [s["drift"][1] for s in self.states] or [pg.empty()]
            preds = pg.to_profile(*pg.reduce(parts))
        return feats, preds


def _staged_frame(session, staging_uri: str, pass_plan: PassPlan, plan):
    """The staged output as a Spark DataFrame, with its schema given (no schema-inference job)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import from_arrow_schema

    staged = pass_plan.staged_schema
    keys = set(plan.config.output.partition_by)
    schema = pa.schema(
        [pa.field(c, pa.string() if c in keys else staged.arrow_types[c]) for c in staged.columns]
    )
    return session.read.schema(from_arrow_schema(schema)).option("basePath", staging_uri).parquet(staging_uri)


def _staged_table(staging_uri: str, pass_plan: PassPlan, plan, columns=None):
    """The staged output as one Arrow table (the embedded engine's view of ``_staged_frame``)."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from batchinfer.io.filesystem import resolve

    staged = pass_plan.staged_schema
    keys = list(plan.config.output.partition_by)
    schema = pa.schema(
        [pa.field(c, pa.string() if c in keys else staged.arrow_types[c]) for c in staged.columns]
    )
    loc = resolve(staging_uri)
    dataset = ds.dataset(
        loc.path,
        filesystem=loc.fs,
        format="parquet",
        schema=schema,
        partitioning=ds.partitioning(pa.schema([schema.field(k) for k in keys]), flavor="hive")
        if keys
        else None,
        ignore_prefixes=["_", "."],
    )
    return dataset.to_table(columns=list(columns) if columns is not None else None)


def distinct_metrics_arrow(table, columns: list[str], schema: P.SideSchema, sample: int = 20) -> dict:
    """:func:`distinct_metrics` without Spark: the same counts from an Arrow table.

    Values are compared as Spark compares them there: cast to strings, nulls excluded.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for name in columns:
        col = table.column(name)
        values = col if pa.types.is_string(col.type) else _spark_strings(col)
        values = pc.drop_null(values)
        counts = pa.table({"v": values}).group_by("v").aggregate([("v", "count")])
        n = counts.column("v_count")
        dup_mask = pc.greater(n, 1)
        dups = counts.filter(dup_mask)
        sample_values: list = []
        for v, k in zip(dups.column("v").to_pylist(), dups.column("v_count").to_pylist(), strict=True):
            sample_values.extend([v] * int(k))
            if len(sample_values) >= sample:
                break
        sample_values = sample_values[:sample]
        typ = schema.arrow_types.get(name)
        if sample_values and typ is not None:
            try:
                sample_values = pa.array(sample_values, pa.string()).cast(typ).to_pylist()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass
        out[name] = {
            "distinct": counts.num_rows,
            "duplicate_rows": int(pc.sum(dups.column("v_count")).as_py() or 0),
            "duplicate_sample": sample_values,
        }
    return out


def _spark_strings(col):
    """A column as strings for distinct counting (equal values, equal strings; NaN is one value)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_floating(col.type):
        # -0.0 and 0.0 are different strings in Spark too; every NaN is the same "NaN".
        return pc.cast(col, pa.string())
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.chunked_array([pa.array([None if v is None else str(v) for v in col.to_pylist()])])


def clean_input_frame(plan, checks: TaskChecks, sample_fraction=None):
    """The (clean) input as pandas, read as the tasks read it: GX-on-pandas fallbacks (no Spark)."""
    import pyarrow as pa

    from batchinfer.checks.quarantine import split_batch
    from batchinfer.scoring.rowgroups import read_row_groups, row_group_tasks

    keys = list(plan.selection.partition_keys)
    columns = [f.name for f in plan.selection.schema if f.name not in keys] + keys
    batches = []
    for b in read_row_groups(row_group_tasks(plan), columns, keys, plan.spec.batch_rows, sample_fraction):
        if checks.quarantine is not None:
            b, _ = split_batch(b, checks.quarantine.rules, checks.quarantine.reasons)
        batches.append(b)
    if not batches:
        return pa.table({c: [] for c in columns}).to_pandas()
    return pandas_for_gx(pa.Table.from_batches(batches))


def pandas_for_gx(table):
    """An Arrow table as pandas for GX's fallbacks, floats widened to float64: Spark hands GX a
    float column's values as doubles, so a median of two float32 values is averaged in double."""
    import pyarrow as pa

    fields = [pa.field(f.name, pa.float64()) if pa.types.is_floating(f.type) else f for f in table.schema]
    return table.cast(pa.schema(fields)).to_pandas()


def distinct_metrics(session, df, columns: list[str], schema: P.SideSchema, sample: int = 20) -> dict:
    """Exact distinct and duplicate-row counts for ``columns``: one Spark job for all of them.

    Returns ``{column: {"distinct": n, "duplicate_rows": n, "duplicate_sample": [...]}}``, the
    inputs of GX's ``column.distinct_values.count`` and ``column_values.unique.*`` metrics
    (nulls excluded, as GX does). Adaptive execution is off for the query: it would run each
    shuffle stage as a job of its own.
    """
    import pyarrow as pa
    from pyspark.sql import functions as F

    parts = [
        df.select(F.lit(i).alias("c"), F.col(f"`{c}`").cast("string").alias("v")).where(
            F.col("v").isNotNull()
        )
        for i, c in enumerate(columns)
    ]
    union = parts[0]
    for p in parts[1:]:
        union = union.unionAll(p)
    groups = union.groupBy("c", "v").agg(F.count(F.lit(1)).alias("n"))
    dup = F.when(F.col("n") > 1, F.struct("v", "n"))
    query = groups.groupBy("c").agg(
        F.count(F.lit(1)).alias("distinct"),
        F.sum(F.when(F.col("n") > 1, F.col("n")).otherwise(F.lit(0))).alias("dups"),
        F.slice(F.collect_list(dup), 1, sample).alias("sample"),
    )
    conf = session.conf
    saved = conf.get("spark.sql.adaptive.enabled")
    conf.set("spark.sql.adaptive.enabled", "false")
    try:
        rows = query.collect()
    finally:
        conf.set("spark.sql.adaptive.enabled", saved)
    out = {c: {"distinct": 0, "duplicate_rows": 0, "duplicate_sample": []} for c in columns}
    for row in rows:
        name = columns[row["c"]]
        values: list = []
        for item in row["sample"] or []:
            values.extend([item["v"]] * int(item["n"]))
        values = values[:sample]
        typ = schema.arrow_types.get(name)
        if values and typ is not None:
            try:
                values = pa.array(values, pa.string()).cast(typ).to_pylist()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                pass
        out[name] = {
            "distinct": int(row["distinct"]),
            "duplicate_rows": int(row["dups"] or 0),
            "duplicate_sample": values,
        }
    return out
