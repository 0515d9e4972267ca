"""profile_batches: the Spark-free reference profile over a stream of Arrow batches."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pyarrow as pa
import pytest

from batchinfer.checks.profile import (
    NumericProfile,
    ReferenceProfile,
    _probs,
    profile_arrays,
    profile_batches,
)
from batchinfer.errors import InputDataError

N = 20_000


def _table(seed: int = 0, n: int = N) -> pa.Table:
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, n)
    x[rng.random(n) < 0.03] = np.nan  # NaN counts as null
    y = pa.array(rng.exponential(1.0, n).astype(np.float32), mask=rng.random(n) < 0.02)  # Arrow nulls
    k = pa.array(rng.integers(0, 50, n), mask=rng.random(n) < 0.01)  # an int column with nulls
    c = rng.choice(np.array(["de", "fr", "us", "gb", "es"]), n, p=[0.3, 0.3, 0.2, 0.15, 0.05])
    c = pa.array(list(c), mask=rng.random(n) < 0.05)
    label = pa.array(rng.integers(0, 2, n))  # an int column profiled as categorical
    return pa.table({"x": x, "y": y, "k": k, "c": c, "label": label})


NUMERIC, CATEGORICAL = ["x", "y", "k"], ["c", "label"]


def _batches(table: pa.Table, size: int = 1500):
    return table.to_batches(max_chunksize=size)


def _without_time(p: ReferenceProfile) -> ReferenceProfile:
    return dataclasses.replace(p, created_at=None)


def _same_up_to_summation_order(p: ReferenceProfile, q: ReferenceProfile) -> None:
    assert list(p.columns) == list(q.columns) and p.row_count == q.row_count
    for name, a in p.columns.items():
        b = q.columns[name]
        if isinstance(a, NumericProfile):
            assert a.sum == pytest.approx(b.sum, rel=1e-12) and a.sumsq == pytest.approx(b.sumsq, rel=1e-12)
            a = dataclasses.replace(a, sum=b.sum, sumsq=b.sumsq)
        assert a == b, name


def test_up_to_sample_rows_it_equals_profile_arrays():
    table = _table()
    streamed = profile_batches(_batches(table), NUMERIC, CATEGORICAL, rows=N, top_k=3)
    exact = profile_arrays(
        {n: table.column(n).to_numpy() for n in NUMERIC},
        {n: table.column(n).combine_chunks() for n in CATEGORICAL},
        top_k=3,
    )
    _same_up_to_summation_order(_without_time(streamed), _without_time(exact))
    assert streamed.columns["y"].null_count == table.column("y").null_count > 0
    assert streamed.columns["c"].null_count == table.column("c").null_count > 0
    assert streamed.columns["c"].categories == ("de", "fr", "us")
    assert streamed.columns["label"].vocabulary == ("0", "1")


def test_a_bigger_input_is_sampled_for_the_edges_and_counted_in_full(tmp_path):
    """Past sample_rows: the edges come from a bounded sample (within the DKW bound the docs
    state), while every count, null, moment and category covers all rows; the spill file goes."""
    table = _table(1)
    sample_rows = 4000
    sampled = profile_batches(
        _batches(table), NUMERIC, CATEGORICAL, rows=N, top_k=3, sample_rows=sample_rows, spill_dir=tmp_path
    )
    assert list(tmp_path.iterdir()) == []  # the spilled columns are deleted
    exact = profile_arrays(
        {n: table.column(n).to_numpy() for n in NUMERIC},
        {n: table.column(n).combine_chunks() for n in CATEGORICAL},
        top_k=3,
    )
    assert sampled.row_count == exact.row_count == N
    for name in CATEGORICAL:
        assert sampled.columns[name] == exact.columns[name]  # exact counts, not from the sample
    # Rank error of the sampled edges: DKW with failure probability 1e-6 for the ~4000 kept rows.
    eps = math.sqrt(math.log(2 / 1e-6) / (2 * sample_rows * 0.9))
    for name in NUMERIC:
        s, e = sampled.columns[name], exact.columns[name]
        assert (s.null_count, s.count, s.min, s.max) == (e.null_count, e.count, e.min, e.max)
        assert s.sum == pytest.approx(e.sum, rel=1e-9)
        assert sum(s.counts) == sum(s.fine_counts) == s.count  # every non-null row counted
        values = np.sort(np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=np.float64))
        values = values[~np.isnan(values)]
        below = np.searchsorted(values, np.asarray(s.edges), side="right")
        assert (np.cumsum(s.counts)[:-1] == below).all(), name  # buckets (e_i-1, e_i] of all rows
        if name == "k":  # integers: a quantile's rank is off by up to one value's mass
            continue
        probs = np.asarray(_probs(10, fine=False))
        assert len(s.edges) == len(probs)
        assert np.max(np.abs(below / values.size - probs)) <= eps + 1 / values.size, name
        fine_probs = np.asarray(_probs(100, fine=True))
        assert len(s.fine_edges) == len(fine_probs)
        fine_below = np.searchsorted(values, np.asarray(s.fine_edges), side="right") / values.size
        assert np.max(np.abs(fine_below - fine_probs)) <= eps + 1 / values.size, name


def test_bad_columns_are_input_errors():
    table = _table(n=100)
    with pytest.raises(InputDataError, match=r"monitored columns \['z'\] are not in the data"):
        profile_batches(_batches(table), ["x", "z"], rows=100)
    with pytest.raises(InputDataError, match="c is string.*as categorical"):
        profile_batches(_batches(table), ["x", "c"], rows=100)
    with pytest.raises(InputDataError, match=r"\['c'\] are listed as both"):
        profile_batches(_batches(table), ["c"], ["c"], rows=100)
    with pytest.raises(ValueError, match="bins must be a positive integer"):
        profile_batches(_batches(table), ["x"], rows=100, bins=0)


def test_an_empty_stream_gives_an_empty_profile():
    p = profile_batches(iter(()), ["x"], ["c"], rows=0)
    assert p.row_count == 0 and p.columns["x"].count == 0 and p.columns["c"].count == 0
