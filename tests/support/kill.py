"""A driver "killed" at a commit pause point, in-process: SystemExit skips the job's cleanup."""

from __future__ import annotations


class Killed(SystemExit):
    """Raised from a ``commit_pause`` hook, as if the driver died at that step."""


def kill_at(step: str):
    """A ``commit_pause`` hook that raises :class:`Killed` when the commit reaches ``step``."""

    def pause(current: str) -> None:
        if current == step:
            raise Killed

    return pause
