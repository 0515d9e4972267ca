"""Expectation partials without Spark: per-batch metrics merge exactly, GX decides from them."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from batchinfer.checks import partials as P
from batchinfer.checks.quality import suite_expectations
from batchinfer.checks.quarantine import REASON_COLUMN, row_rules, split_batch

SPECS = [
    {"expect": "row_count_between", "min": 10},
    {"expect": "not_null", "column": "x"},
    {"expect": "not_null", "column": "x", "mostly": 0.5},
    {"expect": "null", "column": "x"},
    {"expect": "between", "column": "x", "min": -1, "max": 1},
    {"expect": "between", "column": "x", "min": -1, "max": 1, "mostly": 0.6},
    {"expect": "between", "column": "x", "min": -1, "kwargs": {"strict_min": True}},
    {"expect": "in_set", "column": "s", "values": ["a", "b"]},
    {"expect": "not_in_set", "column": "s", "values": ["zz"]},
    {"expect": "match_regex", "column": "s", "regex": "^[ab]$"},
    {"expect": "distinct_in_set", "column": "s", "values": ["a", "b", "c"]},
    {"expect": "mean_between", "column": "x", "min": -0.5, "max": 0.5},
    {"expect": "stdev_between", "column": "x", "min": 0, "max": 2},
    {"expect": "sum_between", "column": "i", "min": 0},
    {"expect": "min_between", "column": "i", "min": 0, "max": 5},
    {"expect": "max_between", "column": "i", "min": 0, "max": 5},
    {"expect": "non_null_fraction_between", "column": "s", "min": 0.9},
    {"expect": "columns_match_set", "values": ["i", "s", "x"]},
    {"expect": "column_exists", "column": "nope"},
]


def _table(n=500, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    x_mask = rng.random(n) < 0.1
    s = rng.choice(["a", "b", "c", "zz"], size=n, p=[0.5, 0.3, 0.15, 0.05]).astype(object)
    s[rng.random(n) < 0.05] = None
    return pa.table(
        {
            "x": pa.array(x, mask=x_mask),
            "s": pa.array(list(s), pa.string()),
            "i": pa.array(rng.integers(0, 7, size=n), pa.int64()),
        }
    )


def _schema(table, aggregation=()):
    return P.SideSchema(
        sorted(table.column_names), {f.name: f.type for f in table.schema}, frozenset(aggregation)
    )


def _decide(table, specs, *, chunk, result_format="SUMMARY"):
    exps = suite_expectations(specs, stage="input")
    schema = _schema(table)
    ops, routes = P.plan_routes(exps, schema, result_format=result_format)
    states = []
    for batch in table.to_batches(max_chunksize=chunk):
        st = P.new_state()
        P.observe(ops, st, batch)
        states.append(P.decode(P.encode(st)))
    merged = P.merge_states(ops, states)
    out = []
    for r in routes:
        assert r.path == P.SINGLE_PASS, (r.gx_type, r.reason)
        evr = P.validate(r, P.metrics_for(r, merged, schema), result_format=result_format).to_json_dict()
        out.append(evr)
    return out


def test_partials_merge_exactly_whatever_the_batch_split():
    table = _table()
    whole = _decide(table, SPECS, chunk=10_000)
    split = _decide(table, SPECS, chunk=37)
    for a, b in zip(whole, split, strict=True):
        assert a["success"] == b["success"], a["expectation_config"]["type"]
        ra, rb = a["result"], b["result"]
        for key in ("unexpected_count", "element_count", "missing_count"):
            assert ra.get(key) == rb.get(key)
        oa, ob = ra.get("observed_value"), rb.get("observed_value")
        if isinstance(oa, float):
            assert ob == pytest.approx(oa, rel=1e-12)
        else:
            assert oa == ob


def test_gx_decides_from_the_metrics_with_mostly():
    table = _table()
    res = {r["expectation_config"]["kwargs"].get("mostly"): r for r in _decide(table, SPECS[1:3], chunk=50)}
    nulls = table.column("x").null_count
    assert res[None]["success"] is False and res[None]["result"]["unexpected_count"] == nulls
    assert res[0.5]["success"] is True  # about 10 % null: within mostly 0.5
    x = table.column("x").drop_null().to_numpy()
    between = _decide(table, [SPECS[4]], chunk=50)[0]
    assert between["result"]["unexpected_count"] == int(((x < -1) | (x > 1)).sum())


def test_mean_and_stdev_match_numpy():
    table = _table(n=3000, seed=7)
    x = table.column("x").drop_null().to_numpy()
    mean, stdev = _decide(table, SPECS[11:13], chunk=101)
    assert mean["result"]["observed_value"] == pytest.approx(float(x.mean()), rel=1e-12)
    assert stdev["result"]["observed_value"] == pytest.approx(float(x.std(ddof=1)), rel=1e-12)


def test_nan_is_ordered_as_spark_orders_it():
    """Spark puts NaN above every number: it passes a lower bound, fails an upper one, is the max."""
    table = pa.table({"x": [0.5, float("nan"), None, 2.0]})
    lower, upper, both, top, bottom = _decide(
        table,
        [
            {"expect": "between", "column": "x", "min": 0},
            {"expect": "between", "column": "x", "max": 1},
            {"expect": "between", "column": "x", "min": 0, "max": 1},
            {"expect": "max_between", "column": "x", "min": 0, "max": 5},
            {"expect": "min_between", "column": "x", "min": 0, "max": 5},
        ],
        chunk=2,
    )
    assert lower["result"]["unexpected_count"] == 0
    assert upper["result"]["unexpected_count"] == 2
    assert both["result"]["unexpected_count"] == 2
    assert top["success"] is False and top["result"]["observed_value"] is None  # NaN, as on Spark
    assert bottom["result"]["observed_value"] == 0.5


def test_the_min_max_shortcut_only_skips_batches_without_unexpected_values():
    """``between`` and integer ``in_set`` skip the per-value mask when min and max settle it; on
    bounds a hair from the values (float32 columns against float64 bounds, integer columns against
    float bounds, strict bounds, NaN, huge integers) the shortcut never hides an unexpected value."""
    rng = np.random.default_rng(3)
    f32 = np.float32
    cases = []
    for typ in (pa.float32(), pa.float64(), pa.int64(), pa.int8(), pa.uint64()):
        for _ in range(40):
            if pa.types.is_floating(typ):
                v = rng.normal(size=50).astype(typ.to_pandas_dtype())
                if rng.random() < 0.2:
                    v[3] = np.nan
                edge = float(v[~np.isnan(v)].min())
                bounds = [edge, float(f32(edge)), float(np.nextafter(edge, -np.inf)), 0.1, -3, 3]
            else:
                big = 2**53 + 1 if typ == pa.uint64() else 0
                v = (rng.integers(0, 5, size=50) + big).astype(typ.to_pandas_dtype())
                edge = int(v.min())
                bounds = [edge, edge - 0.5, float(edge), edge + 1, float(2**53)]
            arr = pa.array(v, type=typ, from_pandas=False)
            lo = bounds[rng.integers(len(bounds))]
            top = float(np.nanmax(v))
            hi = max(lo, [top, float(np.nextafter(top, -np.inf)), lo + 1][rng.integers(3)])
            for strict in ({}, {"strict_min": True}, {"strict_max": True}):
                cases.append((arr, {"min_value": lo, "max_value": hi, **strict}, "between"))
            if pa.types.is_integer(typ):
                members = sorted({int(x) for x in v} | ({int(v.max()) + 1} if rng.random() < 0.5 else set()))
                gap = rng.integers(4)  # none, or the smallest, a middle or the largest value missing
                if gap:
                    members.remove(members[[0, len(members) // 2, -1][gap - 1]])
                cases.append((arr, {"value_set": members}, "in_set"))
    skipped = 0
    for arr, kwargs, cond in cases:
        op = P.Op("cond", "x", cond, tuple(sorted((k, P._hashable(v)) for k, v in kwargs.items())), 20)
        try:
            unexpected = int(pa.compute.sum(P._unexpected_mask(op, arr)).as_py() or 0)
        except pa.ArrowInvalid:  # e.g. integers beyond 2**53 against a float bound: GX decides
            unexpected = None
        if P._none_unexpected(op, arr):
            skipped += 1
            assert unexpected == 0, (arr.type, kwargs, cond)
    assert 0 < skipped < len(cases)


def test_routes_name_the_path_and_why():
    table = _table()
    exps = suite_expectations(
        [
            {"expect": "unique", "column": "i"},
            {"expect": "unique", "column": "x"},
            {"expect": "median_between", "column": "x", "min": 0},
            {
                "expect": "not_null",
                "column": "x",
                "kwargs": {"row_condition": 'col("i")>2', "condition_parser": "spark"},
            },
            {"expect": "not_null", "column": "missing"},
            {"expect": "type", "column": "x", "dtype": "DoubleType"},
        ],
        stage="input",
    )
    _, routes = P.plan_routes(exps, _schema(table, aggregation=["i"]))
    paths = [(r.path, r.reason) for r in routes]
    assert paths[0] == (P.AGGREGATION, "")
    assert paths[1] == (P.GX_SPARK, "column 'x' not in the staged output")
    assert paths[2] == (P.GX_SPARK, "metric column.median has no single-pass form")
    assert paths[3] == (P.GX_SPARK, "row_condition")
    assert paths[4] == (P.GX_SPARK, "column 'missing' not seen by the pass")
    assert paths[5][0] == P.GX_SPARK  # type checks need GX's Spark engine (given in a job)
    _, complete = P.plan_routes(exps[:1], _schema(table, ["i"]), result_format="COMPLETE")
    assert complete[0].path == P.GX_SPARK and "COMPLETE" in complete[0].reason


def test_an_op_the_data_rejects_makes_the_expectation_fall_back():
    table = _table()
    exps = suite_expectations([{"expect": "between", "column": "s", "min": 0, "max": 1}], stage="input")
    ops, routes = P.plan_routes(exps, _schema(table))
    state = P.new_state()
    P.observe(ops, state, table.to_batches()[0])
    merged = P.merge_states(ops, [state])
    assert "Arrow" in P.unavailable(routes[0], merged) or "Error" in P.unavailable(routes[0], merged)


def test_too_many_distinct_values_fall_back(monkeypatch):
    monkeypatch.setattr(P, "MAX_VALUE_COUNTS", 3)
    table = pa.table({"s": [str(i) for i in range(10)]})
    exps = suite_expectations([{"expect": "distinct_in_set", "column": "s", "values": ["1"]}], stage="input")
    ops, routes = P.plan_routes(exps, _schema(table))
    states = []
    for b in table.to_batches(max_chunksize=2):
        st = P.new_state()
        P.observe(ops, st, b)
        states.append(st)
    assert "more than 3 distinct values" in P.unavailable(routes[0], P.merge_states(ops, states))


def test_empty_input_gives_gx_its_null_observations():
    table = pa.table({"x": pa.array([], pa.float64())})
    (mean,) = _decide(table, [{"expect": "mean_between", "column": "x", "min": 0}], chunk=10)
    assert mean["success"] is False and mean["result"]["observed_value"] is None


# --------------------------------------------------------------------------- quarantine in the task
def test_split_batch_labels_match_the_spark_rules():
    batch = pa.record_batch(
        {
            "f0": pa.array([1.0, None, float("nan"), float("inf"), 9.0], pa.float32()),
            "c": ["DE", "XX", None, "DE", "FR"],
        }
    )
    rules = row_rules(
        batch.schema,
        feature_columns=["f0"],
        specs=[
            {"expect": "in_set", "column": "c", "values": ["DE", "FR"]},
            {"expect": "between", "column": "f0", "max": 5},
        ],
        rules=["null_features", "non_finite_features", "input_checks"],
    )
    clean, bad = split_batch(batch, rules)
    assert clean.to_pydict() == {"f0": [1.0], "c": ["DE"]}
    assert bad.column(REASON_COLUMN).to_pylist() == [
        "f0 is null; c not in set",
        "f0 is NaN; f0 out of range [-inf, 5]",
        "f0 is infinite; f0 out of range [-inf, 5]",
        "f0 out of range [-inf, 5]",
    ]
    _, first = split_batch(batch, rules, reasons="first")
    assert first.column(REASON_COLUMN).to_pylist()[0] == "f0 is null"


def test_split_batch_array_features_and_clean_batches():
    batch = pa.record_batch(
        {"v": pa.array([[1.0, 2.0], [1.0, None], [float("nan")], [3.0]], pa.list_(pa.float32()))}
    )
    rules = row_rules(batch.schema, feature_columns=["v"])
    clean, bad = split_batch(batch, rules)
    assert clean.num_rows == 2
    assert bad.column(REASON_COLUMN).to_pylist() == ["v has a null element", "v has a NaN element"]
    same, none = split_batch(clean, rules)
    assert none is None and same.num_rows == 2


def test_row_rules_name_missing_columns():
    from batchinfer.errors import InputDataError

    schema = pa.schema([("f0", pa.float32())])
    with pytest.raises(InputDataError, match=r"feature column\(s\) \['f9'\] not in the data"):
        row_rules(schema, feature_columns=["f9"])


def test_moments_reject_text_columns():
    op = P.Op("moments", "s")
    state = P.new_state()
    P.observe([op], state, pa.record_batch({"s": ["a"]}))
    assert "not numeric" in state[op.key].message


def test_summary_shows_the_checks_share_of_the_run():
    from batchinfer.report import checks_share, summary_text

    manifest = {
        "job": "j",
        "run_id": "r",
        "status": "succeeded",
        "timings": {"plan": 1.0, "checks_plan": 0.5, "score_and_stage": 6.0, "checks": 1.5, "total": 10.0},
        "checks": {"single_pass": True, "in_task_seconds": 1.0},
    }
    assert checks_share(manifest) == (
        "3.0 s of 10.0 s (30.0 %): 2.0 s on the driver + 1.0 s inside the scoring tasks (one pass, no extra read)"
    )
    assert "  checks        3.0 s of 10.0 s (30.0 %)" in summary_text(manifest)
    assert checks_share({"timings": {"total": 3.0}}) is None  # no checks configured: no line


def test_partials_travel_as_tagged_json_not_pickle():
    import datetime as dt
    import decimal

    state = {
        "k": (np.arange(3, dtype=np.int64), np.array([0.5, np.inf])),
        "vc": {1: 2, None: 1, "a": 3, dt.date(2026, 12, 1): 4},
        "m": [decimal.Decimal("1.5"), dt.datetime(2026, 12, 1, 10, 0), b"\x00", float("nan")],
        "f": P._Failed("ArrowInvalid: x"),
        "o": P._Overflow(),
    }
    data = P.encode(state)
    assert data.startswith(b"{")  # JSON text: the driver never unpickles what tasks send
    back = P.decode(bytearray(data))  # Spark hands binary columns over as bytearray
    assert (back["k"][0] == state["k"][0]).all() and back["k"][0].dtype == np.int64
    assert back["vc"] == state["vc"] and back["f"] == state["f"] and isinstance(back["o"], P._Overflow)
    assert back["m"][:3] == state["m"][:3] and math.isnan(back["m"][3])
    with pytest.raises(TypeError, match="cannot carry a object"):
        P.encode({"x": object()})
