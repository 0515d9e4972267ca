"""Progress: a live Rich display on a terminal, bounded timestamped lines in logs, nothing with -q."""

from __future__ import annotations

import io
import logging
import re
import subprocess
import sys
from pathlib import Path

from batchinfer.progress import _Progress

ROOT = Path(__file__).resolve().parents[2]
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_are_timestamped_and_bounded(caplog):
    clock = Clock()
    progress = _Progress(tty=False, clock=clock, interval=10.0, tasks=lambda: None)
    progress.set_rows(60_000)
    with caplog.at_level(logging.INFO, logger="batchinfer"):
        progress("plan")
        progress("score_and_stage")
        clock.now += 2
        progress.update(1, 6)  # logged: the first task line
        for done in (2, 3, 4):
            clock.now += 1
            progress.update(done, 6)  # within the interval: not logged
        clock.now += 10
        progress.update(5, 6)
    progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4, lines
    assert all(re.match(STAMP + " batchinfer: ", line) for line in lines)
    assert lines[0].endswith("stage plan (elapsed 0s)")
    # 1 of 6 tasks (10,000 rows) after 2 s: 5,000 rows/s, 10 s to go.
    assert lines[2].endswith("score_and_stage tasks 1/6, ~5,000 rows/s, ETA 10s, elapsed 2s")
    assert "tasks 5/6" in lines[3] and "ETA 3s" in lines[3]


def test_terminal_shows_a_live_bar_with_tasks_rate_and_eta():
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=140, color_system=None)
    clock = Clock()
    progress = _Progress(tty=True, console=console, clock=clock, tasks=lambda: None)
    progress.set_rows(8_000)
    progress("score_and_stage")
    clock.now += 4
    progress.update(3, 8)
    progress._live.refresh()
    text = out.getvalue()
    assert "score_and_stage" in text and "3/8 tasks" in text
    assert "750 rows/s" in text and "ETA 7s" in text and "elapsed" in text
    progress("commit")  # the next stage starts with no tasks, rate or ETA of the last one
    progress._live.refresh()
    last = out.getvalue()[len(text) :].split("\r")[-1]
    progress.close()
    assert "commit" in last and "3/8" not in last and "rows/s" not in last and "ETA ?" in last


def test_help_loads_no_report_libraries_and_disabled_progress_is_silent():
    code = (
        "import sys; import batchinfer.cli as c; c.build_parser().format_help(); "
        "print([m for m in ('rich', 'jinja2', 'matplotlib') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"
    from batchinfer.progress import progress_reporter

    with progress_reporter(enabled=False) as progress:
        assert progress is None
