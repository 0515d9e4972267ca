"""Build a job's reference profile: score the reference data with the job's model and profile
every monitored column (features, categorical passthrough columns and predictions), on the
engine the job would run on (the embedded engine: pyarrow + onnxruntime + numpy, no JVM).

    batchinfer profile conf/demo.yaml --reference ds=2026-11-26 --out conf/profiles/churn.json
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from batchinfer.errors import ConfigError

if TYPE_CHECKING:
    from batchinfer.checks.profile import ReferenceProfile


def reference_overrides(reference: str) -> list[str]:
    """``ds=2026-11-26`` / ``ds=a,b`` → a partition filter; anything else is a Parquet path."""
    if "=" in reference and "/" not in reference.split("=", 1)[0]:
        overrides = []
        for part in reference.split(";"):
            key, _, values = part.partition("=")
            vals = [v.strip() for v in values.split(",") if v.strip()]
            if not key.strip() or not vals:
                raise ConfigError(
                    f"--reference {reference!r} is not a partition filter",
                    hint="use KEY=VALUE[,VALUE...] (e.g. ds=2026-11-26) or a Parquet path",
                )
            overrides.append(f"input.partitions.{key.strip()}=[{', '.join(repr(v) for v in vals)}]")
        return overrides
    return [f"input.path={reference}", "input.partitions={}"]


def monitored_columns(plan, schema) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns to profile for a job plan."""
    import pyarrow as pa

    cfg = plan.config
    outputs = plan.spec.outputs
    keys = set(plan.selection.partition_keys)
    if cfg.drift.columns is not None:
        wanted = list(cfg.drift.columns)
    else:
        wanted = list(plan.spec.feature_columns)
        for col in cfg.input.passthrough:
            idx = schema.get_field_index(col)
            if col in keys or idx < 0:
                continue
            t = schema.field(idx).type
            if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
                wanted.append(col)
    numeric, categorical = [], []
    for col in wanted:
        idx = schema.get_field_index(col)
        if idx < 0:
            raise ConfigError(
                "drift.columns names a column the input lacks",
                problems=[("drift.columns", f"column {col!r} not found in the input data")],
            )
        t = schema.field(idx).type
        if pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_decimal(t):
            numeric.append(col)
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t):
            categorical.append(col)
    for o in outputs:
        if o.mode in ("select", "scalar", "max") and o.arrow_type.startswith("float"):
            numeric.append(o.column)
        elif o.mode in ("argmax", "scalar"):
            categorical.append(o.column)
    return numeric, categorical


def build_reference_profile(
    job, *, spark=None, bins: int = 10, fine_bins: int = 100, top_k: int = 20
) -> ReferenceProfile:
    """Score the job's (reference) input and profile it; returns a ``ReferenceProfile``.

    Runs where the job would (:func:`batchinfer.engines.resolve`, same rules and overrides):
    on the embedded engine, in this process with pyarrow and onnxruntime, no JVM
    (:func:`profile_locally`); on Spark (``runtime.engine: spark``/``spark-connect``, a
    ``spark.master``, or a ``spark`` session passed in) with ``approxQuantile``
    (:func:`batchinfer.checks.profile.build_profile`).
    """
    from batchinfer import engines

    local = engines.resolve(job.config, spark).name == "local"
    plan, numeric, categorical = profiling_plan(job.plan())
    if local:
        return profile_locally(plan, numeric, categorical, bins=bins, fine_bins=fine_bins, top_k=top_k)

    from pyspark import StorageLevel

    from batchinfer import spark as spark_mod
    from batchinfer.checks.profile import build_profile
    from batchinfer.io.source import read_dataframe
    from batchinfer.scoring.udf import score_dataframe

    session = spark or spark_mod.get_session(job.config)
    df = read_dataframe(session, plan.selection, plan.spec.read_columns)
    scored = score_dataframe(session, df, plan, run_id="reference-profile").df
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
    try:
        return build_profile(scored, numeric, categorical, bins=bins, fine_bins=fine_bins, top_k=top_k)
    finally:
        scored.unpersist()


