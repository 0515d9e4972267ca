"""The single pass's task program, remembered per suite, so tasks can start before GX is imported.

Which metrics the scoring tasks compute (the *ops* of :mod:`batchinfer.checks.partials`) is
decided by Great Expectations itself (each expectation's ``get_validation_dependencies``), so
a run with checks must import GX (seconds) before its first task. The ops depend only on:

- the expectation configs of each side (compact list, suite file content),
- the columns and Arrow types each side's tasks see,
- the result format and the kind of GX execution engine,
- the versions of GX and of the planning code.

This module keeps the ops in one small JSON file per such key, under ``$BATCHINFER_CACHE_DIR``
(else ``$XDG_CACHE_HOME/batchinfer``, else ``~/.cache/batchinfer``; ``off`` disables it). With
a hit the tasks start at once and GX imports meanwhile; after the pass GX plans every route
as always, and an expectation whose metrics the tasks did not compute (a stale or edited file)
falls back to GX on the data like any expectation the pass does not cover. A cache file can
make a run slower, never change a decision. Files are written atomically and only read back
when they parse; any error reading or writing one is ignored (the run plans with GX).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

_FORMAT = 1


def cache_dir() -> Path | None:
    """Where plans are kept, or None when ``BATCHINFER_CACHE_DIR=off``."""
    explicit = os.environ.get("BATCHINFER_CACHE_DIR")
    if explicit is not None:
        return (
            None if explicit.strip().lower() in ("", "off", "none", "0") else Path(explicit) / "check-plans"
        )
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "batchinfer" / "check-plans"


def plan_key(sides: list[dict], *, result_format: str, engine_kind: str) -> str:
    """A digest of everything the ops depend on (see the module docstring)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        gx_version = version("great_expectations")
    except PackageNotFoundError:
        gx_version = "absent"
    code = hashlib.sha256()
    for module in ("partials.py", "plan_cache.py", "expectations.py", "quality.py"):
        code.update((Path(__file__).parent / module).read_bytes())
    doc = {
        "format": _FORMAT,
        "gx": gx_version,
        "code": code.hexdigest(),
        "result_format": result_format,
        "engine": engine_kind,
        "sides": sides,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def side_key(stage: str, specs: list, suite_path: str | None, schema) -> dict:
    """One side's part of the key: its configs (suite file by content) and what its tasks see."""
    suite = None
    if suite_path is not None:
        try:
            suite = hashlib.sha256(Path(suite_path).read_bytes()).hexdigest()
        except OSError:  # planning with GX reports it; such a plan is never kept
            suite = f"unreadable {suite_path}"
    return {
        "stage": stage,
        "specs": [s.model_dump(mode="json") if hasattr(s, "model_dump") else s for s in specs],
        "suite": suite,
        "columns": list(schema.columns),
        "types": {k: str(v) for k, v in sorted(schema.arrow_types.items())},
        "staged": sorted(schema.aggregation_columns),
    }


def load(key: str) -> dict[str, list] | None:
    """``{stage: [Op, ...]}`` from the cache, or None (no file, unreadable, another format)."""
    from batchinfer.checks import partials as P

    root = cache_dir()
    if root is None:
        return None
    try:
        doc = json.loads((root / f"{key}.json").read_text())
        if doc.get("format") != _FORMAT or doc.get("key") != key:
            return None
        return {
            stage: [
                P.Op(kind, column, cond, tuple(args), int(sample)) for kind, column, cond, args, sample in ops
            ]
            for stage, ops in P.unpack(doc["ops"]).items()
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(key: str, ops_by_stage: dict[str, list]) -> Path | None:
    """Keep the ops for ``key`` (atomic replace); None when not kept (disabled, error, odd values)."""
    from batchinfer.checks import partials as P

    root = cache_dir()
    if root is None:
        return None
    try:
        packed: Any = P.pack(
            {
                stage: [(o.kind, o.column, o.cond, o.args, o.sample) for o in ops]
                for stage, ops in ops_by_stage.items()
            }
        )
        text = json.dumps({"format": _FORMAT, "key": key, "ops": packed})
        root.mkdir(parents=True, exist_ok=True)
        path = root / f"{key}.json"
        tmp = root / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(text)
        os.replace(tmp, path)
        return path
    except (OSError, TypeError, ValueError):
        return None
