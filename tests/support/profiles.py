"""Comparing a reference profile built without Spark to Spark's (same data, same bins)."""

from __future__ import annotations

import numpy as np
import pytest


def rank_distance(values: np.ndarray, a, b) -> float:
    """The largest gap, in the empirical CDF of ``values`` (sorted), from an edge of ``a`` to the
    nearest edge of ``b`` and back (tied edges are merged, so the two lists may differ in length)."""
    fa = np.searchsorted(values, np.asarray(a), side="right") / values.size
    fb = np.searchsorted(values, np.asarray(b), side="right") / values.size
    gaps = np.abs(fa[:, None] - fb[None, :])
    return float(max(gaps.min(axis=1).max(), gaps.min(axis=0).max()))


def assert_numeric_column_matches(
    mine, theirs, values: np.ndarray, *, sum_rel: float, rank_tol: float, name=""
):
    """Nulls, count, min and max equal; the sum to ``sum_rel``; coarse and fine edges within
    ``rank_tol`` of each other in the ranks of ``values`` (the column's non-NaN data)."""
    assert (mine.null_count, mine.count, mine.min, mine.max) == (
        theirs.null_count,
        theirs.count,
        theirs.min,
        theirs.max,
    ), name
    assert mine.sum == pytest.approx(theirs.sum, rel=sum_rel), name
    if values is None:
        return
    values = np.sort(np.asarray(values, dtype=np.float64))
    values = values[~np.isnan(values)]
    assert rank_distance(values, mine.edges, theirs.edges) <= rank_tol, name
    assert rank_distance(values, mine.fine_edges, theirs.fine_edges) <= rank_tol, name
