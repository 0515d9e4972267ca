"""Profiles and one-pass current counts on a real local Spark session."""

from __future__ import annotations

import dataclasses
import uuid

import numpy as np
import pyarrow as pa
import pytest

from batchinfer.checks.drift_policy import DriftConfig, evaluate_drift
from batchinfer.checks.profile import (
    ReferenceProfile,
    build_profile,
    count_arrays,
    current_counts,
    from_json,
    merge,
)
from batchinfer.errors import InputDataError
from tests.support.profiles import assert_numeric_column_matches

pytestmark = pytest.mark.spark

N = 60_000
NUMERIC = ["a", "b", "score"]
CATEGORICAL = ["c", "n"]


def _table(seed: int, *, shift_a: float = 0.0, shift_score: float = 0.0) -> pa.Table:
    rng = np.random.default_rng(seed)
    b = rng.exponential(3.0, N)
    b[rng.random(N) < 0.05] = np.nan  # NaN counts as null
    c = np.array(["red", "green", "blue", "pink", "grey"])[rng.choice(5, N, p=[0.4, 0.3, 0.15, 0.1, 0.05])]
    return pa.table(
        {
            "a": rng.normal(shift_a, 1.0, N),
            "b": b,
            "score": np.clip(rng.beta(2, 5, N) + shift_score, 0, 1),
            "c": pa.array(c).cast(pa.string()),
            "n": pa.array(rng.integers(0, 4, N)).cast(pa.int64()),  # an int column profiled as categorical
        }
    )


def _columns(table: pa.Table) -> dict:
    return {name: table.column(name) for name in table.column_names}


@pytest.fixture(scope="module")
def ref_table():
    return _table(0)


@pytest.fixture(scope="module")
def reference(spark, ref_table):
    return build_profile(spark.createDataFrame(ref_table), NUMERIC, CATEGORICAL, top_k=3)


def _assert_same_counts(p: ReferenceProfile, q: ReferenceProfile) -> None:
    """Equal up to the summation order of the float moments."""
    assert list(p.columns) == list(q.columns) and p.row_count == q.row_count
    for name, x in p.columns.items():
        y = q.columns[name]
        if hasattr(x, "sum"):
            assert (x.sum, x.sumsq) == (pytest.approx(y.sum, rel=1e-12), pytest.approx(y.sumsq, rel=1e-12))
            x = dataclasses.replace(x, sum=y.sum, sumsq=y.sumsq)
        assert x == y, name


def test_build_profile_shape(reference, ref_table):
    a = reference.columns["a"]
    assert len(a.edges) == 11 and len(a.counts) == 12 and a.count == N
    assert len(a.fine_edges) >= 101
    assert a.counts[-1] == 0  # nothing above the reference max
    assert a.mean == pytest.approx(np.mean(ref_table["a"]), abs=1e-9)
    assert a.std == pytest.approx(np.std(ref_table["a"]), rel=1e-6)
    b = reference.columns["b"]
    assert b.null_count == int(np.isnan(ref_table["b"].to_numpy()).sum()) > 0
    assert max(b.psi_counts()) / b.count < 0.11  # approxQuantile deciles: ~10% each
    c = reference.columns["c"]
    assert c.categories == ("red", "green", "blue") and len(c.counts) == 4
    assert c.vocabulary == ("blue", "green", "grey", "pink", "red")
    assert reference.columns["n"].vocabulary == ("0", "1", "2", "3")
    assert from_json(reference.to_json()) == reference


def test_spark_counts_equal_numpy_counts(spark, reference, ref_table):
    from_spark = current_counts(spark.createDataFrame(ref_table), reference)
    _assert_same_counts(from_spark, count_arrays(_columns(ref_table), reference))
    _assert_same_counts(from_spark, reference)


def test_current_counts_is_one_spark_job(spark, reference):
    df = spark.createDataFrame(_table(1))
    sc = spark.sparkContext
    group = f"drift-one-pass-{uuid.uuid4().hex}"  # the tracker remembers old groups' job ids
    sc.setJobGroup(group, "drift one-pass test")
    try:
        current = current_counts(df, reference)
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert len(sc.statusTracker().getJobIdsForGroup(group)) == 1
    assert current.row_count == N


