"""Run ``batchinfer run`` in a child process that the reliability tests can pause and SIGKILL.

The child is started in its own session (process group), so a kill takes the driver, its JVM
and the Python workers together, as a crashed driver host would. The switches are the
test-only ones of :mod:`batchinfer.faults` and :data:`batchinfer.scoring.udf.FAULT_ENV`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from batchinfer import faults
from batchinfer.spark import local_cluster_spark_home

ROOT = Path(__file__).resolve().parents[2]


def child_env(tmp_path, **extra: str) -> dict:
    env = dict(os.environ)
    env["PYSPARK_PYTHON"] = sys.executable
    env["SPARK_WORKER_DIR"] = str(tmp_path / "spark-worker")
    # local-cluster workers use $SPARK_HOME/work (not SPARK_WORKER_DIR): keep it in tmp_path.
    env["SPARK_HOME"] = local_cluster_spark_home(worker_dir=env["SPARK_WORKER_DIR"])
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for key in (
        faults.PAUSE_AT_ENV,
        faults.PAUSE_FILE_ENV,
        faults.KILL_EXECUTOR_ENV,
        faults.FAIL_FIRST_ATTEMPT_ENV,
    ):
        env.pop(key, None)
    env.update(extra)
    return env


def write_config(path, cfg: dict) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def _parents() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            out[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    return out


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now (children, grandchildren, ...)."""
    parents = _parents()
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == current]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie writes nothing more


class ChildRun:
    """One ``python -m batchinfer.cli run CONFIG --json ...`` child process."""

    def __init__(self, config, env: dict, *args: str, workdir) -> None:
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "stdout.txt"
        self.stderr_path = workdir / "stderr.txt"
        self.marker = Path(env.get(faults.PAUSE_FILE_ENV, workdir / "pause"))
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "batchinfer.cli", "run", str(config), "--json", *args],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def wait_for_pause(self, timeout: float = 240) -> str:
        """Block until the child reports it is paused at a step; return the step name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.marker.exists():
                text = self.marker.read_text().split()
                if text:
                    return text[0]
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"child exited with {self.proc.returncode} before pausing:\n{self.stderr[-3000:]}"
                )
            time.sleep(0.1)
        self.kill()
        raise AssertionError(f"child did not pause within {timeout} s:\n{self.stderr[-3000:]}")

    def release(self) -> None:
        self.marker.unlink()

    def kill(self) -> None:
        """SIGKILL the child's whole process tree (driver, its JVM, Python workers) and wait until
        every process is gone.

        PySpark's worker daemon puts itself in its own process group, so killing the child's group
        alone leaves Python workers that go on writing for a moment after the driver died: the
        tree is collected first, and each process is killed and waited for.
        """
        tree = _descendants(self.proc.pid)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=60)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.05)

    def wait(self, timeout: float = 300) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")
