"""Test-only fault switches, read from the environment. Never set them in production.

They exist so the reliability tests (``tests/integration/test_faults.py``, documented in
``docs/reliability.md``) can crash a real run at a chosen point, on real Spark:

``BATCHINFER_TEST_FAIL_FIRST_ATTEMPT=<attempt>:<partition ids>[:late]``
    (see :data:`batchinfer.scoring.udf.FAULT_ENV`) a scoring task raises on that attempt; with
    ``:late``, after its first batch was scored and written (its attempt leaves files behind).
``BATCHINFER_TEST_KILL_EXECUTOR=<partition ids>``
    read in the executor: on its first attempt, a scoring task of one of those partitions
    SIGKILLs its own executor JVM (the ``CoarseGrainedExecutorBackend`` ancestor of the Python
    worker). Only meaningful on a cluster (``local-cluster[...]``); in ``local[N]`` mode the
    "executor" is the driver JVM, so the switch does nothing there. Pass it to executors with
    ``spark.executorEnv.BATCHINFER_TEST_KILL_EXECUTOR``.
``BATCHINFER_TEST_KILL_WORKER=<partition ids>``
    embedded engine (``runtime.engine: local``): on its first attempt, a scoring task of one of
    those task indexes SIGKILLs its own worker process mid-task, after its first batch was scored
    and written (the attempt leaves files behind). Workers inherit the driver's environment.
``BATCHINFER_TEST_PAUSE_AT=<step>[,<step>...]`` and ``BATCHINFER_TEST_PAUSE_FILE=<path>``
    at each named step the process writes the step name to ``<path>`` and waits while that file
    exists (at most 10 minutes), so a test can SIGKILL it there, or delete the file to let it go
    on. Driver steps (commit protocol): ``journal_written``, ``moved_previous``,
    ``partition_committed``. Executor step: ``scoring`` (after the first Arrow batch of a scoring
    task has been scored and handed to Spark's staging writer; local mode only, where executors
    inherit the driver's environment).
``BATCHINFER_TEST_CRASH_ONCE=<path>``
    ``batchinfer run`` fails like an infrastructure failure (exit 1, before any manifest) when
    ``<path>`` does not exist yet, creating it; the next run (a scheduler's retry) goes on. The
    Airflow test uses it for the retried-try scenario.
"""

from __future__ import annotations

import os
import signal
import time

FAIL_FIRST_ATTEMPT_ENV = "BATCHINFER_TEST_FAIL_FIRST_ATTEMPT"
KILL_EXECUTOR_ENV = "BATCHINFER_TEST_KILL_EXECUTOR"
KILL_WORKER_ENV = "BATCHINFER_TEST_KILL_WORKER"
PAUSE_AT_ENV = "BATCHINFER_TEST_PAUSE_AT"
PAUSE_FILE_ENV = "BATCHINFER_TEST_PAUSE_FILE"
CRASH_ONCE_ENV = "BATCHINFER_TEST_CRASH_ONCE"
_PAUSE_LIMIT_S = 600.0


def pause_steps() -> set[str]:
    return {s.strip() for s in os.environ.get(PAUSE_AT_ENV, "").split(",") if s.strip()}


def pause_at(step: str) -> None:
    """Block at ``step`` when the pause switch names it (see the module docstring)."""
    if step not in pause_steps():
        return
    marker = os.environ.get(PAUSE_FILE_ENV)
    if not marker:
        return
    tmp = f"{marker}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(f"{step} {os.getpid()}\n")
    os.replace(tmp, marker)
    deadline = time.monotonic() + _PAUSE_LIMIT_S
    while os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.05)


def driver_pause_hook():
    """A ``commit_pause`` callable for :meth:`OutputTable.commit`, or None when no switch is set."""
    return pause_at if pause_steps() else None


def _executor_jvm_pid(pid: int) -> int | None:
    """Walk up the process tree from ``pid`` to the executor JVM (Linux /proc)."""
    for _ in range(16):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{pid}/stat") as fh:
                stat = fh.read()
        except OSError:
            return None
        if b"CoarseGrainedExecutorBackend" in cmdline:
            return pid
        # Field 4 of /proc/<pid>/stat is the parent pid; the command name (field 2) may hold spaces.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent <= 1:
            return None
        pid = parent
    return None


def maybe_kill_executor(partition_id: int, attempt: int) -> None:
    """On the first attempt of a listed partition, SIGKILL this task's executor JVM."""
    spec = os.environ.get(KILL_EXECUTOR_ENV)
    if not spec or attempt != 0:
        return
    targets = {int(p) for p in spec.split(",") if p.strip()}
    if partition_id not in targets:
        return
    jvm = _executor_jvm_pid(os.getpid())
    if jvm is not None:
        os.kill(jvm, signal.SIGKILL)
        time.sleep(5)  # let the executor's death, not this worker's exit, be what Spark sees
        os._exit(1)


def maybe_kill_worker(attempt) -> None:
    """The ``BATCHINFER_TEST_KILL_WORKER`` switch: SIGKILL this embedded-engine worker."""
    spec = os.environ.get(KILL_WORKER_ENV)
    if not spec or attempt is None or attempt.stage != "local" or attempt.attempt != 0:
        return
    if attempt.partition in {int(p) for p in spec.split(",") if p.strip()}:
        os.kill(os.getpid(), signal.SIGKILL)


def crash_once() -> None:
    """The ``BATCHINFER_TEST_CRASH_ONCE`` switch (see the module docstring)."""
    marker = os.environ.get(CRASH_ONCE_ENV)
    if not marker or os.path.exists(marker):
        return
    with open(marker, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    raise RuntimeError(f"test fault {CRASH_ONCE_ENV}: simulated infrastructure failure")
