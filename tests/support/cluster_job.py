"""Run in a subprocess by the tests: a job on local-cluster (separate executor JVMs).

Usage: python -m tests.support.cluster_job DATA MODEL OUT
Prints one JSON line with what the test checks.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile


def main(data: str, model: str, out: str) -> None:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_WORKER_DIR", tempfile.mkdtemp(prefix="spark-worker-"))
    from pyspark.sql import SparkSession

    from batchinfer.io.source import read_dataframe
    from batchinfer.job import Job
    from batchinfer.scoring.udf import score_dataframe
    from tests.support.data import job_config

    spark = (
        SparkSession.builder.master("local-cluster[2,1,1024]")
        .config("spark.executor.memory", "768m")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    cfg = job_config(data, model, out, features=["f0", "f1", "f2", "f3"])
    result = Job.from_config(cfg).run(spark=spark)

    # Executors never read the model path: plan (reads the bytes), then move the file away.
    job = Job.from_config(cfg)
    plan = job.plan()
    hidden = model + ".moved"
    shutil.move(model, hidden)
    try:
        df = read_dataframe(spark, plan.selection, plan.spec.read_columns)
        scored = score_dataframe(spark, df, plan, run_id="no-path")
        rows = scored.df.count()
        executors = sorted({w.split(":")[0] + ":" + w.split(":")[1] for w in scored.stats.value})
    finally:
        shutil.move(hidden, model)
    print(
        json.dumps(
            {
                "status": result.status,
                "rows_out": result.rows_out,
                "rows_in": result.rows_in,
                "workers": result.manifest["workers"],
                "master": result.manifest["spark"]["master"],
                "rows_without_model_file": rows,
                "executor_workers": executors,
            }
        )
    )
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:4])
