"""Classic Spark: one Spark task per (file, row group), the model as a broadcast variable."""

from __future__ import annotations


class SparkEngine:
    name = "spark"

    def __init__(self, session) -> None:
        self.session = session

    @classmethod
    def start(cls, config, *, spark=None, command_line_conf=None) -> SparkEngine:
        from batchinfer import spark as spark_mod

        return cls(spark or spark_mod.get_session(config, command_line_conf=command_line_conf))

    def describe(self, config, command_line_conf=None) -> dict:
        """What the manifest records under ``spark`` (application id, master, effective conf)."""
        from batchinfer.spark import application_info

        return application_info(self.session, config, command_line_conf)

    def begin(self, run_id: str, job: str) -> None:
        """Group this run's Spark jobs (cancellable, countable)."""
        self.session.sparkContext.setJobGroup(
            f"batchinfer-{run_id}", f"batchinfer {job} run {run_id}", interruptOnCancel=True
        )

    def jobs_started(self, run_id: str) -> int | None:
        """Spark jobs this run started under its job group (GX-on-Spark fallbacks use their own)."""
        try:
            return len(self.session.sparkContext.statusTracker().getJobIdsForGroup(f"batchinfer-{run_id}"))
        except Exception:
            return None

    def run(self, task, task_rows: list) -> list[dict]:
        """Run ``task`` over ``task_rows`` (one Spark task each) and collect the result rows."""
        from pyspark.sql import types as T

        from batchinfer.io.direct_writer import RESULT_SCHEMA

        session = self.session
        sc = session.sparkContext
        task_schema = T.StructType(
            [
                T.StructField("uri", T.StringType()),
                T.StructField("row_group", T.IntegerType()),
                T.StructField("partition", T.StringType()),
            ]
        )
        # One Spark task per row group: small tasks balance well across workers (a reused Python
        # worker costs milliseconds per task), and the number of tasks tracks the data size.
        task_df = session.createDataFrame(sc.parallelize(task_rows, max(1, len(task_rows))), task_schema)
        model_bc = sc.broadcast(task.model.value)
        try:
            rows = task_df.mapInArrow(task.with_model(model_bc).arrow_function(), RESULT_SCHEMA).collect()
        finally:
            model_bc.unpersist(blocking=False)
        return [r.asDict() for r in rows]
