"""Check a scenario's output against the single-process floor's output (joined on id)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds

FP32_MAX_ABS_DIFF = 1e-5
# Dynamic int8 computes activation scales per batch, so scores move with batch composition
# (up to ~0.14 on single rows here): check agreement in aggregate instead of row by row.
INT8_MIN_LABEL_AGREEMENT = 0.99
INT8_MAX_MEAN_ABS_DIFF = 0.01

# model kind → rule; "strict" for models whose outputs do not depend on batching
RULES = {"fp32": "strict", "int8s": "strict", "int8": "aggregate"}


@dataclass
class Scored:
    id: np.ndarray
    score: np.ndarray
    label: np.ndarray


@dataclass
class OutputCheck:
    ok: bool
    summary: str
    rule: str
    rows: int
    missing_ids: int
    extra_ids: int
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    label_agreement: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def load_scored(path: Path) -> Scored:
    """id, score, label from every Parquet file under path (names starting '_' or '.' are skipped)."""
    table = ds.dataset(path, format="parquet", ignore_prefixes=["_", "."]).to_table(
        columns=["id", "score", "label"]
    )
    ids = table.column("id").to_numpy()
    order = np.argsort(ids, kind="stable")
    return Scored(
        ids[order],
        table.column("score").to_numpy().astype(np.float64)[order],
        table.column("label").to_numpy().astype(np.int64)[order],
    )


def check_against_floor(out: Scored, floor: Scored, model: str, subset: bool = False) -> OutputCheck:
    """Compare out with floor. subset=True: out scores a sample, so only its ids must exist in floor."""
    rule = RULES.get(model, "strict")
    dup = int(len(out.id) - len(np.unique(out.id)))
    pos = np.clip(np.searchsorted(floor.id, out.id), 0, max(0, len(floor.id) - 1))
    found = (floor.id[pos] == out.id) if len(floor.id) else np.zeros(len(out.id), bool)
    extra = int((~found).sum()) + dup
    missing = 0 if subset else int(len(floor.id) - found.sum() + dup)
    base = dict(rule=rule, rows=len(out.id), missing_ids=missing, extra_ids=extra)
    if extra or missing or not found.any():
        return OutputCheck(False, f"FAIL ids: {missing} missing, {extra} extra/dup", **base)
    d = np.abs(out.score - floor.score[pos])
    agree = float((out.label == floor.label[pos]).mean())
    stats = dict(max_abs_diff=float(d.max()), mean_abs_diff=float(d.mean()), label_agreement=agree)
    if rule == "strict":
        ok = stats["max_abs_diff"] <= FP32_MAX_ABS_DIFF and agree == 1.0
        summary = f"max|d|={stats['max_abs_diff']:.1e} labels {'equal' if agree == 1.0 else f'{agree:.4%}'}"
    else:
        ok = agree >= INT8_MIN_LABEL_AGREEMENT and stats["mean_abs_diff"] <= INT8_MAX_MEAN_ABS_DIFF
        summary = f"mean|d|={stats['mean_abs_diff']:.1e} labels {agree:.2%}"
    return OutputCheck(ok, ("ok " if ok else "FAIL ") + summary, **base, **stats)
