"""Hand-written ``mapInPandas`` scorer: one onnxruntime session per Python worker (cached in a
module global of ``ortcache``), 1 thread per task, ~10k-row Arrow batches scored in 10k slices."""

from __future__ import annotations

import time
from functools import partial

from _common import FEATURES, build_spark, emit, parse_args


def main() -> None:
    args = parse_args(__doc__)
    t0 = time.perf_counter()
    spark = build_spark("bench-map-in-pandas", args.master)
    t1 = time.perf_counter()
    import ortcache

    df = spark.read.parquet(args.data).select("id", *FEATURES)
    scored = df.mapInPandas(
        partial(ortcache.score_frame_batches, model_path=args.model, features=FEATURES),
        schema="id long, score float, label long",
    )
    scored.write.mode("overwrite").parquet(args.out)
    t2 = time.perf_counter()
    emit(
        session_start_s=t1 - t0,
        job_s=t2 - t1,
        input_partitions=df.rdd.getNumPartitions(),
        max_records_per_batch=spark.conf.get("spark.sql.execution.arrow.maxRecordsPerBatch"),
    )
    spark.stop()


if __name__ == "__main__":
    main()
