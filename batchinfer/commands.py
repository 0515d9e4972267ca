"""Registry of CLI subcommands contributed by feature modules (model tools, profiles, ...).

Each entry is ``register(subparsers)``; it adds a parser and sets ``handler=`` on it. Keeping the
registry here lets features add commands without growing ``cli.py``; registration functions
must not import heavy libraries.
"""

from __future__ import annotations

from collections.abc import Callable

REGISTRY: list[Callable] = []

# Extra checks `batchinfer validate` runs after the plan (expectation specs, drift profile, device).
VALIDATORS: list[Callable] = []


def validate_extensions(job, plan) -> None:
    for validator in VALIDATORS:
        validator(job, plan)
