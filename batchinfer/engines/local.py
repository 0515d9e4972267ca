"""The embedded engine: a pool of worker processes on this machine, no JVM.

Each worker is a fresh Python process (``python -m batchinfer.engines.worker``: never a fork of
a driver that may already run onnxruntime or GX threads, and unlike multiprocessing's ``spawn``
it does not re-run the caller's script, so a plain script without ``if __name__ == "__main__"``
works). It imports pyarrow and onnxruntime while the driver prepares the
checks, receives the task program and the model bytes **once** (sha256 verified), and then runs
:meth:`batchinfer.task.ScoringTask.run` for one (file, row group) at a time, as a Spark task
would: one onnxruntime session per worker and model digest (``scoring/session.py``), with
``runtime.threads_per_task`` threads.

Failures follow Spark's task semantics (``spark.task.maxFailures``, default 4 here):

- a task that raises (anything but a deterministic batchinfer error) is retried with the next
  attempt number, on the same or another worker;
- a worker process that dies (SIGKILL, out of memory) fails the attempt it was running; a fresh
  worker replaces it and the task is retried;
- a task that failed ``maxFailures`` times fails the run.

Every attempt writes under its own attempt directory and only the result rows of the successful
attempt reach the driver, so the commit counts every row exactly once. Workers die with the
driver: they ignore Ctrl-C (the driver stops them), exit when their pipe closes, and on Linux
get SIGKILL when the driver process dies (``PR_SET_PDEATHSIG``).

Messages between the driver and its workers use ``multiprocessing.connection`` over a socket
pair the driver creates for each worker (pickled Python objects, as multiprocessing and Spark's
own worker protocol do): only what this driver process sent is ever decoded, never anything from
a config, a model or the data.

Knobs: ``runtime.workers`` (default: usable cores // ``runtime.threads_per_task``, at most one
per task), ``runtime.threads_per_task``, ``spark.conf["spark.task.maxFailures"]``.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

from batchinfer.errors import TaskFailedError

DEFAULT_MAX_FAILURES = 4
START_METHOD = "subprocess"  # a fresh interpreter: `python -m batchinfer.engines.worker`
_STOP_TIMEOUT_S = 5.0

# --------------------------------------------------------------------------- worker process side
_MODEL: dict = {}  # digest -> model bytes, set once per worker by the "setup" message


@dataclass(frozen=True)
class WorkerModel:
    """The model source a worker's task reads: bytes the driver sent once to this process."""

    digest: str

    @property
    def value(self) -> bytes:
        return _MODEL[self.digest]


def _die_with_parent(parent: int) -> None:
    """Linux: SIGKILL this worker when the driver dies (no orphans after a driver SIGKILL)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # no libc or no prctl: the closed pipe still ends the worker
        return
    if os.getppid() != parent:  # the driver died before prctl took effect
        os._exit(1)


def _warm_imports() -> None:
    """What every task needs: imported while the driver plans the checks, not in the first task."""
    try:
        import numpy  # noqa: F401
        import onnxruntime  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        import batchinfer.io.direct_writer  # noqa: F401
        import batchinfer.scoring.rowgroups  # noqa: F401
        import batchinfer.scoring.tensors  # noqa: F401
        import batchinfer.scoring.udf  # noqa: F401
        import batchinfer.task  # noqa: F401
    except Exception:  # reported by the first task that needs it
        pass


def serve(argv: list[str]) -> None:
    """``python -m batchinfer.engines.worker FD PARENT_PID THREADS``: one worker process."""
    from multiprocessing.connection import Connection

    fd, parent, threads = (int(a) for a in argv[:3])
    worker_main(Connection(fd), parent, threads)


def worker_main(conn, parent: int, threads: int) -> None:
    """A worker's loop: setup (task program + model) once, then one task per message."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    _die_with_parent(parent)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    _warm_imports()
    try:
        import pyarrow as pa

        pa.set_cpu_count(max(1, threads))  # no oversubscription: the pool already uses every core
    except Exception:
        pass
    from batchinfer.task import Attempt

    task = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the driver is gone
            os._exit(0)
        kind = message[0]
        if kind == "stop":
            conn.close()
            return
        if kind == "setup":
            _, task_bytes, model_bytes, digest, path = message  # task_bytes: the ScoringTask itself
            for entry in reversed(path):  # the driver's import path (a notebook's sys.path edits)
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            got = hashlib.sha256(model_bytes).hexdigest()
            if got != digest:
                conn.send(("setup_failed", f"model bytes sha256 {got[:12]}, expected {digest[:12]}"))
                continue
            _MODEL.clear()
            _MODEL[digest] = model_bytes
            task = task_bytes.with_model(WorkerModel(digest))
            continue
        _, index, attempt_no, rows = message
        try:
            result = task.run(rows, Attempt("local", index, attempt_no))
        except BaseException as exc:  # noqa: BLE001  (reported to the driver, which decides)
            tb = traceback.format_exc()
            try:
                conn.send(("failed", index, attempt_no, exc, _one_line(exc), tb))
            except Exception:  # an exception that does not pickle: its text is enough
                conn.send(("failed", index, attempt_no, None, _one_line(exc), tb))
            continue
        conn.send(("done", index, attempt_no, result))


