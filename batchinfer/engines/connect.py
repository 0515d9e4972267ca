"""Spark Connect: the same tasks as classic Spark, scheduled through a Connect session.

A Connect client has no SparkContext: no broadcast variables, no accumulators, no JVM. So:

- the model travels as a session **artifact** (``SparkSession.addArtifacts(path, file=True)``,
  named after its sha256); each worker reads it with ``SparkFiles.get`` and checks its sha256
  before it builds its first onnxruntime session (a different file: :class:`ModelError`);
- the task list is ``spark.range(0, n, 1, n)``: exactly one Spark task per row group, each
  mapping its id to the plan's (file, row group) in ``mapInArrow``;
- everything the workers report (files, partial metrics, sessions, providers, timings) comes back
  as the task's result rows (:mod:`batchinfer.task`), as with every engine;
- the run's scoring operation carries the session tag ``batchinfer-<run id>``; an interrupted
  driver interrupts it on the server (``interruptTag``).

Only the direct reader and writer run here (``runtime.reader``/``output.writer``: ``auto`` or
``pyarrow``): the Spark-reader and Spark-writer paths count through accumulators, and
:func:`check_config` refuses them before any Spark work.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

_ARTIFACT_PREFIX = "batchinfer-model-"
_MODE_ENV = "SPARK_CONNECT_MODE_ENABLED"
_mode_set_by_us = False


def enter_connect_mode() -> None:
    """Make ``pyspark.sql.functions`` build Connect columns for this run (GX and our checks use it).

    pyspark's own ``SparkSession.builder.remote(...)`` puts the process in Connect mode for good;
    a session built with the Connect builder directly (or next to a classic one, as in the tests)
    does not, and ``F.col`` would then build classic columns. :func:`leave_connect_mode` undoes
    only what this set.
    """
    global _mode_set_by_us
    if _MODE_ENV not in os.environ:
        os.environ[_MODE_ENV] = "1"
        _mode_set_by_us = True


def leave_connect_mode() -> None:
    global _mode_set_by_us
    if _mode_set_by_us:
        os.environ.pop(_MODE_ENV, None)
        _mode_set_by_us = False


def remote_url(config) -> str | None:
    """The Connect endpoint: ``spark.remote``, else ``SPARK_REMOTE`` (None when neither is set)."""
    return getattr(config.spark, "remote", None) or os.environ.get("SPARK_REMOTE") or None


def shown_url(url: str | None) -> str | None:
    """``sc://host:port/;token=...;user_id=...`` without its parameters (tokens stay out of manifests)."""
    if not url:
        return url
    return url.split(";", 1)[0].rstrip("/") or url


def check_config(config) -> None:
    """Refuse, in one line and before Spark starts, what needs a SparkContext."""
    from batchinfer.errors import ConfigError

    rt, out = config.runtime, config.output
    if rt.reader == "spark":
        raise ConfigError(
            "runtime.reader: spark is not supported on Spark Connect (it counts through "
            "accumulators, which Connect does not have)",
            hint="use runtime.reader: auto (the scoring tasks read their row groups themselves)",
        )
    if out.writer == "spark":
        raise ConfigError(
            "output.writer: spark is not supported on Spark Connect (its checks and worker stats "
            "count through accumulators, which Connect does not have)",
            hint="use output.writer: auto (the scoring tasks write their files and return them as data)",
        )


@dataclass(frozen=True)
class ArtifactModel:
    """The model as a session artifact: ``.value`` reads and verifies it on the worker."""

    name: str
    sha256: str

    @property
    def value(self) -> bytes:
        from pyspark import SparkFiles

        from batchinfer.errors import ModelError

        try:
            path = SparkFiles.get(self.name)
        except Exception:  # no SparkFiles root (not in a Spark worker)
            path = self.name
        if not os.path.exists(path) and os.path.exists(self.name):  # the session's artifact dir is the cwd
            path = os.path.abspath(self.name)
        try:
            with open(path, "rb") as fh:
                content = fh.read()
        except OSError as exc:
            raise ModelError(
                f"model artifact {self.name} is not on this worker ({type(exc).__name__} at {path})",
                hint="the Connect server must support SparkSession.addArtifacts(file=True); "
                "check the server's artifact settings",
            ) from None
        got = hashlib.sha256(content).hexdigest()
        if got != self.sha256:
            raise ModelError(
                f"model artifact {self.name} on this worker has sha256 {got[:12]}…, "
                f"expected {self.sha256[:12]}…",
                hint="the artifact was replaced or corrupted in transit; rerun the job",
            )
        return content


