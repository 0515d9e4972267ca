"""Drift statistics from counts, checked against scipy on the same generated data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from batchinfer.checks import drift
from batchinfer.checks.profile import count_arrays, from_json, merge, profile_arrays
from batchinfer.errors import InputDataError

N = 100_000


@pytest.fixture(scope="module")
def samples():
    rng = np.random.default_rng(7)
    ref = rng.normal(0.0, 1.0, N)
    same = rng.normal(0.0, 1.0, N)
    shifted = rng.normal(0.3, 1.2, N)
    return ref, same, shifted


def _profiles(ref, cur):
    p = profile_arrays({"x": ref})
    return p.columns["x"], profile_arrays({"x": cur}, edges_from=p).columns["x"]


def _hand_psi(ref, cur, bins=10, eps=drift.PSI_EPSILON):
    edges = np.quantile(ref, np.linspace(0, 1, bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    p = np.histogram(ref, edges)[0] / ref.size
    q = np.histogram(cur, edges)[0] / cur.size
    p, q = np.maximum(p, eps), np.maximum(q, eps)
    return float(np.sum((q - p) * np.log(q / p)))


@pytest.mark.parametrize("which", [1, 2])
def test_psi_matches_hand_computation(samples, which):
    ref, cur = samples[0], samples[which]
    r, c = _profiles(ref, cur)
    # bins differ from np.histogram's only at edge ties, which continuous data has none of
    assert drift.psi(r.psi_counts(), c.psi_counts()) == pytest.approx(_hand_psi(ref, cur), rel=1e-6, abs=1e-9)


def test_psi_epsilon_makes_empty_bins_finite():
    value = drift.psi([100, 0], [99, 1])
    q, p = 0.01, drift.PSI_EPSILON
    assert np.isfinite(value)
    assert value == pytest.approx((0.99 - 1.0) * np.log(0.99 / 1.0) + (q - p) * np.log(q / p))


@pytest.mark.parametrize("which", [1, 2])
def test_js_distance_matches_scipy(samples, which):
    r, c = _profiles(samples[0], samples[which])
    expected = jensenshannon(r.psi_counts(), c.psi_counts(), base=2)
    assert drift.js_distance(r.psi_counts(), c.psi_counts()) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("which", [1, 2])
def test_ks_within_its_bound_of_scipy(samples, which):
    ref, cur = samples[0], samples[which]
    r, c = _profiles(ref, cur)
    exact = stats.ks_2samp(ref, cur).statistic
    binned = drift.ks_statistic(r.fine_counts, c.fine_counts)
    bound = drift.ks_error_bound(r.fine_counts, c.fine_counts)
    assert binned <= exact + 1e-12
    assert exact - binned <= bound
    # 100 reference-quantile bins: about one bin's share when nothing drifted
    assert bound < (0.02 if which == 1 else 0.05)


@pytest.mark.parametrize("which", [1, 2])
def test_wasserstein_close_to_scipy(samples, which):
    ref, cur = samples[0], samples[which]
    r, c = _profiles(ref, cur)
    exact = stats.wasserstein_distance(ref, cur)
    lo, hi = min(r.min, c.min), max(r.max, c.max)
    args = (r.fine_edges, r.fine_counts, c.fine_counts)
    binned = drift.wasserstein(*args, lo=lo, hi=hi)
    assert abs(binned - exact) <= drift.wasserstein_error_bound(*args, lo=lo, hi=hi)
    assert abs(binned - exact) <= 0.005 * ref.std()  # in practice far inside the bound
    norm = drift.normalized_wasserstein(*args, lo=lo, hi=hi, ref_std=r.std)
    assert norm == pytest.approx(exact / ref.std(), abs=0.01)


def test_wasserstein_of_pure_shift_is_shift_in_std_units():
    rng = np.random.default_rng(1)
    ref = rng.normal(10.0, 4.0, N)
    r, c = _profiles(ref, ref + 2.0)  # half a standard deviation
    lo, hi = min(r.min, c.min), max(r.max, c.max)
    w = drift.normalized_wasserstein(r.fine_edges, r.fine_counts, c.fine_counts, lo=lo, hi=hi, ref_std=r.std)
    assert w == pytest.approx(0.5, abs=0.01)


def test_chi_square_matches_scipy():
    ref, cur = [500, 300, 150, 50, 0], [480, 330, 120, 60, 10]
    got = drift.chi_square(ref, cur)
    exp = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    assert got.dof == exp.dof == 4
    assert got.statistic == pytest.approx(exp.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(exp.pvalue, rel=1e-8)


def test_chi_square_drops_categories_empty_in_both():
    got = drift.chi_square([500, 300, 0], [480, 330, 0])
    exp = stats.chi2_contingency(np.array([[500, 300], [480, 330]]), correction=False)
    assert (got.dof, got.statistic) == (exp.dof, pytest.approx(exp.statistic))


@pytest.mark.parametrize(
    "x,dof", [(0.5, 1), (3.0, 2), (10.0, 3), (25.0, 10), (80.0, 40), (300.0, 250), (1e-3, 7)]
)
def test_chi2_sf_matches_scipy(x, dof):
    assert drift.chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


def test_null_rate_change_and_unseen_share():
    assert drift.null_rate_change(10, 100, 30, 100) == pytest.approx(0.2)
    assert drift.null_rate_change(0, 0, 0, 0) == 0.0
    assert drift.unseen_share(5, 50) == pytest.approx(0.1)
    assert drift.unseen_share(0, 0) == 0.0


@pytest.mark.parametrize(
    "ref,cur,message",
    [
        ([1, 2], [1, 2, 3], "not the same bins"),
        ([0, 0], [1, 1], "sum to zero"),
        ([-1, 2], [1, 1], "non-negative"),
    ],
)
def test_bad_counts_say_what_is_wrong(ref, cur, message):
    with pytest.raises(ValueError, match=message):
        drift.psi(ref, cur)


def test_same_distribution_million_rows_not_flagged():
    from batchinfer.checks.drift_policy import DriftConfig, evaluate_drift

    rng = np.random.default_rng(11)
    n = 1_000_000

    def data():
        return (
            {"a": rng.normal(size=n), "b": rng.exponential(2.0, n), "score": rng.beta(2, 5, n)},
            {"c": rng.choice(np.array(["x", "y", "z", "w"]), n, p=[0.4, 0.3, 0.2, 0.1])},
        )

    ref = profile_arrays(*data())
    num, cat = data()
    cur = count_arrays({**num, **cat}, ref)
    for metric in ("psi", "js", "ks", "wasserstein"):
        outcomes = evaluate_drift(ref, cur, DriftConfig(metric=metric), prediction_columns=["score"])
        assert [o for o in outcomes if not o.passed] == [], metric
        assert {o.stage for o in outcomes} == {"drift", "prediction_drift"}


# ----------------------------------------------------------------------- profile JSON + merge


def test_profile_json_round_trip_and_merge_is_additive():
    rng = np.random.default_rng(3)
    a = {"x": rng.normal(size=5000)}
    b = {"x": np.concatenate([rng.normal(1.0, 2.0, 3000), [np.nan] * 10])}
    ca = {"c": rng.choice(["p", "q", "r"], 5000)}
    cb = {"c": np.array(list(rng.choice(["p", "q", "s"], 3009)) + [None], dtype=object)}
    pa = profile_arrays(a, ca, bins=5, fine_bins=20, top_k=2)
    pb = profile_arrays(b, cb, edges_from=pa)
    both = profile_arrays(
        {"x": np.concatenate([a["x"], b["x"]])},
        {"c": np.concatenate([ca["c"].astype(object), cb["c"]])},
        edges_from=pa,
    )
    m = merge(pa, pb)
    x, bx = m.columns["x"], both.columns["x"]
    assert (x.counts, x.fine_counts, x.null_count, x.count) == (bx.counts, bx.fine_counts, 10, 8000)
    assert (x.min, x.max) == (bx.min, bx.max)
    assert x.sum == pytest.approx(bx.sum) and x.sumsq == pytest.approx(bx.sumsq)
    assert x.std == pytest.approx(np.nanstd(np.concatenate([a["x"], b["x"]])))
    c, bc = m.columns["c"], both.columns["c"]
    assert (c.counts, c.null_count) == (bc.counts, 1)
    assert c.vocabulary == ("p", "q", "r", "s")
    assert m.row_count == 8010
    assert from_json(m.to_json()) == m


def test_profile_arrays_rejects_ragged_columns():
    with pytest.raises(ValueError, match="same length.*x has 3.*c has 2"):
        profile_arrays({"x": np.arange(3.0)}, {"c": ["a", "b"]})


def test_merge_rejects_different_edges():
    rng = np.random.default_rng(0)
    p1 = profile_arrays({"x": rng.normal(size=100)})
    p2 = profile_arrays({"x": rng.normal(size=100)})
    with pytest.raises(InputDataError, match="bin edges differ.*edges_from"):
        merge(p1, p2)


def _doc():
    return json.loads(
        profile_arrays({"x": np.arange(100.0)}, {"c": ["a", "b"] * 50}, bins=4, fine_bins=8).to_json()
    )


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda d: d.update(schema_version=2), "unsupported schema_version 2"),
        (lambda d: d.pop("schema_version"), "unsupported schema_version None"),
        (lambda d: d.update(columns={}), "columns: expected a non-empty object"),
        (lambda d: d["columns"]["x"].update(counts=[1, 2]), r"columns\.x\.counts: expected 6 entries, got 2"),
        (lambda d: d["columns"]["x"].update(edges=[3.0, 1.0, 2.0]), "edges must be strictly increasing"),
        (lambda d: d["columns"]["x"].update(count=5), r"counts: sum to 100 but count is 5"),
        (lambda d: d["columns"]["x"].update(type="text"), "expected 'numeric' or 'categorical', got 'text'"),
        (lambda d: d["columns"]["c"].update(counts=[-1, 1, 0]), "list of non-negative integers"),
        (lambda d: d.update(row_count="many"), "row_count: expected a non-negative integer"),
    ],
)
def test_malformed_profile_says_what_is_wrong(mutate, message):
    doc = _doc()
    mutate(doc)
    with pytest.raises(InputDataError, match=message):
        from_json(json.dumps(doc))


def test_profile_not_json():
    with pytest.raises(InputDataError, match="not valid JSON"):
        from_json("{nope")


def test_load_missing_profile(tmp_path):
    from batchinfer.checks.profile import load_profile

    with pytest.raises(InputDataError, match="cannot read reference profile"):
        load_profile(tmp_path / "missing.json")
    p = profile_arrays({"x": np.arange(10.0)})
    p.save(tmp_path / "p.json")
    assert load_profile(tmp_path / "p.json") == p


def test_bucket_counts_equal_searchsorted_exactly():
    """The table-driven bucketing gives the binary search's counts, ties and tails included."""
    from batchinfer.checks.profile import _probs, bucket_counts, bucket_index, coarse_index

    rng = np.random.default_rng(11)
    for trial in range(12):
        ref = rng.normal(size=4000) * rng.uniform(0.01, 100) + rng.uniform(-5, 5)
        if trial % 3 == 0:
            ref = np.round(ref)  # ties: repeated edges collapse, many values sit on an edge
        fine = np.unique(np.quantile(ref, _probs(100, fine=True)))
        coarse = fine[::7]
        values = (
            np.concatenate(
                [
                    rng.normal(size=5000) * ref.std() + ref.mean(),
                    fine,
                    np.nextafter(fine, np.inf),
                    np.nextafter(fine, -np.inf),
                    [np.inf, -np.inf, fine[0] - 1e-300, fine[-1]],
                ]
            )
            .astype(np.float32)
            .astype(np.float64)
        )
        want = np.bincount(np.searchsorted(fine, values, side="left"), minlength=fine.size + 1)
        got = bucket_counts(values, fine)
        assert (got == want).all()
        coarse_q = np.unique(np.quantile(ref, _probs(10, fine=False)))  # near, not equal to, fine edges
        for c in (coarse, coarse_q):
            idx = coarse_index(values, bucket_index(values, fine), c, fine)
            assert idx is not None and (idx == np.searchsorted(c, values, side="left")).all()
    assert (bucket_counts(np.array([1.0, 2.0]), np.array([1.5])) == [1, 1]).all()  # one edge: plain search
    two_inside = coarse_index(np.array([0.5]), np.array([1]), np.array([0.2, 0.4]), np.array([0.0, 1.0]))
    assert two_inside is None  # two coarse edges in one fine bucket: the caller searches