def test_planted_shift_flagged_others_not(spark, reference):
    df = spark.createDataFrame(_table(2, shift_a=0.8, shift_score=0.15))
    current = current_counts(df, reference)
    outcomes = evaluate_drift(reference, current, DriftConfig(), prediction_columns=["score"])
    failed = {(o.stage, o.column) for o in outcomes if not o.passed}
    assert failed == {("drift", "a"), ("prediction_drift", "score")}
    same = current_counts(spark.createDataFrame(_table(3)), reference)
    for metric in ("psi", "ks", "wasserstein"):
        outcomes = evaluate_drift(reference, same, DriftConfig(metric=metric), prediction_columns=["score"])
        assert [o for o in outcomes if not o.passed] == [], metric


@pytest.mark.parametrize("sample_rows", [None, 20_000], ids=["exact", "sampled"])
def test_profile_batches_agrees_with_spark_build_profile(reference, ref_table, sample_rows):
    """The embedded engine's profile (pyarrow + numpy) against Spark's of the same data: the same
    columns, rows, nulls, moments and categories, edges within approxQuantile's documented rank
    error (relative_error 1e-3; plus the sample's DKW bound when sampled), and the same drift
    decisions."""
    import math

    from batchinfer.checks.profile import EDGE_SAMPLE_ROWS, profile_batches

    local = profile_batches(
        ref_table.to_batches(max_chunksize=7000),
        NUMERIC,
        CATEGORICAL,
        rows=N,
        top_k=3,
        sample_rows=sample_rows or EDGE_SAMPLE_ROWS,
    )
    assert list(local.columns) == list(reference.columns) and local.row_count == reference.row_count == N
    for name in CATEGORICAL:
        assert local.columns[name] == reference.columns[name], name
    tol = 1e-3 + 2 / N  # approxQuantile's rank error, plus one rank each for interpolation
    if sample_rows:
        tol += math.sqrt(math.log(2 / 1e-6) / (2 * sample_rows * 0.9))  # DKW, failure odds 1e-6
    for name in NUMERIC:
        assert_numeric_column_matches(
            local.columns[name],
            reference.columns[name],
            ref_table.column(name).to_numpy(),
            sum_rel=1e-12,
            rank_tol=tol,
            name=name,
        )
    shifted = _columns(_table(2, shift_a=0.8, shift_score=0.15))
    decisions = []
    for profile in (local, reference):
        outcomes = evaluate_drift(
            profile, count_arrays(shifted, profile), DriftConfig(), prediction_columns=["score"]
        )
        decisions.append({(o.stage, o.check, o.column): o.passed for o in outcomes})
    assert decisions[0] == decisions[1]
    assert {k for k, passed in decisions[0].items() if not passed} == {
        ("drift", "psi", "a"),
        ("prediction_drift", "psi", "score"),
    }


def test_profiles_of_disjoint_data_merge_into_the_union(spark, reference):
    first, second = _table(4), _table(5, shift_a=0.5)
    p1 = build_profile(spark.createDataFrame(first), NUMERIC, CATEGORICAL, edges_from=reference)
    p2 = build_profile(spark.createDataFrame(second), NUMERIC, CATEGORICAL, edges_from=reference)
    union = build_profile(
        spark.createDataFrame(pa.concat_tables([first, second])), NUMERIC, CATEGORICAL, edges_from=reference
    )
    merged = merge(p1, p2)
    _assert_same_counts(merged, union)
    assert merged.row_count == 2 * N


def test_bad_columns_are_input_errors(spark, reference, ref_table):
    df = spark.createDataFrame(ref_table).drop("b")
    with pytest.raises(InputDataError, match=r"monitored columns \['b'\] are not in the data"):
        current_counts(df, reference)
    with pytest.raises(InputDataError, match="c is string.*as categorical"):
        build_profile(spark.createDataFrame(ref_table), ["a", "c"])