def _check_picklable(setup) -> None:
    """The task program must pickle (it does unless a test seam is a closure): say so in one line."""
    import pickle

    try:
        pickle.dumps(setup[1], protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        from batchinfer.errors import ConfigError

        raise ConfigError(
            f"the embedded engine cannot send this task to its workers ({type(exc).__name__}: {exc})",
            hint="pass module-level functions (not closures or lambdas) as session_factory, "
            "or use runtime.engine: spark",
        ) from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


# --------------------------------------------------------------------------- choosing it
def _is_local_path(uri: str) -> bool:
    from urllib.parse import urlparse

    scheme = urlparse(str(uri)).scheme.lower()
    return scheme in ("", "file") or len(scheme) == 1  # a Windows drive letter is no scheme


def spark_only_settings(config) -> list[tuple[str, str]]:
    """(field, value) of settings only Spark can run: the embedded engine refuses them."""
    found = []
    if config.runtime.reader == "spark":
        found.append(("runtime.reader", "spark"))
    if config.output.writer == "spark":
        found.append(("output.writer", "spark"))
    return found


def check_config(config) -> None:
    """runtime.engine: local with a Spark-only setting: a one-line ConfigError before any work."""
    found = spark_only_settings(config)
    if found:
        from batchinfer.errors import ConfigError

        field_name, value = found[0]
        raise ConfigError(
            f"{field_name}: {value} needs Spark, but runtime.engine is local",
            hint=f"remove {field_name} (auto uses the workers' pyarrow path) or set runtime.engine: spark",
        )


def auto_choice(config):
    """``runtime.engine: auto`` once no Spark master, remote or spark-submit is in sight."""
    from batchinfer.engines import EngineChoice

    found = spark_only_settings(config)
    if found:
        return EngineChoice("spark", f"{found[0][0]}: {found[0][1]} needs Spark (embedded Spark, local[*])")
    remote = [
        name
        for name, uri in (("input", config.input.path), ("output", config.output.path))
        if not _is_local_path(uri)
    ]
    if remote:
        return EngineChoice(
            "spark", f"spark.master is unset but the {' and '.join(remote)} path is not local: embedded Spark"
        )
    return EngineChoice(
        "local", "spark.master is unset and the input and output are local paths: embedded engine, no JVM"
    )


# --------------------------------------------------------------------------- driver side
def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def pool_size(config, tasks: int | None = None) -> int:
    """``runtime.workers``, or usable cores // threads per task; never more workers than tasks."""
    runtime = config.runtime
    size = getattr(runtime, "workers", None) or max(1, usable_cores() // runtime.threads_per_task)
    if tasks is not None:
        size = min(size, max(1, tasks))
    return max(1, size)


def max_failures(config) -> int:
    value = (config.spark.conf or {}).get("spark.task.maxFailures", DEFAULT_MAX_FAILURES)
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        from batchinfer.errors import ConfigError

        raise ConfigError(
            "Invalid spark.conf",
            problems=[("spark.conf.spark.task.maxFailures", f"expected an integer >= 1, got {value!r}")],
        ) from None


@dataclass
class _Worker:
    process: object
    conn: object
    task: tuple | None = None  # (index, attempt) it is running
    set_up: bool = False


@dataclass
class PoolStats:
    """What the manifest records about the pool (engine.describe)."""

    workers_started: int = 0
    start_s: float = 0.0
    task_attempts: int = 0
    failed_attempts: list = field(default_factory=list)  # (task, attempt, why)


class LocalEngine:
    """Schedules the plan's tasks on a pool of local worker processes (see the module docstring)."""

    name = "local"
    session = None  # no Spark

    def __init__(self, config) -> None:
        self.config = config
        self.threads = config.runtime.threads_per_task
        self.size = pool_size(config)
        self.max_failures = max_failures(config)
        self.stats = PoolStats()
        self._workers: list[_Worker] = []
        self._description: dict = {}

    @classmethod
    def start(cls, config, **_ignored) -> LocalEngine:
        check_config(config)
        engine = cls(config)
        engine._start_workers(engine.size)  # they import onnxruntime while the driver plans checks
        return engine

    # ---------------------------------------------------------------- engine interface
    def describe(self, config=None, command_line_conf=None) -> dict:
        """What the manifest records under ``spark``: the pool, and (filled in as the run goes,
        the same dict) its task attempts and failures."""
        self._description.clear()
        self._description.update(self._describe())
        return self._description

    def _describe(self) -> dict:
        return {
            "engine": "local",
            "workers": self.size,
            "threads_per_task": self.threads,
            "start_method": START_METHOD,
            "max_failures": self.max_failures,
            "workers_started": self.stats.workers_started,
            "task_attempts": self.stats.task_attempts,
            "failed_attempts": [
                {"task": t, "attempt": a, "error": why} for t, a, why in self.stats.failed_attempts
            ],
        }

    def begin(self, run_id: str, job: str) -> None:
        """Nothing to group: the pool only runs this run's tasks."""

    def jobs_started(self, run_id: str) -> int | None:
        return None  # no Spark jobs

    def run(self, task, task_rows: list) -> list[dict]:
        """Run ``task`` over ``task_rows`` (one task per row group); the successful attempts' rows."""
        try:
            return self._run(task, list(task_rows))
        finally:
            self.close()
            if self._description:
                self._description.update(self._describe())

    def close(self) -> None:
        """Stop every worker (idempotent); called after the run and on Ctrl-C / errors."""
        workers, self._workers = self._workers, []
        for w in workers:
            if w.task is not None:  # mid-task (Ctrl-C, another task's error): its attempt is void
                w.process.kill()
                continue
            try:
                w.conn.send(("stop",))
            except Exception:
                pass
        deadline = time.monotonic() + _STOP_TIMEOUT_S
        for w in workers:
            _reap(w, max(0.0, deadline - time.monotonic()))

    def __del__(self) -> None:  # a run that failed before its tasks: do not leave workers behind
        try:
            self.close()
        except Exception:
            pass

    # ---------------------------------------------------------------- internals
    def _start_workers(self, n: int) -> None:
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        t0 = time.perf_counter()
        for _ in range(n):
            ours, theirs = socket.socketpair()
            fd = theirs.fileno()
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "batchinfer.engines.worker",
                    str(fd),
                    str(os.getpid()),
                    str(self.threads),
                ],
                pass_fds=[fd],
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
            )
            theirs.close()
            self._workers.append(_Worker(process, Connection(ours.detach())))
            self.stats.workers_started += 1
        self.stats.start_s += time.perf_counter() - t0

    def _run(self, task, task_rows: list) -> list[dict]:
        from multiprocessing.connection import wait

        from batchinfer.errors import BatchInferError

        if not task_rows:
            return []
        wanted = pool_size(self.config, len(task_rows))
        for w in self._workers[wanted:]:  # fewer tasks than cores: stop the extra workers
            self._stop_worker(w)
        self._workers = self._workers[:wanted]
        if len(self._workers) < wanted:
            self._start_workers(wanted - len(self._workers))

        digest = hashlib.sha256(task.model.value).hexdigest()
        path = [p for p in sys.path if p]
        setup = ("setup", task.with_model(None), task.model.value, digest, path)
        _check_picklable(setup)
        pending: list[tuple[int, int]] = [(i, 0) for i in range(len(task_rows))]
        pending.reverse()  # pop() from the end: task 0 first
        failures = [0] * len(task_rows)
        results: dict[int, list[dict]] = {}

        while len(results) < len(task_rows):
            for w in list(self._workers):  # hand every idle worker a task
                if w.task is None and pending:
                    index, attempt = pending[-1]
                    try:
                        if not w.set_up:
                            w.conn.send(setup)
                            w.set_up = True
                        w.conn.send(("task", index, attempt, [task_rows[index]]))
                    except OSError:  # it died while idle: no attempt was lost, replace it
                        self._replace(w)
                        continue
                    pending.pop()
                    w.task = (index, attempt)
                    self.stats.task_attempts += 1
            busy = [w for w in self._workers if w.task is not None]
            ready = wait([w.conn for w in busy])  # a result, or EOF when a worker died
            for w in busy:
                if w.conn in ready:
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        message = None  # it died while answering: handled as a lost worker below
                    if message is not None:
                        kind = message[0]
                        if kind == "done":
                            _, index, attempt, rows = message
                            results[index] = rows
                            w.task = None
                            continue
                        if kind == "setup_failed":
                            from batchinfer.errors import ModelError

                            raise ModelError(
                                f"a local worker received corrupt model bytes ({message[1]})",
                                hint="re-run; if it persists, check the machine's memory",
                            )
                        _, index, attempt, exc, line, tb = message
                        w.task = None
                        if isinstance(exc, BatchInferError):  # deterministic: retrying cannot help
                            raise exc
                        self._failed(index, attempt, line, failures, pending, tb)
                        continue
                if w.conn in ready and w.task is not None:  # EOF: the worker process is gone
                    code = _wait_exit(w.process)
                    index, attempt = w.task
                    why = f"worker process {w.process.pid} exited with {_exit_text(code)}"
                    w.task = None
                    self._replace(w)
                    self._failed(index, attempt, why, failures, pending, None)
        return [row for i in sorted(results) for row in results[i]]

    def _failed(self, index: int, attempt: int, why: str, failures: list, pending: list, tb) -> None:
        """Spark's rule: retry with the next attempt number until maxFailures attempts failed."""
        failures[index] += 1
        self.stats.failed_attempts.append((index, attempt, why))
        if failures[index] >= self.max_failures:
            raise TaskFailedError(
                f"task {index} failed {failures[index]} times (spark.task.maxFailures="
                f"{self.max_failures}); last failure: {why}",
                hint="the manifest's spark.failed_attempts lists every failed attempt; fix the cause, or "
                "raise spark.task.maxFailures for flaky infrastructure",
                detail=tb,
            )
        pending.append((index, attempt + 1))

    def _replace(self, dead: _Worker) -> None:
        _reap(dead, 1.0)
        self._workers.remove(dead)
        self._start_workers(1)

    def _stop_worker(self, w: _Worker) -> None:
        try:
            w.conn.send(("stop",))
        except Exception:
            pass
        _reap(w, _STOP_TIMEOUT_S)


def _wait_exit(process, timeout: float = 5.0):
    import subprocess

    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:  # its socket closed but it lingers: make sure it is gone
        process.kill()
        return process.wait()


def _reap(w: _Worker, timeout: float) -> None:
    """Wait for a stopped worker to exit; kill it when it does not."""
    import subprocess

    try:
        w.process.wait(timeout)
    except subprocess.TimeoutExpired:
        w.process.kill()
        w.process.wait()
    try:
        w.conn.close()
    except Exception:
        pass


def _exit_text(code) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"
