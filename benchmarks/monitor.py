"""Run one command as its own process and measure wall time and peak RSS of its process tree."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

POLL_S = 0.2


@dataclass
class ProcessRun:
    """What one monitored process did. RSS figures are sums over the tree at one poll, in bytes.

    Summed RSS counts pages shared between processes (forked Python workers share their
    parent's pages) once per process, so it overstates physical memory somewhat.
    """

    returncode: int | None
    wall_s: float
    stdout: str
    stderr_path: Path
    timed_out: bool = False
    peak_rss: int = 0
    peak_jvm_rss: int = 0
    peak_python_workers_rss: int = 0
    peak_single_python_worker_rss: int = 0
    max_python_workers: int = 0  # pyspark.daemon and its forked workers
    # (seconds since start, tree RSS, Python-worker RSS, Python worker count), one per poll
    timeline: list[tuple[float, int, int, int]] = field(default_factory=list)


def _kind(proc: psutil.Process, root_pid: int) -> str:
    if proc.pid == root_pid:
        return "root"
    try:
        name = proc.name()
        cmd = " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return "other"
    if name == "java" or "java" in cmd.split(" ")[0]:
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "python_worker"
    return "other"


def _terminate_tree(root: psutil.Process) -> None:
    """Stop the process we started and its descendants (only those)."""
    try:
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def run_monitored(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path,
    timeout_s: float = 900,
    poll_s: float = POLL_S,
) -> ProcessRun:
    """Run argv to completion; stdout is captured, stderr goes to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    stdout_path = log_path.with_suffix(".stdout")
    with open(log_path, "wb") as err, open(stdout_path, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env or os.environ.copy(), cwd=cwd)
        root = psutil.Process(proc.pid)
        result = ProcessRun(None, 0.0, "", log_path)
        kinds: dict[int, str] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    break
                total = jvm = workers = single = n_workers = 0
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    kind = kinds.get(p.pid) or _kind(p, proc.pid)
                    if kind != "other":  # spark-submit's shell exec()s into the JVM: re-check "other"
                        kinds[p.pid] = kind
                    total += rss
                    if kind == "jvm":
                        jvm += rss
                    elif kind == "python_worker":
                        workers += rss
                        single = max(single, rss)
                        n_workers += 1
                result.peak_rss = max(result.peak_rss, total)
                result.peak_jvm_rss = max(result.peak_jvm_rss, jvm)
                result.peak_python_workers_rss = max(result.peak_python_workers_rss, workers)
                result.peak_single_python_worker_rss = max(result.peak_single_python_worker_rss, single)
                result.max_python_workers = max(result.max_python_workers, n_workers)
                result.timeline.append((time.perf_counter() - start, total, workers, n_workers))
                stop.wait(poll_s)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            result.timed_out = True
            _terminate_tree(root)
            proc.wait()
        result.wall_s = time.perf_counter() - start
        stop.set()
        poller.join()
    result.returncode = proc.returncode
    result.stdout = stdout_path.read_text(errors="replace")
    return result
