"""batchinfer/checks/plan_cache.py without a run: what the key depends on, round trips, refusals."""

from __future__ import annotations

import pyarrow as pa

from batchinfer.checks import partials as P
from batchinfer.checks import plan_cache
from batchinfer.checks.expectations import ExpectationSpec


def _schema(f1_type=None):
    types = {"id": pa.int64(), "f1": f1_type or pa.float32()}
    return P.SideSchema(["id", "f1"], types, frozenset(["id", "f1"]))


def _key(
    specs=({"expect": "not_null", "column": "f1"},), *, schema=None, suite=None, result_format="SUMMARY"
):
    parsed = [ExpectationSpec.model_validate(s) for s in specs]
    side = plan_cache.side_key("input", parsed, suite, schema or _schema())
    return plan_cache.plan_key([side], result_format=result_format, engine_kind="spark-types")


def test_the_key_changes_with_everything_the_ops_depend_on(tmp_path):
    base = _key()
    assert base == _key()  # deterministic
    assert _key([{"expect": "not_null", "column": "id"}]) != base
    assert _key([{"expect": "not_null", "column": "f1", "mostly": 0.9}]) != base
    assert _key(schema=_schema(pa.float64())) != base
    assert _key(result_format="BASIC") != base
    suite = tmp_path / "suite.json"
    suite.write_text('{"name": "s", "expectations": []}')
    with_suite = _key(suite=str(suite))
    suite.write_text('{"name": "s", "expectations": [{}]}')
    assert _key(suite=str(suite)) != with_suite != base


def test_ops_round_trip_exactly_and_bad_files_are_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHINFER_CACHE_DIR", str(tmp_path))
    ops = [
        P.Op("rows"),
        P.Op("cond", "f1", "between", (("max_value", 10), ("min_value", -2.5), ("strict_min", False)), 20),
        P.Op("cond", "c", "in_set", (("value_set", ("a", "b", None)),), 20),
    ]
    key = _key()
    path = plan_cache.save(key, {"input": ops})
    assert path is not None and path.parent == tmp_path / "check-plans"
    back = plan_cache.load(key)
    assert back == {"input": ops} and [o.key for o in back["input"]] == [o.key for o in ops]
    assert plan_cache.load(_key([{"expect": "not_null", "column": "id"}])) is None  # another key
    path.write_text("{not json")
    assert plan_cache.load(key) is None
    other = _key(result_format="BASIC")
    (tmp_path / "check-plans" / f"{other}.json").write_text(path.read_text().replace("{", "[", 1))
    assert plan_cache.load(other) is None


def test_off_disables_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCHINFER_CACHE_DIR", "off")
    assert plan_cache.cache_dir() is None
    assert plan_cache.save(_key(), {"input": [P.Op("rows")]}) is None
    assert plan_cache.load(_key()) is None
    monkeypatch.delenv("BATCHINFER_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert plan_cache.cache_dir() == tmp_path / "batchinfer" / "check-plans"
