"""Engines schedule the plan's tasks and hand their result rows back; they decide nothing else.

``runtime.engine``:

- ``spark``: classic Spark (a SparkContext: local, standalone, YARN, Kubernetes, spark-submit);
- ``spark-connect``: a Spark Connect session (``spark.remote``, ``SPARK_REMOTE``, or a Connect
  session passed in);
- ``local``: the embedded engine, a pool of worker processes on this machine, no JVM;
- ``auto`` (default): see :func:`resolve`.

Every engine runs the same :class:`batchinfer.task.ScoringTask`; the plan, the gate, the commit,
the manifest and the report do not know which one ran.
"""

from __future__ import annotations

from dataclasses import dataclass

ENGINES = ("spark", "spark-connect", "local")


@dataclass(frozen=True)
class EngineChoice:
    name: str  # spark | spark-connect | local
    reason: str  # why: what `batchinfer validate` and the manifest say

    def to_dict(self) -> dict:
        return {"name": self.name, "reason": self.reason}


def is_connect_session(spark) -> bool:
    """A Spark Connect session (no SparkContext), without touching ``sparkContext``."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def resolve(config, spark=None) -> EngineChoice:
    """Which engine runs this job, and why (pure: reads the config, the environment and ``spark``)."""
    import os

    choice = config.runtime.engine
    if spark is not None:
        name = "spark-connect" if is_connect_session(spark) else "spark"
        if choice not in ("auto", name):
            from batchinfer.errors import ConfigError

            raise ConfigError(
                f"runtime.engine is {choice!r} but the session passed in is a {name} session",
                hint=f"pass no session for runtime.engine: {choice}, or set runtime.engine: auto",
            )
        return EngineChoice(name, f"a {name} session was passed in")
    if choice != "auto":
        return EngineChoice(choice, f"runtime.engine: {choice}")
    if getattr(config.spark, "remote", None):
        return EngineChoice("spark-connect", "spark.remote is set")
    if os.environ.get("SPARK_REMOTE"):
        return EngineChoice("spark-connect", "SPARK_REMOTE is set")
    from batchinfer.spark import launched_by_spark_submit

    if launched_by_spark_submit():
        return EngineChoice("spark", "launched by spark-submit")
    if config.spark.master:
        return EngineChoice("spark", f"spark.master is {config.spark.master}")
    from batchinfer.engines.local import auto_choice

    return auto_choice(config)


def start_stage(choice: EngineChoice) -> str:
    """The timing stage of the engine's start (benchmarks/run.py reads both names)."""
    return "engine_start" if choice.name == "local" else "spark_start"


def prestart(config, spark=None):
    """The embedded engine's pool, started before planning (its workers import onnxruntime
    meanwhile), when ``auto``/``local`` will pick it; else None. Never raises: a config problem
    is reported by validation in its usual place."""
    if spark is not None:
        return None
    try:
        if resolve(config).name != "local":
            return None
        from batchinfer.engines.local import LocalEngine

        return LocalEngine.start(config)
    except Exception:
        return None


def start(choice: EngineChoice, config, *, spark=None, command_line_conf=None, prestarted=None):
    """The engine object for ``choice`` (starts Spark for the Spark engines unless ``spark`` is given)."""
    if prestarted is not None and getattr(prestarted, "name", None) == choice.name:
        return prestarted
    if choice.name == "spark":
        from batchinfer.engines.spark import SparkEngine

        return SparkEngine.start(config, spark=spark, command_line_conf=command_line_conf)
    if choice.name == "local":
        from batchinfer.engines.local import LocalEngine

        return LocalEngine.start(config)
    if choice.name == "spark-connect":
        from batchinfer.engines.connect import ConnectEngine

        return ConnectEngine.start(config, spark=spark, command_line_conf=command_line_conf)
    from batchinfer.errors import ConfigError

    raise ConfigError(
        f"runtime.engine {choice.name!r} is not available in this build",
        hint="use runtime.engine: spark or spark-connect",
    )


def finish() -> None:
    """After a run, whatever engine ran it: undo process-wide state an engine set (Connect mode)."""
    import sys

    connect = sys.modules.get("batchinfer.engines.connect")
    if connect is not None:
        connect.leave_connect_mode()
