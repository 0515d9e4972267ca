"""Score a Spark DataFrame with ``mapInArrow``: Arrow batches in, scored Arrow batches out.

Only the columns the model and the output need cross the JVM→Python boundary. The model
bytes travel as a broadcast variable; each Python worker builds one onnxruntime session per
model digest (see :mod:`batchinfer.scoring.session`) and reports it through an accumulator,
so the driver knows how many sessions were created and which providers actually ran.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from batchinfer import faults
from batchinfer.scoring import custom

if TYPE_CHECKING:
    from batchinfer.plan import JobPlan, ScoringSpec

# Test-only fault injection: "<attempt>:<partition ids>[:late]", e.g. "0:1,3" fails partitions 1
# and 3 on their first attempt; with ":late" they fail after their first batch was scored and
# handed to the writer (so the failed attempt leaves files behind). Read in the executor, so it
# must be set in the executors' environment.
FAULT_ENV = "BATCHINFER_TEST_FAIL_FIRST_ATTEMPT"


def _merge_stats(a: dict, b: dict) -> dict:
    out = {k: dict(v) for k, v in a.items()}
    for worker, info in b.items():
        cur = out.setdefault(
            worker, {"sessions": 0, "providers": [], "rows": 0, "batches": 0, "warnings": []}
        )
        cur["sessions"] += info.get("sessions", 0)
        cur["rows"] += info.get("rows", 0)
        cur["batches"] += info.get("batches", 0)
        cur["score_s"] = round(cur.get("score_s", 0.0) + info.get("score_s", 0.0), 6)
        for p in info.get("providers", []):
            if p not in cur["providers"]:
                cur["providers"].append(p)
        for w in info.get("warnings", []):
            if w not in cur["warnings"]:
                cur["warnings"].append(w)
        # GPU scheduling (docs/gpu.md): what each worker asked onnxruntime for, and on which device.
        for name in ("requested_providers", "gpu_addresses", "device_ids", "batch_rows", "task_errors"):
            merged = cur.setdefault(name, [])
            merged.extend(x for x in info.get(name, []) if x not in merged)
        if info.get("peak_rss_mb"):
            cur["peak_rss_mb"] = max(cur.get("peak_rss_mb", 0), info["peak_rss_mb"])
        if info.get("batch_memory"):  # batch_rows auto: the worker's latest estimate and size
            cur["batch_memory"] = info["batch_memory"]
        if info.get("canary"):  # one per session: the same result reported by each of its tasks
            cur["canary"] = info["canary"]
        for name in ("executable", "python_version", "onnxruntime_version"):  # which Python ran
            if info.get(name):
                cur.setdefault(name, info[name])
    return out


def _canary_summary(result: dict) -> dict:
    """What the manifest keeps of a worker's canary result (no rows, no outputs)."""
    hw = result.get("hardware") or {}
    return {
        "passed": result["passed"],
        "failures": result["failures"],
        "rows": result["rows"],
        "figures": result["figures"],
        "max_abs_diff_vs_verified": result["max_abs_diff_vs_verified"],
        "same_kernels_as_verified": result["same_kernels_as_verified"],
        "cpu": hw.get("cpu"),
        "onnxruntime": hw.get("onnxruntime"),
        "gpu": hw.get("gpu"),
    }


def _worker_runtime() -> dict:
    """The interpreter and onnxruntime this Python worker scores with (an archive's or the node's)."""
    import platform
    import sys

    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return {"executable": sys.executable, "python_version": platform.python_version()}
    ort = None
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            ort = version(dist)
            break
        except PackageNotFoundError:
            continue
    return {
        "executable": sys.executable,
        "python_version": platform.python_version(),
        "onnxruntime_version": ort,
    }


def _stats_param():
    from pyspark.accumulators import AccumulatorParam

    class WorkerStatsParam(AccumulatorParam):
        def zero(self, value):
            return {}

        def addInPlace(self, a, b):
            return _merge_stats(a, b)

    return WorkerStatsParam()


def _peak_rss_mb(meter=None) -> float:
    """This worker's peak RSS: since ``meter`` last reset it (Linux), else over its lifetime."""
    try:
        if meter is not None:
            return round(meter.peak() / 2**20, 1)
        import resource

        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    except Exception:  # pragma: no cover - non-Unix
        return 0.0


def _maybe_inject_fault(late: bool = False) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    from batchinfer.task import current_attempt

    ctx = current_attempt()
    attempt, _, parts = spec.partition(":")
    parts, _, when = parts.partition(":")
    if (when == "late") != late:
        return
    targets = {int(p) for p in parts.split(",") if p.strip()}
    if ctx is not None and ctx.attempt == int(attempt) and ctx.partition in targets:
        raise RuntimeError(
            f"injected test fault: partition {ctx.partition} attempt {ctx.attempt} ({FAULT_ENV})"
        )


def _maybe_kill_executor() -> None:
    if not os.environ.get(faults.KILL_EXECUTOR_ENV):
        return
    from batchinfer.task import current_attempt

    ctx = current_attempt()
    if ctx is not None:
        faults.maybe_kill_executor(ctx.partition, ctx.attempt)