def test_stacked_counts_equal_the_per_column_counts():
    """Binning the numeric columns together gives the per-column path's counts exactly, and its
    moments to rounding: ties on edges, tails, NaN in some columns, a column with one edge (no
    lookup table), a categorical column, several batches."""
    import pyarrow as pa

    from batchinfer.checks.profile import _Grid, _probs, _skeleton

    rng = np.random.default_rng(5)
    numeric, data = {}, {}
    for j in range(9):
        ref = rng.normal(size=3000) * rng.uniform(0.01, 50) + rng.uniform(-1e4, 1e4)
        if j % 3 == 0:
            ref = np.round(ref)
        fine = np.unique(np.quantile(ref, _probs(100, fine=True)))
        coarse = np.unique(np.quantile(ref, _probs(10, fine=False)))
        numeric[f"x{j}"] = (coarse, fine)
        values = np.concatenate(
            [rng.normal(size=6000) * ref.std() + ref.mean(), fine, np.nextafter(fine, np.inf)]
        )
        data[f"x{j}"] = rng.permutation(values).astype(np.float32)[:6000]
    numeric["one_edge"] = (np.array([0.5]), np.array([0.5]))
    n = 6000
    data["one_edge"] = rng.random(n).astype(np.float32)
    data["x4"][::97] = np.nan  # NaN in one column of some batches only
    data["x7"][: n // 2] = np.nan  # a column that is all NaN in the first batches
    grid = _Grid.of(_skeleton(numeric, {"c": (("a", "b"), None)}))
    assert grid._stacked is not None and len(grid._stacked.columns) == 10  # the one-edge column too
    data["c"] = rng.choice(["a", "b", "z"], size=n)
    fast, slow = grid.empty(), grid.empty()
    for start in range(0, n, 1000):
        batch = {k: pa.array(v[start : start + 1000]) for k, v in data.items()}
        grid.count_batch(batch, *fast)
        grid.count_columns(batch, *slow)
    assert (fast[0] == slow[0]).all()
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-12)
    empty = {k: pa.array(v[:0]) for k, v in data.items()}
    before = fast[0].copy()
    grid.count_batch(empty, *fast)
    assert (fast[0] == before).all()


