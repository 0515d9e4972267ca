"""Expectation metrics as mergeable partials: computed on the Arrow batches a scoring task holds.

Great Expectations decides an expectation from a dict of metrics (``table.row_count``,
``column_values.nonnull.unexpected_count``, ``column.mean``...). GX on Spark computes that dict
with a dozen Spark jobs over the data; here the scoring task, which already holds every input
and output batch, computes the *partials* of the same metrics (counts, sums, min / max, value
counts, a sample of unexpected values), the driver merges the partials of all tasks and hands
the metrics dict to the expectation's own ``metrics_validate`` (GX 1.x): the decision, the
observed values and the result document are GX's.

Three paths, chosen per expectation by :func:`plan_routes` and reported in the manifest:

``single_pass``
    every metric the expectation needs merges exactly (the types in :data:`MAP_CONDITIONS` and
    :data:`AGGREGATES`).
``aggregation``
    it needs an exact distinct count (``unique``, ``unique_value_count``): one extra Spark
    aggregation over the staged output computes those for all such expectations at once
    (:func:`distinct_metrics`).
``gx_spark``
    anything else (quantiles, row conditions, pair / multicolumn types, COMPLETE result
    format, a column the pass does not see): plain GX on a Spark DataFrame, as before.

The semantics follow GX on Spark, including Spark's NaN ordering (NaN is larger than every
number and equal to itself): ``between`` with only a lower bound accepts NaN, ``column.max``
of a column holding NaN is NaN. Everything here is numpy / pyarrow; nothing imports Spark
except the Spark type names for type checks.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

SINGLE_PASS = "single_pass"
AGGREGATION = "aggregation"
GX_SPARK = "gx_spark"

MAP_CONDITIONS = ("null", "between", "in_set", "not_in_set", "match_regex", "not_match_regex")
"""GX map metrics (``column_values.<name>``) whose unexpected counts the pass computes."""

AGGREGATES = (
    "table.row_count",
    "table.columns",
    "table.column_types",
    "column.mean",
    "column.sum",
    "column.standard_deviation",
    "column.min",
    "column.max",
    "column.non_null_proportion",
    "column.distinct_values.not_in_set",
    "column.distinct_values.not_in_set.count",
)
"""Other GX metrics the pass merges exactly."""

DISTINCT_METRICS = (
    "column_values.unique.unexpected_count",
    "column_values.unique.unexpected_values",
    "column_values.unique.unexpected_index_list",
    "column_values.unique.unexpected_index_query",
    "column.distinct_values.count",
)
"""Metrics that need exact distinct counts: one Spark aggregation on the staged output."""

MAX_VALUE_COUNTS = 100_000
"""Distinct values a task keeps per column for distinct-set checks before giving up on it."""


@dataclass(frozen=True)
class Op:
    """One partial a task computes on every batch of one side (input or output)."""

    kind: str  # rows | nulls | cond | moments | minmax | value_counts
    column: str | None = None
    cond: str | None = None  # for kind == "cond": one of MAP_CONDITIONS
    args: tuple = ()  # for kind == "cond": sorted (name, value) pairs, values made hashable
    sample: int = 0  # for kind == "cond": how many unexpected values to keep

    @property
    def key(self) -> str:
        return repr((self.kind, self.column, self.cond, self.args, self.sample))

    def arg(self, name: str, default: Any = None) -> Any:
        for k, v in self.args:
            if k == name:
                return list(v) if isinstance(v, tuple) else v
        return default


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


# --------------------------------------------------------------------------- task side
def new_state() -> dict:
    return {}


def observe(ops: Sequence[Op], state: dict, batch) -> None:
    """Add one Arrow ``RecordBatch`` into ``state`` for every op (errors are kept, not raised)."""
    for op in ops:
        key = op.key
        cur = state.get(key)
        if isinstance(cur, _Failed):
            continue
        try:
            state[key] = _merge_one(op, cur, _compute(op, batch))
        except Exception as exc:  # an op GX would also reject (e.g. between on strings)
            state[key] = _Failed(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


@dataclass(frozen=True)
class _Failed:
    message: str


def encode(state: dict) -> bytes:
    """The task's partials as bytes (tagged JSON, no pickle): they travel back with its file rows."""
    return json.dumps(pack(state), separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    return unpack(json.loads(bytes(data).decode()))


def pack(obj: Any) -> Any:
    """``obj`` as JSON-able tagged values (tuples, numpy, dates, ... kept): task partials, kept plans."""
    import datetime as dt
    import decimal

    import numpy as np

    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)):
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return {"$nd": str(obj.dtype), "v": obj.tolist()}
    if isinstance(obj, list):
        return [pack(v) for v in obj]
    if isinstance(obj, tuple):
        return {"$t": [pack(v) for v in obj]}
    if isinstance(obj, dict):
        return {"$d": [[pack(k), pack(v)] for k, v in obj.items()]}
    if isinstance(obj, _Failed):
        return {"$failed": obj.message}
    if isinstance(obj, _Overflow):
        return {"$overflow": True}
    if isinstance(obj, dt.datetime):
        return {"$datetime": obj.isoformat()}
    if isinstance(obj, dt.date):
        return {"$date": obj.isoformat()}
    if isinstance(obj, dt.time):
        return {"$time": obj.isoformat()}
    if isinstance(obj, dt.timedelta):
        return {"$timedelta": obj.total_seconds()}
    if isinstance(obj, decimal.Decimal):
        return {"$decimal": str(obj)}
    if isinstance(obj, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(obj)).decode()}
    raise TypeError(f"cannot carry a {type(obj).__name__} in the partial metrics")