def ship_model(session, content: bytes, sha256: str) -> ArtifactModel:
    """Upload the model bytes once per session (the name is its digest: re-adding is a no-op)."""
    import shutil
    import tempfile

    name = f"{_ARTIFACT_PREFIX}{sha256}.onnx"
    directory = tempfile.mkdtemp(prefix="batchinfer-artifact-")
    try:
        path = os.path.join(directory, name)
        with open(path, "wb") as fh:
            fh.write(content)
        session.addArtifacts(path, file=True)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return ArtifactModel(name, sha256)


def connect_info(session, config=None, command_line_conf=None) -> dict:
    """What the manifest records under ``spark`` for a Connect session (no SparkContext)."""
    from batchinfer.spark import session_conf
    from batchinfer.spark_conf import shown

    conf = session.conf
    info = {
        "application_id": conf.get("spark.app.id", None),
        "master": conf.get("spark.master", None),
        "spark_version": session.version,
        "remote": shown_url(remote_url(config) if config is not None else None)
        or shown_url(os.environ.get("SPARK_REMOTE")),
        "connect": True,
    }
    if info["remote"] is None:
        info.pop("remote")
    if config is not None:
        keys = sorted({*session_conf(config), *config.spark.conf, *(command_line_conf or {})})
        effective = {}
        for key in keys:
            try:
                value = conf.get(key, None)
            except Exception:  # a static conf the server does not expose
                value = None
            if value is not None:
                effective[key] = shown(key, value)
        info["conf"] = effective
    return info


class ConnectEngine:
    name = "spark-connect"

    def __init__(self, session) -> None:
        self.session = session
        self._tag: str | None = None
        self._models: dict[str, ArtifactModel] = {}

    @classmethod
    def start(cls, config, *, spark=None, command_line_conf=None) -> ConnectEngine:
        check_config(config)
        if spark is None:
            from batchinfer import spark as spark_mod

            spark = spark_mod.get_connect_session(config, command_line_conf=command_line_conf)
        enter_connect_mode()  # until the run ends (batchinfer.engines.finish)
        return cls(spark)

    def describe(self, config, command_line_conf=None) -> dict:
        return connect_info(self.session, config, command_line_conf)

    def begin(self, run_id: str, job: str) -> None:
        self._tag = f"batchinfer-{run_id}"

    def jobs_started(self, run_id: str) -> int | None:
        """Connect reports no job ids to the client: unknown (None)."""
        return None

    def model_for(self, content: bytes) -> ArtifactModel:
        sha = hashlib.sha256(content).hexdigest()
        if sha not in self._models:
            self._models[sha] = ship_model(self.session, content, sha)
        return self._models[sha]

    def run(self, task, task_rows: list) -> list[dict]:
        """Run ``task`` over ``task_rows`` (one Spark task each) and collect the result rows."""
        from batchinfer.io.direct_writer import RESULT_SCHEMA
        from batchinfer.task import by_index

        session = self.session
        model = self.model_for(task.model.value)
        n = max(1, len(task_rows))
        # spark.range with n slices: partition i holds exactly id i, one Spark task per row group
        # (createDataFrame from a local list would be one partition; repartition(n) round-robins
        # unevenly and shuffles).
        ids = session.range(0, len(task_rows), 1, n)
        function = by_index(task.with_model(model), list(task_rows))
        tag = self._tag
        if tag:
            session.addTag(tag)
        try:
            rows = ids.mapInArrow(function, RESULT_SCHEMA).collect()
        except KeyboardInterrupt:
            if tag:
                try:
                    session.interruptTag(tag)
                except Exception:  # the server may be gone: nothing left to stop
                    pass
            raise
        finally:
            if tag:
                session.removeTag(tag)
        return [r.asDict() for r in rows]