def make_scorer(
    spec: ScoringSpec, model_bc, out_schema, stats_acc, session_factory=None, *, task_errors=False
):
    """The function given to ``mapInArrow``. Everything it closes over is small and picklable.

    ``stats_acc`` is anything with ``.add(dict)``: an accumulator (Spark's writer path) or a
    :class:`batchinfer.task.TaskStats`, whose stats come back as the task's ``stats`` result row.
    With ``task_errors`` a batchinfer error raised in a task (bad features, no GPU, a bad hook,
    a corrupt page) is deterministic: the task reports it through ``stats_acc`` and ends, instead
    of failing and being retried ``spark.task.maxFailures`` times; the driver must then call
    :meth:`ScoredFrame.raise_task_errors` after the action.
    """
    digest = spec.model_sha256
    output_names = spec.output_names

    def score_partition(batches):
        from dataclasses import replace

        from batchinfer.scoring import device as devices
        from batchinfer.scoring import session as sessions
        from batchinfer.scoring.batch_size import MemoryMeter
        from batchinfer.scoring.tensors import score_batch

        _maybe_inject_fault()
        _maybe_kill_executor()
        # Peak RSS per run, not per process: a reused worker's lifetime peak would carry an
        # earlier run's (a notebook's session, other jobs) into this run's manifest.
        meter = MemoryMeter()
        meter = meter if meter.resettable else None
        pre, post = custom.load_hooks(spec.preprocess, spec.postprocess)
        choice = devices.choose_providers(
            spec.device,
            available=devices.available_providers(),
            gpu_addresses=devices.task_gpu_addresses(),
            tensorrt=spec.tensorrt,
            trt_cache_dir=spec.trt_cache_dir,
        )
        created = []
        factory = session_factory or sessions.get_session
        handle = factory(
            digest,
            lambda: model_bc.value,
            output_names=output_names,
            providers=list(choice.providers),
            device_id=choice.device_id,
            threads=spec.threads_per_task,
            on_create=created.append,
        )
        # onnxruntime drops a provider it cannot load without an error: check what really runs.
        in_use_warning = devices.check_providers_in_use(spec.device, choice, handle.providers)
        warnings = [w for w in (choice.warning, in_use_warning) if w]
        # A model card's canary: once per session, before the first row is scored (exit 4 when over).
        try:
            canary = sessions.check_canary(handle, spec.canary, on_mismatch=spec.on_canary_mismatch)
        except Exception:
            # Over budget (fail): the run's manifest still records this worker's canary result.
            failed = getattr(handle, "canary", None)
            if failed is not None:
                stats_acc.add({sessions.worker_id(): {"canary": _canary_summary(failed)}})
            raise
        if canary is not None and not canary["passed"]:
            from batchinfer.model.canary import mismatch_message

            warnings.append(mismatch_message(canary, spec.canary))
        run_spec = spec
        if devices.uses_cuda(handle.providers):
            gpu_rows = devices.effective_batch_rows(handle.providers, spec.batch_rows, spec.gpu_batch_rows)
            run_spec = replace(spec, batch_rows=gpu_rows)
            batches = devices.coalesce_batches(batches, gpu_rows)
        rows = batches_seen = 0
        spent = 0.0

        def run(feeds):
            return handle.session.run(output_names, feeds)

        sizer = None
        if spec.batch_auto:  # batch_rows auto: calls sized to the worker's memory (scoring/batch_size.py)
            from batchinfer.scoring import batch_size

            cuda = devices.uses_cuda(handle.providers)  # GPU memory is not RSS: shrink on failure only
            sizer = batch_size.worker_sizer(digest, None if cuda else spec.worker_memory, run_spec.batch_rows)
            run = sizer.bind(handle.session, output_names)

        for batch in batches:
            t0 = time.perf_counter()
            rows += batch.num_rows
            if pre is not None:
                batch = custom.apply_preprocess(pre, batch, spec.preprocess)
            out = score_batch(batch, run_spec, run, out_schema)
            if post is not None:
                out = custom.apply_postprocess(post, out, spec.postprocess, out_schema)
            spent += time.perf_counter() - t0
            batches_seen += 1
            yield out
            if batches_seen == 1:
                faults.pause_at("scoring")  # test-only switch; see batchinfer.faults
                _maybe_inject_fault(late=True)
                if os.environ.get(faults.KILL_WORKER_ENV):
                    from batchinfer.task import current_attempt

                    faults.maybe_kill_worker(current_attempt())
        stats_acc.add(
            {
                sessions.worker_id(): {
                    "sessions": len(created),
                    "providers": handle.providers,
                    "rows": rows,
                    "batches": batches_seen,
                    "score_s": spent,
                    "warnings": warnings + ([sizer.warning] if sizer is not None and sizer.warning else []),
                    "requested_providers": choice.requested,
                    "gpu_addresses": list(choice.gpu_addresses),
                    "device_ids": [] if choice.device_id is None else [choice.device_id],
                    # auto: the size this worker chose (none yet when its tasks were all tiny)
                    "batch_rows": [run_spec.batch_rows] if sizer is None else [r for r in [sizer.rows] if r],
                    **({"batch_memory": sizer.summary()} if sizer is not None else {}),
                    "peak_rss_mb": _peak_rss_mb(meter),
                    **({"canary": _canary_summary(canary)} if canary is not None else {}),
                    **_worker_runtime(),
                }
            }
        )

    if not task_errors:
        return score_partition

    def score_or_report(batches):
        from batchinfer.errors import BatchInferError
        from batchinfer.scoring import session as sessions

        try:
            yield from score_partition(batches)
        except BatchInferError as exc:
            import traceback

            from batchinfer.task import current_attempt

            ctx = current_attempt()
            record = {
                **exc.to_dict(),
                "partition": ctx.partition if ctx is not None else 0,
                "attempt": ctx.attempt if ctx is not None else 0,
                "traceback": traceback.format_exc()[-8000:],
            }
            stats_acc.add({sessions.worker_id(): {"task_errors": [record]}})

    return score_or_report


