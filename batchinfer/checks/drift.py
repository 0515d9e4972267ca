"""Drift statistics computed on the driver from bin counts (pure numpy, no Spark).

Every function takes the reference counts and the current counts over the *same* bins
(see ``batchinfer.checks.profile``) and returns a number, so the statistics cost nothing
once the single counting pass is done.

Numeric bins follow ``profile``'s layout: for edges ``e_0 < ... < e_n`` there are
``n + 2`` buckets ``(-inf, e_0], (e_0, e_1], ..., (e_{n-1}, e_n], (e_n, +inf)``.

>>> psi([50, 50], [50, 50])
0.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Proportions are clipped below at this value in PSI, so an empty bin contributes a finite
#: term: a bin empty in the reference but holding a share ``q`` of the current batch adds
#: ``(q - 1e-4) * ln(q / 1e-4)`` (q = 0.01 → 0.046). Proportions are not renormalized.
PSI_EPSILON = 1e-4


def _proportions(counts: np.ndarray | list[int]) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence, got shape {c.shape}")
    if np.any(c < 0):
        raise ValueError("counts must be non-negative")
    total = c.sum()
    if total <= 0:
        raise ValueError("counts sum to zero: no non-null values to compare")
    return c / total


def _pair(ref_counts, cur_counts) -> tuple[np.ndarray, np.ndarray]:
    p, q = _proportions(ref_counts), _proportions(cur_counts)
    if p.shape != q.shape:
        raise ValueError(f"reference has {p.size} bins but current has {q.size}: not the same bins")
    return p, q


def psi(ref_counts, cur_counts, *, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index ``sum((q - p) * ln(q / p))`` over the bins.

    ``p`` and ``q`` are the reference and current proportions, each clipped below at
    ``epsilon`` (:data:`PSI_EPSILON`). Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift,
    >= 0.25 major shift.
    """
    p, q = _pair(ref_counts, cur_counts)
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(ref_counts, cur_counts) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]); equals ``scipy.spatial.distance.jensenshannon``."""
    p, q = _pair(ref_counts, cur_counts)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return math.sqrt(max(0.5 * kl(p) + 0.5 * kl(q), 0.0))


def ks_statistic(ref_counts, cur_counts) -> float:
    """Two-sample Kolmogorov-Smirnov statistic evaluated at the bin edges.

    The cumulative counts give both empirical CDFs exactly at every edge, so the result is
    the exact ``sup |F_ref - F_cur|`` restricted to the edges: never above the exact statistic
    (``scipy.stats.ks_2samp``) and below it by at most :func:`ks_error_bound`.
    """
    p, q = _pair(ref_counts, cur_counts)
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))


def ks_error_bound(ref_counts, cur_counts) -> float:
    """Bound on ``exact KS - binned KS``: the largest single-bin share, ``max_i max(p_i, q_i)``.

    Inside a bin both CDFs are monotone, so the difference cannot exceed its value at an edge
    by more than one bin's mass. With 100 reference-quantile bins and no drift this is ~0.01.
    """
    p, q = _pair(ref_counts, cur_counts)
    return float(np.max(np.maximum(p, q)))


def _support(edges, lo: float, hi: float) -> np.ndarray:
    e = np.asarray(edges, dtype=np.float64)
    return np.concatenate([[min(lo, e[0])], e, [max(hi, e[-1])]])


def wasserstein(edges, ref_counts, cur_counts, *, lo: float, hi: float) -> float:
    """Wasserstein-1 distance ``∫ |F_ref - F_cur| dx`` from counts, in the data's units.

    Each bucket's mass is taken as uniform over its interval (the open end buckets span
    ``[lo, e_0]`` and ``[e_n, hi]``, with ``lo``/``hi`` the smallest/largest value seen in
    either sample), so the CDFs are piecewise linear and the integral is exact for them.
    The error against the exact distance is at most :func:`wasserstein_error_bound`.
    """
    p, q = _pair(ref_counts, cur_counts)
    x = _support(edges, lo, hi)
    if x.size != p.size + 1:
        raise ValueError(f"{len(edges)} edges need {len(edges) + 1} buckets, got {p.size}")
    d = np.concatenate([[0.0], np.cumsum(p) - np.cumsum(q)])
    a, b, w = d[:-1], d[1:], np.diff(x)
    same_sign = a * b >= 0
    denom = np.where(same_sign, 1.0, np.abs(a) + np.abs(b))
    # where the difference changes sign inside a segment, integrate the two triangles
    area = np.where(same_sign, 0.5 * (np.abs(a) + np.abs(b)), 0.5 * (a * a + b * b) / denom)
    return float(np.sum(w * area))


def wasserstein_error_bound(edges, ref_counts, cur_counts, *, lo: float, hi: float) -> float:
    """Bound on ``|exact W1 - binned W1|``: ``sum_i width_i * (p_i + q_i)``.

    Within a bucket the true CDF difference and the interpolated one both lie in an interval
    of width ``p_i + q_i``. The bound is loose (the real error is usually far smaller) and is
    dominated by the wide tail buckets.
    """
    p, q = _pair(ref_counts, cur_counts)
    return float(np.sum(np.diff(_support(edges, lo, hi)) * (p + q)))


def normalized_wasserstein(
    edges, ref_counts, cur_counts, *, lo: float, hi: float, ref_std: float | None
) -> float:
    """:func:`wasserstein` divided by the reference standard deviation.

    So a pure location shift of ``k`` reference standard deviations scores ``k``, whatever
    the column's units. A constant reference column (std 0 or unknown) is not scaled.
    """
    w = wasserstein(edges, ref_counts, cur_counts, lo=lo, hi=hi)
    scale = ref_std if ref_std and ref_std > 0 and math.isfinite(ref_std) else 1.0
    return w / scale


@dataclass(frozen=True)
class ChiSquareResult:
    """Chi-square test of homogeneity between the reference and current category counts."""

    statistic: float
    dof: int
    p_value: float


def chi_square(ref_counts, cur_counts) -> ChiSquareResult:
    """Pearson chi-square test on the 2 x k table (reference, current) x categories.

    Categories empty in both samples are dropped. Equals ``scipy.stats.chi2_contingency``
    without continuity correction. With millions of rows tiny, harmless shifts get tiny
    p-values: prefer PSI or JS for gating large batches.
    """
    r = np.asarray(ref_counts, dtype=np.float64)
    c = np.asarray(cur_counts, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"reference has {r.size} categories but current has {c.size}")
    keep = (r + c) > 0
    r, c = r[keep], c[keep]
    nr, nc = r.sum(), c.sum()
    if nr <= 0 or nc <= 0:
        raise ValueError("counts sum to zero: no non-null values to compare")
    dof = int(r.size - 1)
    if dof == 0:
        return ChiSquareResult(0.0, 0, 1.0)
    col = r + c
    n = nr + nc
    exp_r, exp_c = col * nr / n, col * nc / n
    stat = float(np.sum((r - exp_r) ** 2 / exp_r) + np.sum((c - exp_c) ** 2 / exp_c))
    return ChiSquareResult(stat, dof, chi2_sf(stat, dof))


def chi2_sf(x: float, dof: int) -> float:
    """Survival function of the chi-square distribution (regularized upper gamma Q(dof/2, x/2))."""
    if x <= 0:
        return 1.0
    return _gammaincc(dof / 2.0, x / 2.0)


def _gammaincc(a: float, x: float) -> float:
    # Numerical Recipes: series for x < a + 1, Lentz continued fraction otherwise; numpy has
    # no incomplete gamma and scipy is not a runtime dependency.
    log_prefix = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1.0
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_prefix) * h)


def null_rate_change(ref_nulls: int, ref_rows: int, cur_nulls: int, cur_rows: int) -> float:
    """Current null share minus reference null share (positive: more nulls than before)."""
    ref_rate = ref_nulls / ref_rows if ref_rows else 0.0
    cur_rate = cur_nulls / cur_rows if cur_rows else 0.0
    return cur_rate - ref_rate


def unseen_share(unseen: int, non_null: int) -> float:
    """Share of the current non-null values whose category never occurred in the reference."""
    return unseen / non_null if non_null else 0.0