def profiling_plan(plan):
    """(plan, numeric, categorical): the monitored columns, and the plan with every monitored
    input column carried through scoring (as passthrough)."""
    numeric, categorical = monitored_columns(plan, plan.selection.schema)
    outputs = {o.column for o in plan.spec.outputs}
    carry = [c for c in numeric + categorical if c not in outputs]
    passthrough = tuple(dict.fromkeys(list(plan.spec.passthrough) + carry))
    plan = dataclasses.replace(plan, spec=dataclasses.replace(plan.spec, passthrough=passthrough))
    return plan, numeric, categorical


def profile_locally(
    plan, numeric: list[str], categorical: list[str], *, bins: int = 10, fine_bins: int = 100, top_k: int = 20
) -> ReferenceProfile:
    """The embedded engine's profile: the plan's row groups read with pyarrow (its files, row
    groups and columns), scored in this process by the job's own scorer
    (:func:`batchinfer.scoring.udf.make_scorer`: one onnxruntime session, with the pool's
    threads) and profiled with :func:`batchinfer.checks.profile.profile_batches`."""
    import pyarrow as pa

    from batchinfer.checks.profile import profile_batches
    from batchinfer.engines.local import pool_size
    from batchinfer.scoring.rowgroups import read_row_groups, row_group_tasks
    from batchinfer.scoring.tensors import output_arrow_schema
    from batchinfer.scoring.udf import make_scorer
    from batchinfer.task import ModelBytes, TaskStats

    spec = plan.spec
    # One process does what the pool's workers would: give its session their threads.
    threads = max(spec.threads_per_task, pool_size(plan.config) * spec.threads_per_task)
    spec = dataclasses.replace(spec, threads_per_task=threads)
    schema = plan.selection.schema
    out_schema = output_arrow_schema(spec, pa.schema([schema.field(c) for c in spec.read_columns]))
    scorer = make_scorer(spec, ModelBytes(plan.model.content), out_schema, TaskStats())
    batches = read_row_groups(
        row_group_tasks(plan),
        list(spec.read_columns),
        list(plan.selection.partition_keys),
        spec.batch_rows,
        None,
    )
    return profile_batches(
        scorer(batches),
        numeric,
        categorical,
        rows=plan.selection.rows,
        bins=bins,
        fine_bins=fine_bins,
        top_k=top_k,
    )


def register(sub) -> None:
    p = sub.add_parser(
        "profile", help="build a reference profile (features and predictions) for drift checks"
    )
    p.add_argument("config", help="job config YAML")
    p.add_argument(
        "--reference", required=True, help="partition filter (ds=2026-11-26[,...]) or a Parquet path"
    )
    p.add_argument("--out", required=True, help="where to write the profile JSON")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--bins", type=int, default=10, help="quantile bins for PSI (default 10)")
    p.add_argument("--fine-bins", type=int, default=100, help="finer grid for KS/Wasserstein (default 100)")
    p.add_argument("--top-k", type=int, default=20, help="categories kept per categorical column")
    p.set_defaults(handler=_cmd_profile)


def _cmd_profile(args) -> int:
    from batchinfer import engines
    from batchinfer.job import Job

    job = Job.from_yaml(args.config, overrides=[*args.overrides, *reference_overrides(args.reference)])
    engine = engines.resolve(job.config).name
    t0 = time.perf_counter()
    profile = build_reference_profile(job, bins=args.bins, fine_bins=args.fine_bins, top_k=args.top_k)
    profile.save(args.out)
    print(
        f"wrote {args.out}: {profile.row_count:,} rows, {len(profile.numeric_columns)} numeric and "
        f"{len(profile.categorical_columns)} categorical columns ({engine} engine, "
        f"{time.perf_counter() - t0:.1f}s)"
    )
    return 0
