"""Per-row Python UDF (one ``session.run`` per row) on a sample, extrapolated to the full size.

Three jobs in one session over the sample dataset: (1) half the sample, cold; (2) the same
half, warm; (3) the whole sample, warm (written to ``--out`` for the output check). The
marginal cost per row is (t3 - t2) / (n3 - n2), and the extrapolated job time is
``t1 + (full_rows - n1) * marginal``: the cold start is paid once, every further row at the
warm marginal rate. ``job_s`` is that extrapolation; the measured times are reported too.
"""

from __future__ import annotations

import shutil
import time

from _common import FEATURES, build_spark, emit, parse_args


def _extra(ap) -> None:
    ap.add_argument("--full-rows", type=int, required=True, help="rows to extrapolate to")
    ap.add_argument("--step", type=int, required=True, help="the sample holds ids that are multiples of step")


def main() -> None:
    args = parse_args(__doc__, _extra)
    t0 = time.perf_counter()
    spark = build_spark("bench-per-row-udf", args.master)
    t1 = time.perf_counter()
    import ortcache
    from pyspark.sql import functions as F
    from pyspark.sql.types import FloatType, LongType, StructField, StructType

    model_path = args.model
    schema = StructType([StructField("score", FloatType()), StructField("label", LongType())])
    scorer = F.udf(lambda *values: ortcache.score_one_row(model_path, values), schema)

    sample = spark.read.parquet(args.data)
    half = sample.where((F.col("id") / args.step).cast("long") % 2 == 0)

    def run(df, out) -> float:
        start = time.perf_counter()
        df.select("id", scorer(*[F.col(f) for f in FEATURES]).alias("p")).select(
            "id", "p.score", "p.label"
        ).write.mode("overwrite").parquet(out)
        return time.perf_counter() - start

    scratch = args.out.rstrip("/") + ".half"
    t_cold = run(half, scratch)
    t_warm_half = run(half, scratch)
    t_warm_full = run(sample, args.out)
    shutil.rmtree(scratch, ignore_errors=True)
    # Counted after the timed jobs so the first (cold) job pays the JVM warm-up, as elsewhere.
    n_half, n_full = half.count(), sample.count()
    marginal = (t_warm_full - t_warm_half) / max(1, n_full - n_half)
    if marginal <= 0:  # noise swamped the difference: fall back to the average warm rate
        marginal = t_warm_full / n_full
    emit(
        session_start_s=t1 - t0,
        job_s=t_cold + (args.full_rows - n_half) * marginal,
        extrapolated=True,
        sample_rows=n_full,
        measured_job_s=t_cold + t_warm_half + t_warm_full,
        measured={"cold_half_s": t_cold, "warm_half_s": t_warm_half, "warm_full_s": t_warm_full},
        marginal_us_per_row=marginal * 1e6,
        arrow_python_udf=spark.conf.get("spark.sql.execution.pythonUDF.arrow.enabled"),
    )
    spark.stop()


if __name__ == "__main__":
    main()
