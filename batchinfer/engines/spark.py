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
        from batchinfer.io.direct_writer import RESULT_SCHEMA
        from batchinfer.task import by_index

        session = self.session
        sc = session.sparkContext
        # One Spark task per row group: small tasks balance well across workers (a reused Python
        # worker costs milliseconds per task), and the number of tasks tracks the data size.
        # spark.range with n slices: partition i holds exactly id i (see batchinfer.task.by_index).
        n = max(1, len(task_rows))
        ids = session.range(0, len(task_rows), 1, n)
        model_bc = sc.broadcast(task.model.value)
        try:
            rows = ids.mapInArrow(
                by_index(task.with_model(model_bc), list(task_rows)), RESULT_SCHEMA
            ).collect()
        finally:
            model_bc.unpersist(blocking=False)
        return [r.asDict() for r in rows]
