"""One syntax for the field paths in every problem we report: ``checks.input[0].mostly``.

Pydantic locations are tuples such as ``("checks", "input", 0, "mostly")``; list indexes
become ``[0]`` and names join with dots, the same syntax the cross-field checks, the
expectation checks and the plan use.

>>> field_path(("checks", "input", 0, "mostly"))
'checks.input[0].mostly'
>>> field_path((1, "column"), prefix="model.outputs.probabilities")
'model.outputs.probabilities[1].column'
"""

from __future__ import annotations

from collections.abc import Iterable


def field_path(loc: Iterable, *, prefix: str = "") -> str:
    """``prefix`` + the location, with ``[i]`` for list indexes and ``.name`` for keys."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
