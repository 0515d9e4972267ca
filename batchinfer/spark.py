"""The SparkSession a job runs in: embedded local Spark by default, the cluster's under spark-submit."""

from __future__ import annotations

import os
import sys

from batchinfer.config import JobConfig

_LOG4J = os.path.join(os.path.dirname(__file__), "resources", "log4j2.properties")

# Defaults we set unless the user's spark.conf says otherwise.
DEFAULT_CONF: dict[str, str] = {
    "spark.ui.showConsoleProgress": "false",
    # Partition values stay strings ("05" stays "05", ds stays a string, not a date).
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.python.worker.reuse": "true",
}


def launched_by_spark_submit() -> bool:
    """True when a JVM gateway already exists (spark-submit or pyspark shell started us)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def session_conf(config: JobConfig) -> dict[str, str]:
    conf = dict(DEFAULT_CONF)
    # Bound the Arrow batches handed to Python workers: memory stays flat however large a partition is.
    conf["spark.sql.execution.arrow.maxRecordsPerBatch"] = str(config.runtime.batch_rows)
    master = config.spark.master or "local[*]"
    if master.startswith("local") and not launched_by_spark_submit():
        # Embedded Spark runs everything in the driver JVM, whose default heap (1g) is too small to
        # cache a few million rows for the checks: give it a share of this machine's memory.
        conf["spark.driver.memory"] = default_local_driver_memory()
    conf.update(
        {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in config.spark.conf.items()}
    )
    return conf


def default_local_driver_memory() -> str:
    """A quarter of physical memory, between 1g and 8g."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    gib = max(1, min(8, int(total / 4 / 2**30)))
    return f"{gib}g"


def get_session(config: JobConfig, *, quiet: bool = True):
    """Return the active SparkSession, or build one from ``config.spark``.

    Under spark-submit the master and resources come from the command line; otherwise
    ``spark.master`` from the config, defaulting to ``local[*]``.
    """
    global _driver_log
    # Python workers must run this interpreter (and its packages), not whatever python3 is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not launched_by_spark_submit():
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.appName(config.spark.app_name or f"batchinfer:{config.job}")
    if not launched_by_spark_submit():
        builder = builder.master(config.spark.master or "local[*]")
        if "spark.ui.enabled" not in config.spark.conf:
            builder = builder.config("spark.ui.enabled", "false")
    for key, value in session_conf(config).items():
        builder = builder.config(key, value)
    from pyspark import SparkContext

    log_file = None
    starts_jvm = SparkContext._active_spark_context is None  # else getOrCreate reuses its logging
    if quiet and starts_jvm and not launched_by_spark_submit() and "SPARK_CONF_DIR" not in os.environ:
        log_file = _new_log_file()
        per_jvm = {
            "spark.driver.extraJavaOptions": log_file,
            # Spark fills in {{EXECUTOR_ID}}: one file per executor JVM (local-cluster).
            "spark.executor.extraJavaOptions": log_file[: -len(".log")] + "-executor-{{EXECUTOR_ID}}.log",
        }
        for key, path in per_jvm.items():
            opt = f"-Dlog4j.configurationFile=file:{_LOG4J} -Dbatchinfer.log.file={path}"
            user = str(config.spark.conf.get(key, ""))
            builder = builder.config(key, (user + " " + opt).strip())
    if quiet and not launched_by_spark_submit():
        _launch_filtered_gateway(getattr(builder, "_options", {}))
    session = builder.getOrCreate()
    if log_file is not None:
        _driver_log = log_file
    if quiet:
        # With the log in a file, keep Spark's warnings there (lost tasks, retries); else only errors.
        session.sparkContext.setLogLevel("WARN" if _driver_log else "ERROR")
    return session


# The log file of the embedded Spark this process started (None: Spark's own logging, e.g. under
# spark-submit, with SPARK_CONF_DIR, or with a session the caller built).
_driver_log: str | None = None


def driver_log() -> str | None:
    return _driver_log


def driver_log_size() -> int:
    try:
        return os.path.getsize(_driver_log) if _driver_log else 0
    except OSError:
        return 0


def read_driver_log(offset: int, limit: int = 20 * 2**20) -> str:
    """What the driver JVM logged since byte ``offset`` (at most its last ``limit`` bytes), redacted."""
    from batchinfer.redaction import REDACTOR

    if not _driver_log:
        return ""
    try:
        with open(_driver_log, "rb") as fh:
            fh.seek(max(offset, driver_log_size() - limit))
            return REDACTOR.text(fh.read().decode(errors="replace"))
    except OSError:
        return ""


def log_dir() -> str:
    """``$BATCHINFER_LOG_DIR``, else ``<temp dir>/batchinfer-logs``."""
    import tempfile

    return os.environ.get("BATCHINFER_LOG_DIR") or os.path.join(tempfile.gettempdir(), "batchinfer-logs")


def _new_log_file() -> str:
    import time

    directory = log_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(
        directory, f"spark-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
    )
    # Spark's log may quote paths and values: readable by this user only.
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600))
    return path


# Printed by the JVM itself for Spark's --add-modules=jdk.incubator.vector; no JVM flag silences it.
_JVM_NOISE = (b"WARNING: Using incubator modules:",)


def _launch_filtered_gateway(options: dict) -> None:
    """Start the driver JVM ourselves (as SparkContext would) with its stderr filtered line by line.

    Everything but the startup noise goes on to this process's stderr (fd 2), as before.
    """
    import threading
    from subprocess import PIPE

    from pyspark import SparkConf, SparkContext
    from pyspark.java_gateway import launch_gateway

    if SparkContext._gateway is not None:
        return
    conf = SparkConf(loadDefaults=False)
    for key, value in options.items():
        conf.set(key, str(value))
    gateway = launch_gateway(conf, popen_kwargs={"stderr": PIPE})

    from batchinfer.redaction import REDACTOR

    def forward(stream) -> None:
        for line in iter(stream.readline, b""):
            if not line.startswith(_JVM_NOISE):
                if REDACTOR.secrets:  # the JVM prints paths and values: no ${env:...} value passes
                    line = REDACTOR.text(line.decode(errors="replace")).encode()
                os.write(2, line)

    threading.Thread(target=forward, args=(gateway.proc.stderr,), daemon=True, name="spark-stderr").start()
    SparkContext._ensure_initialized(gateway=gateway, conf=conf)


def application_info(spark) -> dict:
    sc = spark.sparkContext
    return {"application_id": sc.applicationId, "master": sc.master, "spark_version": spark.version}
