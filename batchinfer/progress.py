"""Progress for long runs: a live display on a terminal, timestamped log lines otherwise.

On a TTY (stderr), a Rich live bar shows the stage, Spark tasks done/total, rows/s, elapsed and
ETA. Without one (logs, CI, Airflow), plain timestamped lines: one per stage, and task progress
at most once per ``interval`` seconds. ``-q`` and ``--json`` turn it off (stdout stays JSON).

Tasks done/total come from Spark's status tracker (no listener, polled twice a second); rows/s
is estimated from the planned row count and the share of tasks done.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

log = logging.getLogger("batchinfer")

#: Seconds between two task-progress lines when stderr is not a terminal.
LINE_INTERVAL = 10.0


def spark_tasks() -> tuple[int, int] | None:
    """(tasks done, tasks in all) over the active Spark stages, or None without a SparkContext."""
    from pyspark import SparkContext

    sc = SparkContext._active_spark_context
    if sc is None:
        return None
    tracker = sc.statusTracker()
    done = total = 0
    for sid in tracker.getActiveStageIds():
        info = tracker.getStageInfo(sid)
        if info is not None:
            done += info.numCompletedTasks
            total += info.numTasks
    return done, total


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class _Progress:
    """Called with each stage name (``Timings.stage``); polls Spark's tasks while scoring."""

    def __init__(
        self,
        tty: bool,
        *,
        console=None,
        interval: float = LINE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        tasks: Callable[[], tuple[int, int] | None] = spark_tasks,
    ) -> None:
        self.tty = tty
        self.interval = interval
        self.clock = clock
        self.tasks = tasks
        self.stage = ""
        self.rows = 0
        self.started = self.stage_started = clock()
        self._last_line = None  # when the last task line was logged
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live = None
        self._task_id = None
        if tty:
            self._start_live(console)

    # ------------------------------------------------------------------ what the job reports
    def set_rows(self, rows: int) -> None:
        """The rows the run will score (for rows/s and the ETA)."""
        self.rows = int(rows)

    def __call__(self, stage: str) -> None:
        self.stage = stage
        self.stage_started = self.clock()
        if self._live is not None:
            # A new row per stage (Rich cannot reset a total to unknown): one stage's tasks and
            # ETA never show under the next stage's name.
            self._live.remove_task(self._task_id)
            self._task_id = self._live.add_task(
                stage, total=None, rate="", eta="?", elapsed=_duration(self._elapsed())
            )
        else:
            log.info("%s batchinfer: stage %s (elapsed %s)", _stamp(), stage, _duration(self._elapsed()))
        if stage == "score_and_stage" and self._thread is None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ task progress
    def update(self, done: int, total: int) -> None:
        """Spark tasks done/total of the current stage."""
        rate, eta = self._rate_eta(done, total)
        if self._live is not None:
            self._live.update(
                self._task_id,
                completed=done,
                total=total or None,
                rate=f"{rate:,.0f} rows/s" if rate else "",
                eta=_duration(eta) if eta is not None else "?",
            )
            return
        now = self.clock()
        if self._last_line is not None and now - self._last_line < self.interval:
            return  # bounded rate: logs and Airflow get a line per interval, not per poll
        self._last_line = now
        parts = [f"tasks {done}/{total}"]
        if rate:
            parts.append(f"~{rate:,.0f} rows/s")
        if eta is not None:
            parts.append(f"ETA {_duration(eta)}")
        parts.append(f"elapsed {_duration(self._elapsed())}")
        log.info("%s batchinfer: %s %s", _stamp(), self.stage, ", ".join(parts))

    def _rate_eta(self, done: int, total: int) -> tuple[float | None, float | None]:
        spent = self.clock() - self.stage_started
        if not total or not done or spent <= 0:
            return None, None
        rate = self.rows * done / total / spent if self.rows else None
        return rate, spent * (total - done) / done

    def _elapsed(self) -> float:
        return self.clock() - self.started

    def _poll(self) -> None:
        last = None
        while not self._stop.wait(0.5):
            try:
                state = self.tasks()
            except Exception:  # the tracker is best effort: never break a run for a progress line
                continue
            if state and state[1] and state != last:
                self.update(*state)
                last = state

    # ------------------------------------------------------------------ terminal display
    def _start_live(self, console) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        self._live = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("tasks"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TextColumn("elapsed {task.fields[elapsed]}"),
            console=console or Console(stderr=True),
            transient=True,  # the bar goes away; the summary that follows stays on one screen
            refresh_per_second=4,
        )
        self._task_id = self._live.add_task("starting", total=None, rate="", eta="?", elapsed="0s")
        self._live.start()
        self._tick = threading.Thread(target=self._tick_elapsed, daemon=True)
        self._tick.start()

    def _tick_elapsed(self) -> None:
        while not self._stop.wait(0.5):
            self._live.update(self._task_id, elapsed=_duration(self._elapsed()))

    def close(self) -> None:
        self._stop.set()
        if self._live is not None:
            self._live.stop()


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@contextmanager
def progress_reporter(*, enabled: bool):
    if not enabled:
        yield None
        return
    progress = _Progress(tty=sys.stderr.isatty())
    try:
        yield progress
    finally:
        progress.close()