def unpack(obj: Any) -> Any:
    """The inverse of :func:`pack`."""
    import datetime as dt
    import decimal

    import numpy as np

    if isinstance(obj, list):
        return [unpack(v) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "$nd" in obj:
        return np.asarray(obj["v"], dtype=obj["$nd"])
    if "$t" in obj:
        return tuple(unpack(v) for v in obj["$t"])
    if "$d" in obj:
        return {_hashable(unpack(k)): unpack(v) for k, v in obj["$d"]}
    if "$failed" in obj:
        return _Failed(obj["$failed"])
    if "$overflow" in obj:
        return _Overflow()
    if "$datetime" in obj:
        return dt.datetime.fromisoformat(obj["$datetime"])
    if "$date" in obj:
        return dt.date.fromisoformat(obj["$date"])
    if "$time" in obj:
        return dt.time.fromisoformat(obj["$time"])
    if "$timedelta" in obj:
        return dt.timedelta(seconds=obj["$timedelta"])
    if "$decimal" in obj:
        return decimal.Decimal(obj["$decimal"])
    if "$bytes" in obj:
        return base64.b64decode(obj["$bytes"])
    raise ValueError(f"unknown tag in partial metrics: {sorted(obj)}")


def merge_states(ops: Sequence[Op], states: Iterable[dict]) -> dict:
    """Merge task partials in task order (so unexpected-value samples keep the data order)."""
    out: dict = {}
    by_key = {op.key: op for op in ops}
    for state in states:
        for key, value in state.items():
            op = by_key.get(key)
            if op is None:
                continue
            cur = out.get(key)
            if isinstance(cur, _Failed):
                continue
            out[key] = value if isinstance(value, _Failed) else _merge_one(op, cur, value)
    return out


def _column(batch, name: str):
    import pyarrow as pa

    col = batch.column(batch.schema.get_field_index(name)) if isinstance(name, str) else batch.column(name)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col


def _is_float(arr) -> bool:
    import pyarrow as pa

    return pa.types.is_floating(arr.type)


def _compute(op: Op, batch) -> Any:
    import numpy as np
    import pyarrow.compute as pc

    if op.kind == "rows":
        return batch.num_rows
    col = _column(batch, op.column)
    if op.kind == "nulls":
        return col.null_count
    valid = col.drop_null() if col.null_count else col
    if op.kind == "cond":
        if op.cond == "null":  # unexpected: every non-null value (nulls are the expected ones)
            return [len(valid), valid.slice(0, op.sample).to_pylist()]
        if _none_unexpected(op, valid):
            return [0, []]
        mask = _unexpected_mask(op, valid)
        n = int(pc.sum(mask).as_py() or 0)
        sample = valid.filter(mask).slice(0, op.sample).to_pylist() if n and op.sample else []
        return [n, sample]
    if op.kind == "moments":
        v = np.asarray(valid.to_numpy(zero_copy_only=False))
        if v.dtype.kind not in "biuf":
            raise TypeError(f"column {op.column!r} is not numeric ({col.type})")
        n = int(v.size)
        if n == 0:
            return [0, 0, 0.0, 0.0]
        total = int(v.sum(dtype=np.int64)) if v.dtype.kind in "biu" else float(v.sum(dtype=np.float64))
        f = v.astype(np.float64)
        mean = float(f.mean())
        return [n, total, mean, float(((f - mean) ** 2).sum())]
    if op.kind == "minmax":
        if _is_float(valid):
            nan = pc.is_nan(valid)
            has_nan = bool(pc.any(nan).as_py())
            finite = valid.filter(pc.invert(nan)) if has_nan else valid
        else:
            has_nan, finite = False, valid
        if len(finite) == 0:
            return [None, None, has_nan]
        mm = pc.min_max(finite)
        return [mm["min"].as_py(), mm["max"].as_py(), has_nan]
    if op.kind == "value_counts":
        counts = pc.value_counts(valid)
        values = counts.field("values").to_pylist()
        ns = counts.field("counts").to_pylist()
        return dict(zip(values, ns, strict=True))
    raise ValueError(f"unknown partial kind {op.kind!r}")


def _between_bounds(op: Op):
    """``between``'s (min_value, max_value), rejected as GX rejects them."""
    lo, hi = op.arg("min_value"), op.arg("max_value")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError("min_value cannot be greater than max_value")
    if lo is None and hi is None:
        raise ValueError("min_value and max_value cannot both be None")
    return lo, hi


def _none_unexpected(op: Op, valid) -> bool:
    """True when the batch's min and max alone show that no value breaks the condition (the usual
    case), so the per-value mask is not needed: a numeric ``between`` whose min and max lie within
    the bounds (a NaN makes numpy's min NaN, which fails every comparison: the mask decides), an
    integer ``in_set`` whose values' whole range is in the set. False means "look at every value".
    Compared as Python numbers, exactly (as Spark compares a float column with a double bound)."""
    import pyarrow as pa

    if len(valid) == 0 or not (pa.types.is_integer(valid.type) or pa.types.is_floating(valid.type)):
        return False
    if op.cond == "between":
        lo, hi = _between_bounds(op)
        if not all(b is None or (isinstance(b, int | float) and not isinstance(b, bool)) for b in (lo, hi)):
            return False
        v = valid.to_numpy(zero_copy_only=False)
        vmin, vmax = v.min().item(), v.max().item()
        if vmin != vmin or vmax != vmax:  # NaN
            return False
        if isinstance(vmin, float) or any(isinstance(b, float) for b in (lo, hi)):
            # Arrow (and Spark) compare an integer column with a float bound as float64; Arrow
            # refuses integers beyond 2**53 there (the mask path fails, GX decides on the data).
            if isinstance(vmin, int) and max(abs(vmin), abs(vmax)) > 2**53:
                return False
            vmin, vmax = float(vmin), float(vmax)
            lo, hi = (None if b is None else float(b) for b in (lo, hi))
        low_ok = lo is None or (vmin > lo if op.arg("strict_min") else vmin >= lo)
        high_ok = hi is None or (vmax < hi if op.arg("strict_max") else vmax <= hi)
        return bool(low_ok and high_ok)
    if op.cond == "in_set" and pa.types.is_integer(valid.type):
        values = op.arg("value_set")
        if not values or not all(type(x) is int for x in values):
            return False
        v = valid.to_numpy(zero_copy_only=False)
        vmin, vmax = int(v.min()), int(v.max())
        members = set(values)
        return vmax - vmin < len(members) and all(k in members for k in range(vmin, vmax + 1))
    return False


def _unexpected_mask(op: Op, valid):
    """True where a non-null value breaks the condition (GX on Spark semantics)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if op.cond == "between":
        lo, hi = _between_bounds(op)
        ok = None
        if lo is not None:
            ok = pc.greater(valid, lo) if op.arg("strict_min") else pc.greater_equal(valid, lo)
        if hi is not None:
            upper = pc.less(valid, hi) if op.arg("strict_max") else pc.less_equal(valid, hi)
            ok = upper if ok is None else pc.and_(ok, upper)
        if _is_float(valid):
            # Spark orders NaN above every number: it passes a lower bound and fails an upper one.
            ok = pc.if_else(pc.is_nan(valid), pa.scalar(hi is None), ok)
        return pc.invert(ok)
    if op.cond in ("in_set", "not_in_set"):
        values = op.arg("value_set")
        if values is None:
            if op.cond == "in_set":  # GX: vacuously true
                return pa.array([False] * len(valid))
            raise ValueError("value_set is required")
        member = pc.is_in(valid, value_set=_value_set(values, valid.type))
        return pc.invert(member) if op.cond == "in_set" else member
    if op.cond in ("match_regex", "not_match_regex"):
        if not (pa.types.is_string(valid.type) or pa.types.is_large_string(valid.type)):
            raise TypeError(f"regex checks need a string column, got {valid.type}")
        match = pc.match_substring_regex(valid, op.arg("regex"))
        return pc.invert(match) if op.cond == "match_regex" else match
    raise ValueError(f"unknown condition {op.cond!r}")


def _value_set(values: list, typ):
    import pyarrow as pa

    try:
        return pa.array(values).cast(typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.array(values, type=typ)


def _merge_one(op: Op, a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if op.kind in ("rows", "nulls"):
        return a + b
    if op.kind == "cond":
        sample = a[1] if len(a[1]) >= op.sample else (a[1] + b[1])[: op.sample]
        return [a[0] + b[0], sample]
    if op.kind == "moments":  # Chan et al.: exact merge of (n, sum, mean, M2)
        na, nb = a[0], b[0]
        if na == 0:
            return b
        if nb == 0:
            return a
        n = na + nb
        delta = b[2] - a[2]
        mean = a[2] + delta * nb / n
        return [n, a[1] + b[1], mean, a[3] + b[3] + delta * delta * na * nb / n]
    if op.kind == "minmax":
        lo = [x for x in (a[0], b[0]) if x is not None]
        hi = [x for x in (a[1], b[1]) if x is not None]
        return [min(lo) if lo else None, max(hi) if hi else None, a[2] or b[2]]
    if op.kind == "value_counts":
        if isinstance(a, _Overflow) or isinstance(b, _Overflow):
            return _Overflow()
        out = dict(a)
        for k, v in b.items():
            out[k] = out.get(k, 0) + v
        return _Overflow() if len(out) > MAX_VALUE_COUNTS else out
    raise ValueError(f"unknown partial kind {op.kind!r}")


@dataclass(frozen=True)
class _Overflow:
    pass


# --------------------------------------------------------------------------- driver side
@dataclass
class Route:
    """How one expectation is decided, and where its metrics come from."""

    index: int
    expectation: Any  # a GX expectation object
    path: str
    reason: str = ""
    needs: dict = field(default_factory=dict)  # metric configuration id -> (metric name, Op | column)

    @property
    def gx_type(self) -> str:
        return self.expectation.expectation_type

    @property
    def column(self) -> str | None:
        return (self.expectation.configuration.kwargs or {}).get("column")


@dataclass
class SideSchema:
    """What the pass sees on one side: column names (in table order) and their Arrow types."""

    columns: list[str]
    arrow_types: dict[str, Any]
    aggregation_columns: frozenset[str] = frozenset()  # columns of the staged output


def plan_routes(
    expectations: Sequence[Any],
    schema: SideSchema,
    *,
    result_format: str = "SUMMARY",
    execution_engine: Any = None,
) -> tuple[list[Op], list[Route]]:
    """Choose a path for every expectation; return (the ops the tasks compute, the routes)."""
    ops: dict[str, Op] = {}
    routes = []
    for i, exp in enumerate(expectations):
        route = _route(i, exp, schema, result_format, execution_engine)
        routes.append(route)
        for _, source in route.needs.values():
            if isinstance(source, Op):
                ops.setdefault(source.key, source)
            elif isinstance(source, tuple):  # (op, op) pairs, e.g. nulls and rows
                for o in source:
                    if isinstance(o, Op):
                        ops.setdefault(o.key, o)
    return list(ops.values()), routes


def _route(index: int, exp: Any, schema: SideSchema, result_format: str, engine: Any) -> Route:
    if result_format == "COMPLETE":
        return Route(index, exp, GX_SPARK, "result_format COMPLETE lists every unexpected row")
    try:
        deps = exp.get_validation_dependencies(
            execution_engine=engine, runtime_configuration={"result_format": result_format}
        )
    except Exception as exc:  # GX could not even describe its metrics: let GX on Spark report it
        return Route(index, exp, GX_SPARK, f"no metric list ({type(exc).__name__})")
    sample = int(deps.result_format.get("partial_unexpected_count", 20) or 0)
    if deps.result_format.get("result_format") == "BOOLEAN_ONLY":
        sample = 0
    needs: dict = {}
    path = SINGLE_PASS
    for mc in deps.get_metric_configurations():
        domain = dict(mc.metric_domain_kwargs or {})
        if domain.get("row_condition") is not None:
            return Route(index, exp, GX_SPARK, "row_condition")
        extra = set(domain) - {"batch_id", "table", "column", "row_condition", "condition_parser"}
        if extra:
            return Route(index, exp, GX_SPARK, f"domain {sorted(extra)}")
        column = domain.get("column")
        if column is not None and column not in schema.arrow_types:
            return Route(index, exp, GX_SPARK, f"column {column!r} not seen by the pass")
        value_kwargs = {k: v for k, v in dict(mc.metric_value_kwargs or {}).items() if k != "result_format"}
        name = mc.metric_name
        if name in DISTINCT_METRICS:
            if column not in schema.aggregation_columns:
                return Route(index, exp, GX_SPARK, f"column {column!r} not in the staged output")
            needs[mc.id] = (name, ("distinct", column))
            path = AGGREGATION
            continue
        source = _source(name, column, value_kwargs, sample, schema, engine)
        if source is None:
            return Route(index, exp, GX_SPARK, f"metric {name} has no single-pass form")
        needs[mc.id] = (name, source)
    return Route(index, exp, path, "", needs)


def _source(name: str, column, value_kwargs: dict, sample: int, schema: SideSchema, engine):
    """The op(s) a metric is computed from, or None when the pass cannot compute it exactly."""
    rows = Op("rows")
    if name == "table.row_count":
        return rows
    if name == "table.columns":
        return ("columns",)
    if name == "table.column_types":
        if engine is None:
            return None
        return ("column_types",)
    if column is None:
        return None
    nulls = Op("nulls", column)
    prefix, _, suffix = name.rpartition(".")
    if name.startswith("column_values.") and suffix in (
        "unexpected_count",
        "unexpected_values",
        "unexpected_index_list",
        "unexpected_index_query",
    ):
        cond = prefix.removeprefix("column_values.")
        if cond == "nonnull":
            return (nulls, suffix, sample)
        if cond not in MAP_CONDITIONS:
            return None
        args = tuple(sorted((k, _hashable(v)) for k, v in value_kwargs.items()))
        return (Op("cond", column, cond, args, sample), suffix)
    if name in ("column.mean", "column.sum", "column.standard_deviation"):
        return (Op("moments", column), name)
    if name in ("column.min", "column.max"):
        return (Op("minmax", column), name)
    if name == "column.non_null_proportion":
        return (nulls, rows)
    if name in ("column.distinct_values.not_in_set", "column.distinct_values.not_in_set.count"):
        if value_kwargs.get("limit") is not None:
            return None
        return (Op("value_counts", column), name, _hashable(value_kwargs.get("value_set")))
    return None


def unavailable(route: Route, merged: dict, computed: set[str] | None = None) -> str | None:
    """Why the merged partials cannot decide ``route`` (a task could not compute an op, or the
    tasks were never asked to: ``computed`` holds the keys of the ops they ran), or None."""
    for _, source in route.needs.values():
        items = source if isinstance(source, tuple) else (source,)
        for o in items:
            if isinstance(o, Op):
                if computed is not None and o.key not in computed:
                    what = f"{o.kind} of {o.column!r}" if o.column else o.kind
                    return f"the tasks did not compute {what} (a kept plan without it)"
                value = merged.get(o.key)
                if isinstance(value, _Failed):
                    return value.message
                if isinstance(value, _Overflow):
                    return f"more than {MAX_VALUE_COUNTS} distinct values in {o.column!r}"
    return None


def metrics_for(route: Route, merged: dict, schema: SideSchema, distinct: dict | None = None) -> dict:
    """The metrics dict GX's ``metrics_validate`` reads: metric configuration id -> value."""
    out = {}
    for mid, (name, source) in route.needs.items():
        out[mid] = _value(name, source, merged, schema, distinct or {})
    return out


def _value(name: str, source, merged: dict, schema: SideSchema, distinct: dict) -> Any:
    rows = merged.get(Op("rows").key, 0) or 0
    if isinstance(source, Op):  # table.row_count
        return merged.get(source.key, 0) or 0
    tag = source[0]
    if tag == "columns":
        return list(schema.columns)
    if tag == "column_types":
        return _spark_column_types(schema)
    if tag == "distinct":
        d = distinct[source[1]]
        if name == "column.distinct_values.count":
            return d["distinct"]
        if name == "column_values.unique.unexpected_count":
            return d["duplicate_rows"]
        if name == "column_values.unique.unexpected_values":
            return list(d["duplicate_sample"])
        return None
    op = tag
    if op.kind == "nulls" and isinstance(source[1], Op):  # non_null_proportion
        n_null = merged.get(op.key, 0) or 0
        return (rows - n_null) / rows if rows else None
    value = merged.get(op.key)
    if op.kind == "nulls":
        n_null = value or 0
        suffix = source[1]
        if suffix == "unexpected_count":
            return n_null
        if suffix == "unexpected_values":
            return [None] * min(n_null, source[2])
        return None
    if op.kind == "cond":
        count, sample = value if value is not None else (0, [])
        suffix = source[1]
        if suffix == "unexpected_count":
            return count
        if suffix == "unexpected_values":
            return list(sample)
        return None
    if op.kind == "moments":
        n, total, mean, m2 = value if value is not None else (0, 0, 0.0, 0.0)
        if n == 0:
            return None
        if name == "column.mean":
            return float(total) / n
        if name == "column.sum":
            return float(total)
        return math.sqrt(m2 / (n - 1)) if n > 1 else None  # Spark's stddev_samp
    if op.kind == "minmax":
        lo, hi, has_nan = value if value is not None else (None, None, False)
        if name == "column.max":
            return float("nan") if has_nan else hi
        return float("nan") if lo is None and has_nan else lo
    if op.kind == "value_counts":
        counts = value or {}
        allowed = set(source[2] or ())
        missing = [v for v in counts if v not in allowed]
        return len(missing) if name.endswith(".count") else missing
    raise ValueError(f"no value for metric {name}")


def _spark_column_types(schema: SideSchema) -> list[dict]:
    from pyspark.sql.pandas.types import from_arrow_type

    return [{"name": c, "type": from_arrow_type(schema.arrow_types[c])} for c in schema.columns]


def validate(route: Route, metrics: dict, *, result_format: str = "SUMMARY", execution_engine=None):
    """GX decides: the expectation's own ``metrics_validate`` on the merged metrics → an EVR."""
    return route.expectation.metrics_validate(
        metrics,
        runtime_configuration={"result_format": result_format},
        execution_engine=execution_engine,
    )


def suite_result(evrs: Sequence[Any], *, name: str, paths: dict) -> dict:
    """A GX-shaped suite result document (``results``, ``success``, ``statistics``) for the run."""
    results = [e.to_json_dict() if hasattr(e, "to_json_dict") else e for e in evrs]
    n = len(results)
    ok = sum(1 for r in results if r.get("success"))
    return {
        "success": ok == n,
        "results": results,
        "suite_name": name,
        "statistics": {
            "evaluated_expectations": n,
            "successful_expectations": ok,
            "unsuccessful_expectations": n - ok,
            "success_percent": 100.0 * ok / n if n else None,
        },
        "meta": {"batchinfer": {"paths": paths}},
    }