def test_stacked_counts_of_float32_values_against_float64_edges():
    """float32 columns are sorted and searched as float32 against edges rounded down: the counts
    are float64 arithmetic's, for values on, just below and just above edges that float32 holds
    exactly and edges it does not; float64 and integer columns (in the same and in other stacks)
    and values far outside the range, infinities included, count the same."""
    import pyarrow as pa

    from batchinfer.checks.profile import _Grid, _skeleton
    from batchinfer.checks.stacked_counts import _floor32

    rng = np.random.default_rng(11)
    fine = np.concatenate([np.linspace(-3.0, 3.0, 61), [0.1, 1 / 3, 2.0 + 1e-12]])  # 0.1, 1/3: not float32
    fine = np.unique(fine)
    e32 = fine.astype(np.float32)
    near = np.concatenate(
        [e32, np.nextafter(e32, np.float32(-np.inf)), np.nextafter(e32, np.float32(np.inf))]
    )
    values = np.concatenate(
        [near, rng.normal(size=5000).astype(np.float32) * 2, [-np.inf, np.inf, -3e38, 3e38]]
    )
    values = values.astype(np.float32)
    n = values.size
    numeric = {f"f{j}": (fine[::6], fine) for j in range(10)}
    grid = _Grid.of(_skeleton(numeric, {}))
    assert grid._stacked is not None and len(grid._stacked.columns) == 10
    data = {f"f{j}": pa.array(rng.permutation(values)) for j in range(10)}
    data["f3"] = pa.array(rng.permutation(values).astype(np.float64))  # one float64 column in the first stack
    data["f9"] = pa.array(rng.integers(-4, 4, size=n))  # an integer column alone in the second stack
    data["f6"] = list(rng.permutation(values).astype(float))  # a plain list (no dtype) counts too
    fast, slow = grid.empty(), grid.empty()
    grid.count_batch(data, *fast)
    grid.count_columns(data, *slow)
    assert (fast[0] == slow[0]).all()
    np.testing.assert_allclose(fast[1], slow[1], rtol=1e-12)
    v = data["f0"].to_numpy().astype(np.float64)  # and they are float64 searchsorted's
    c = fine[::6].size + 1
    want_fine = np.bincount(np.searchsorted(fine, v, side="left"), minlength=fine.size + 1)
    want_coarse = np.bincount(np.searchsorted(fine[::6], v, side="left"), minlength=c)
    assert (fast[0][1 : 1 + c] == want_coarse).all() and (
        fast[0][1 + c : 2 + c + fine.size] == want_fine
    ).all()
    for e in fine:
        f = _floor32(np.array([e]))[0]
        assert f <= e and (np.nextafter(f, np.float32(np.inf)) > e)


