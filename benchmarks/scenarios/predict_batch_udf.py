"""Spark's own ``pyspark.ml.functions.predict_batch_udf`` with an onnxruntime session built in
``make_predict_fn`` (Spark caches the returned predict function per Python worker)."""

from __future__ import annotations

import time

from _common import FEATURES, build_spark, emit, parse_args


def make_predict_fn_for(model_path: str):
    def make_predict_fn():
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])

        def predict(inputs):
            label, proba = session.run(["label", "probabilities"], {"input": inputs})
            return {"score": proba[:, 1], "label": label}

        return predict

    return make_predict_fn


def main() -> None:
    args = parse_args(__doc__)
    t0 = time.perf_counter()
    spark = build_spark("bench-predict-batch-udf", args.master)
    t1 = time.perf_counter()
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F
    from pyspark.sql.types import FloatType, LongType, StructField, StructType

    scorer = predict_batch_udf(
        make_predict_fn_for(args.model),
        return_type=StructType([StructField("score", FloatType()), StructField("label", LongType())]),
        batch_size=10_000,
    )
    df = spark.read.parquet(args.data)
    # Scalar columns grouped with `struct` reach predict() as one [rows, 64] array.
    scored = df.select("id", scorer(F.struct(*FEATURES)).alias("p"))
    scored.select("id", "p.score", "p.label").write.mode("overwrite").parquet(args.out)
    t2 = time.perf_counter()
    emit(session_start_s=t1 - t0, job_s=t2 - t1, input_partitions=df.rdd.getNumPartitions())
    spark.stop()


if __name__ == "__main__":
    main()
