"""How much of a Spark job is the cold start of a fresh JVM? (No model: read, fake scores, write.)

    python benchmarks/cold_spark.py --data benchmarks/.data/r2000000_p4_s7/data --writer spark
    python benchmarks/cold_spark.py --data benchmarks/.data/r2000000_p4_s7/data --writer pyarrow

Runs the same job twice in one SparkSession, one task per Parquet row group: Python workers read
their row groups with pyarrow and emit zero scores, written either by Spark's Parquet writer or
by the workers themselves (as batchinfer's direct writer does). Prints the first (cold) and the
second (warm) job time.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="directory of the benchmark's Parquet files")
    ap.add_argument("--writer", choices=("spark", "pyarrow"), default="spark")
    args = ap.parse_args()
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import pyarrow.parquet as pq
    from pyspark.sql import SparkSession

    t0 = time.perf_counter()
    spark = (
        SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    print(f"session start {time.perf_counter() - t0:.2f} s")
    files = sorted(glob.glob(os.path.join(args.data, "*.parquet")))
    tasks = [(f, i) for f in files for i in range(pq.ParquetFile(f).num_row_groups)]
    tasks_df = spark.createDataFrame(spark.sparkContext.parallelize(tasks, len(tasks)), "uri string, rg int")
    out = tempfile.mkdtemp(prefix="cold-spark-")
    columns = ["id"] + [f"f{i}" for i in range(64)]

    def batches(it):
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        for tb in it:
            for uri, rg in zip(tb.column(0).to_pylist(), tb.column(1).to_pylist(), strict=True):
                for b in pq.ParquetFile(uri).iter_batches(
                    batch_size=10_000, row_groups=[rg], columns=columns
                ):
                    n = b.num_rows
                    yield pa.record_batch(
                        {"id": b.column(0), "score": np.zeros(n, np.float32), "label": np.zeros(n, np.int64)}
                    )

    def write_in_worker(it):
        import uuid

        import pyarrow as pa
        import pyarrow.parquet as pq

        writer, rows, path = None, 0, os.path.join(out, f"part-{uuid.uuid4().hex}.parquet")
        for b in batches(it):
            writer = writer or pq.ParquetWriter(path, b.schema)
            writer.write_batch(b)
            rows += b.num_rows
        if writer is not None:
            writer.close()
        yield pa.record_batch({"file": [path], "rows": [rows]})

    for attempt in ("cold", "warm"):
        shutil.rmtree(out, ignore_errors=True)
        os.makedirs(out)
        t0 = time.perf_counter()
        if args.writer == "spark":
            tasks_df.mapInArrow(batches, "id long, score float, label long").write.mode("overwrite").parquet(
                os.path.join(out, "spark")
            )
        else:
            tasks_df.mapInArrow(write_in_worker, "file string, rows long").collect()
        print(f"{attempt} job ({args.writer} writer): {time.perf_counter() - t0:.2f} s")
    shutil.rmtree(out, ignore_errors=True)
    spark.stop()


if __name__ == "__main__":
    main()
