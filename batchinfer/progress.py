"""Progress for long runs: stage names and Spark tasks done/total on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from contextlib import contextmanager

log = logging.getLogger("batchinfer")


class _Progress:
    def __init__(self, tty: bool) -> None:
        self.tty = tty
        self.stage = ""
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, stage: str) -> None:
        self.stage = stage
        if self.tty:
            self._draw("")
        else:
            log.info("batchinfer: stage %s (t=%.1fs)", stage, time.perf_counter() - self.started)
        if stage == "score_and_stage" and self._thread is None:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()

    def _draw(self, tasks: str) -> None:
        elapsed = time.perf_counter() - self.started
        sys.stderr.write(f"\r\x1b[2K[{elapsed:6.1f}s] {self.stage} {tasks}")
        sys.stderr.flush()

    def _poll(self) -> None:
        """Read Spark's status tracker (no listener needed) every half second."""
        last = ""
        while not self._stop.wait(0.5):
            try:
                from pyspark import SparkContext

                sc = SparkContext._active_spark_context
                if sc is None:
                    continue
                tracker = sc.statusTracker()
                done = total = 0
                for sid in tracker.getActiveStageIds():
                    info = tracker.getStageInfo(sid)
                    if info is not None:
                        done += info.numCompletedTasks
                        total += info.numTasks
                text = f"tasks {done}/{total}" if total else ""
            except Exception:
                continue
            if self.tty:
                self._draw(text)
            elif text and text != last:
                log.info("batchinfer: %s %s", self.stage, text)
            last = text

    def close(self) -> None:
        self._stop.set()
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()


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