def test_integer_categories_count_as_their_decimal_strings():
    """An integer column against string categories: matched as integers (no cast per batch), with
    the counts casting to string gives: "07", "+7", "7.0", "1_0" and out-of-range values match
    nothing, nulls are nulls, unseen values are unseen."""
    import pyarrow as pa

    from batchinfer.checks.profile import _Grid, _skeleton

    cats = ("0", "1", "-7", "07", "+7", "7.0", "1_0", "300", "a", "-0")
    vocab = (*cats, "5")
    rng = np.random.default_rng(3)
    for typ in (pa.int8(), pa.int64(), pa.uint16()):
        low = 0 if pa.types.is_unsigned_integer(typ) else -8
        values = rng.integers(low, 12, size=5000)
        arr = pa.array(values, type=typ, mask=rng.random(5000) < 0.05)
        for vocabulary in (vocab, cats, None):  # a wider vocabulary, the categories themselves, none
            grid = _Grid.of(_skeleton({}, {"c": (cats, vocabulary)}))
            as_int, as_str = grid.empty(), grid.empty()
            grid.count_columns({"c": arr}, *as_int)
            grid.count_columns({"c": arr.cast(pa.string())}, *as_str)
            assert (as_int[0] == as_str[0]).all(), (typ, vocabulary)
        assert as_int[0][1 + 1] > 0 and as_int[0][1 + len(cats) + 1] == arr.null_count  # '1' seen; nulls