@dataclass
class ScoredFrame:
    df: object  # pyspark DataFrame: passthrough + outputs + lineage (or result rows with a sink)
    stats: object  # Accumulator[dict]: per-worker sessions, providers, rows (None with a sink)
    model_broadcast: object

    def raise_task_errors(self) -> None:
        """Raise the first deterministic error the tasks reported (``make_scorer(task_errors=True)``)."""
        from batchinfer.errors import error_from_dict

        records = [r for info in self.stats.value.values() for r in info.pop("task_errors", [])]
        if records:
            records.sort(key=lambda r: (r.get("partition", 0), r.get("attempt", 0)))
            log_task_errors(self.df.sparkSession, records)
            raise error_from_dict(records[0])


def log_task_errors(session, records: list[dict]) -> None:
    """Put the tasks' tracebacks in Spark's driver log (a file for embedded Spark), not the console."""
    from batchinfer.engines import is_connect_session

    if session is None or is_connect_session(session):
        # No driver JVM here (Spark Connect, embedded engine): the tracebacks go to the Python log.
        import logging

        for r in records:
            logging.getLogger("batchinfer").debug(
                "%s in task for partition %s (attempt %s): %s\n%s",
                r.get("type"),
                r.get("partition"),
                r.get("attempt"),
                r.get("message"),
                r.get("traceback", ""),
            )
        return
    try:
        jvm = session.sparkContext._jvm
        logger = jvm.org.apache.logging.log4j.LogManager.getLogger("batchinfer.TaskError")
    except Exception:  # Spark Connect: no JVM here; the error itself still reaches the caller
        return
    for r in records:
        logger.error(
            f"{r.get('type')} in task for partition {r.get('partition')} (attempt {r.get('attempt')}; "
            f"deterministic, not retried): {r.get('message')}\n{r.get('traceback', '')}"
        )


def sink_schema() -> str:
    from batchinfer.io.direct_writer import RESULT_SCHEMA

    return RESULT_SCHEMA


def with_lineage(scored, plan: JobPlan, run_id: str):
    """Add the lineage columns (model digest, run id) in the JVM, after the Python stage."""
    from pyspark.sql import functions as F

    lineage = plan.config.output.lineage
    if lineage.model_digest:
        scored = scored.withColumn(lineage.model_digest, F.lit(plan.model.sha256))
    if lineage.run_id:
        scored = scored.withColumn(lineage.run_id, F.lit(run_id))
    return scored


def score_dataframe(
    spark,
    df,
    plan: JobPlan,
    *,
    run_id: str,
    session_factory=None,
    extra_columns=(),
    wrap=None,
    sink=None,
    task_errors=False,
) -> ScoredFrame:
    """Lazily score ``df`` (which holds at least ``plan.spec.read_columns``).

    ``extra_columns`` also reach the executor (e.g. for drift counting) without being written;
    ``wrap(scorer)`` may wrap the per-partition function (see :mod:`batchinfer.checks.inline_counts`).
    """
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    from batchinfer.scoring.tensors import output_arrow_schema

    spec = plan.spec
    df = df.select(*spec.read_columns, *[c for c in extra_columns if c not in spec.read_columns])
    in_schema = to_arrow_schema(df.schema)
    out_schema = output_arrow_schema(spec, in_schema)
    model_bc = spark.sparkContext.broadcast(plan.model.content)
    if sink is not None:  # the workers write the Parquet files themselves (io/direct_writer.py)
        from batchinfer.task import TaskStats

        scorer = make_scorer(
            spec, model_bc, out_schema, TaskStats(), session_factory, task_errors=task_errors
        )
        if wrap is not None:
            scorer = wrap(scorer)
        return ScoredFrame(df.mapInArrow(sink.wrap(scorer, out_schema), sink_schema()), None, model_bc)
    stats = spark.sparkContext.accumulator({}, _stats_param())
    scorer = make_scorer(spec, model_bc, out_schema, stats, session_factory, task_errors=task_errors)
    if wrap is not None:
        scorer = wrap(scorer)
    scored = df.mapInArrow(scorer, from_arrow_schema(out_schema))
    return ScoredFrame(with_lineage(scored, plan, run_id), stats, model_bc)