def test_null_free_integer_labels_count_through_the_dense_table_as_their_decimal_strings():
    """Null-free integer columns in a narrow range take the dense-table path (one bincount):
    the counts equal the string cast's, with values below, above and far outside the
    categories (the type's extremes), for several integer types and vocabularies; a wide range
    or uint64 falls back to the lookup path, with the same counts."""
    import pyarrow as pa

    from batchinfer.checks.profile import DENSE_INT_SPAN, _dense_int_table, _Grid, _skeleton

    rng = np.random.default_rng(5)
    narrow = ("0", "1", "-7", "07", "+7", "7.0", "300", "a", "-0")
    wide = ("0", "1", str(DENSE_INT_SPAN + 10))
    for typ in (pa.int8(), pa.int16(), pa.int64(), pa.uint8(), pa.uint32(), pa.uint64()):
        info = np.iinfo(typ.to_pandas_dtype())
        dtype = typ.to_pandas_dtype()
        values = rng.integers(max(info.min, -9), 13, size=4000).astype(dtype)
        values[:4] = np.array([info.min, info.max, info.min + 1, info.max - 1], dtype=dtype)
        arr = pa.array(values, type=typ)
        for cats in (narrow, wide):
            for vocabulary in ((*cats, "5", "-9"), cats, None):
                table = _dense_int_table(cats, vocabulary, typ)
                wide_here = cats is wide and info.max >= DENSE_INT_SPAN + 10  # int8: "4106" matches nothing
                assert (table is None) == (wide_here or pa.types.is_uint64(typ)), (typ, cats)
                grid = _Grid.of(_skeleton({}, {"c": (cats, vocabulary)}))
                as_int, as_str = grid.empty(), grid.empty()
                grid.count_columns({"c": arr}, *as_int)
                grid.count_columns({"c": arr.cast(pa.string())}, *as_str)
                assert (as_int[0] == as_str[0]).all(), (typ, cats, vocabulary)
                chunked = grid.empty()  # a chunked column counts the same
                grid.count_columns({"c": pa.chunked_array([arr[:1000], arr[1000:]])}, *chunked)
                assert (chunked[0] == as_int[0]).all()
        assert as_int[0][1 + 1] > 0  # '1' was seen


def test_a_grid_layout_is_not_reused_for_a_grid_with_other_categorical_columns():
    """The per-process layout cache is keyed by the whole int vector, not the numeric edges only:
    the same numeric column with and without a categorical column beside it counts correctly."""
    import pyarrow as pa

    from batchinfer.checks.profile import _Grid, _skeleton

    numeric = {"x": (np.array([-1.0, 0.0, 1.0]), np.linspace(-2, 2, 21))}
    batch = {"x": pa.array(np.random.default_rng(1).normal(size=500)), "c": pa.array(["a"] * 500)}
    alone = _Grid.of(_skeleton(numeric, {}))
    both = _Grid.of(_skeleton(numeric, {"c": (("a", "b"), None)}))
    for grid in (alone, both):
        fast, slow = grid.empty(), grid.empty()
        grid.count_batch(batch, *fast)
        grid.count_columns(batch, *slow)
        assert (fast[0] == slow[0]).all()
