"""Reference profiles: per-column bin counts that make drift checks one cheap pass.

A profile holds, per monitored column, bin edges (or categories) and *counts*. Counts are
additive: profiles of disjoint data binned on the same edges merge by adding counts and the
mergeable moments (count, sum, sum of squares, min, max). The current batch is profiled on
the reference's bins by :func:`current_counts` in a single Spark job; the drift statistics
(``batchinfer.checks.drift``) then run on the driver over the counts alone.

Numeric buckets, for edges ``e_0 < ... < e_n``: ``(-inf, e_0], (e_0, e_1], ..., (e_n, +inf)``,
so ``len(counts) == len(edges) + 1``; values outside the reference range land in the end
buckets. NaN counts as null. Categorical buckets: the reference's top-K categories, then one
"other" bucket; values are compared as strings.

Profiles are built in Spark (:func:`build_profile`) or without it (:func:`profile_batches` over
Arrow batches, what the embedded engine uses; :func:`profile_arrays` for in-memory arrays), from
the same edges, categories and counting code. pyspark is imported inside the Spark functions, so
importing this module is instant.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from batchinfer.errors import InputDataError

SCHEMA_VERSION = 1
PROFILE_KIND = "batchinfer.reference_profile"


@dataclass(frozen=True)
class NumericProfile:
    """Counts of one numeric column on quantile edges (coarse for PSI/JS, fine for KS/W1)."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    fine_edges: tuple[float, ...]
    fine_counts: tuple[int, ...]
    null_count: int
    count: int  # non-null values
    sum: float
    sumsq: float
    min: float | None
    max: float | None

    kind = "numeric"

    @property
    def rows(self) -> int:
        return self.count + self.null_count

    @property
    def mean(self) -> float | None:
        return self.sum / self.count if self.count else None

    @property
    def std(self) -> float | None:
        """Population standard deviation from the moments (sum of squares: fine for scores
        and standardized features; loses precision when |mean| >> std)."""
        if not self.count:
            return None
        mean = self.sum / self.count
        return math.sqrt(max(self.sumsq / self.count - mean * mean, 0.0))

    def psi_counts(self) -> np.ndarray:
        """The ``len(edges) - 1`` PSI buckets: the end buckets folded into their neighbours,
        so the first and last quantile bins are open-ended."""
        c = np.asarray(self.counts, dtype=np.int64)
        if c.size < 3:
            return c
        inner = c[1:-1].copy()
        inner[0] += c[0]
        inner[-1] += c[-1]
        return inner


@dataclass(frozen=True)
class CategoricalProfile:
    """Counts of one categorical column over the reference's top-K categories plus "other"."""

    categories: tuple[str, ...]
    counts: tuple[int, ...]  # len(categories) + 1; the last is "other"
    null_count: int
    unseen_count: int  # non-null values not in ``vocabulary`` (0 when it is unknown)
    vocabulary: tuple[str, ...] | None  # every reference category, None when too many

    kind = "categorical"

    @property
    def count(self) -> int:
        return int(sum(self.counts))

    @property
    def rows(self) -> int:
        return self.count + self.null_count


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-column counts of one dataset. Also the type of a current batch's counts."""

    columns: dict[str, ColumnProfile]
    row_count: int
    created_at: str | None = None

    @property
    def numeric_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if isinstance(c, NumericProfile)]

    @property
    def categorical_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if isinstance(c, CategoricalProfile)]

    def to_json(self, *, indent: int | None = None) -> str:
        """The versioned JSON document (``"schema_version": 1``)."""
        cols: dict[str, Any] = {}
        for name, c in self.columns.items():
            if isinstance(c, NumericProfile):
                cols[name] = {
                    "type": "numeric",
                    "edges": list(c.edges),
                    "counts": list(c.counts),
                    "fine_edges": list(c.fine_edges),
                    "fine_counts": list(c.fine_counts),
                    "null_count": c.null_count,
                    "count": c.count,
                    "sum": c.sum,
                    "sumsq": c.sumsq,
                    "min": c.min,
                    "max": c.max,
                }
            else:
                cols[name] = {
                    "type": "categorical",
                    "categories": list(c.categories),
                    "counts": list(c.counts),
                    "null_count": c.null_count,
                    "unseen_count": c.unseen_count,
                    "vocabulary": None if c.vocabulary is None else list(c.vocabulary),
                }
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": PROFILE_KIND,
            "created_at": self.created_at,
            "row_count": self.row_count,
            "columns": cols,
        }
        return json.dumps(doc, indent=indent, allow_nan=False)

    def save(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``."""
        Path(path).write_text(self.to_json(indent=1), encoding="utf-8")


def load_profile(path: str | Path) -> ReferenceProfile:
    """Read a profile JSON file; raises ``InputDataError`` when missing or malformed."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputDataError(
            f"cannot read reference profile {p}: {exc.strerror or exc}",
            hint="build one with batchinfer.checks.profile.build_profile and save it",
        ) from exc
    return from_json(text, source=str(p))


def from_json(text: str, *, source: str = "reference profile") -> ReferenceProfile:
    """Parse and validate a profile document; every problem is listed in one ``InputDataError``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputDataError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InputDataError(f"{source}: expected a JSON object, got {type(doc).__name__}")
    version = doc.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InputDataError(
            f"{source}: unsupported schema_version {version!r}; this batchinfer reads version "
            f"{SCHEMA_VERSION}",
            hint="rebuild the profile with this batchinfer version",
        )
    problems: list[str] = []
    row_count = doc.get("row_count")
    if not _is_count(row_count):
        problems.append(f"row_count: expected a non-negative integer, got {row_count!r}")
    raw_cols = doc.get("columns")
    if not isinstance(raw_cols, dict) or not raw_cols:
        problems.append("columns: expected a non-empty object of column name -> column profile")
        raw_cols = {}
    columns: dict[str, ColumnProfile] = {}
    for name, raw in raw_cols.items():
        col = _parse_column(name, raw, problems)
        if col is not None:
            columns[name] = col
    if problems:
        raise InputDataError(f"{source} is malformed: " + "; ".join(problems))
    return ReferenceProfile(columns=columns, row_count=row_count, created_at=doc.get("created_at"))


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _parse_column(name: str, raw: Any, problems: list[str]) -> ColumnProfile | None:
    where = f"columns.{name}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected an object")
        return None
    kind = raw.get("type")
    before = len(problems)

    def counts(key: str, length: int | None) -> list[int]:
        v = raw.get(key)
        if not isinstance(v, list) or not all(_is_count(x) for x in v):
            problems.append(f"{where}.{key}: expected a list of non-negative integers")
            return []
        if length is not None and len(v) != length:
            problems.append(f"{where}.{key}: expected {length} entries, got {len(v)}")
        return v

    def scalar(key: str, check, what: str, nullable: bool = False) -> Any:
        v = raw.get(key)
        if (v is None and nullable) or check(v):
            return v
        problems.append(f"{where}.{key}: expected {what}, got {v!r}")
        return None

    if kind == "numeric":
        edge_sets = {}
        for key in ("edges", "fine_edges"):
            e = raw.get(key)
            if not isinstance(e, list) or not e or not all(_is_number(x) for x in e):
                problems.append(f"{where}.{key}: expected a non-empty list of finite numbers")
                e = []
            elif any(np.diff(e) <= 0):
                problems.append(f"{where}.{key}: edges must be strictly increasing")
            edge_sets[key] = e
        c = counts("counts", len(edge_sets["edges"]) + 1 if edge_sets["edges"] else None)
        fc = counts("fine_counts", len(edge_sets["fine_edges"]) + 1 if edge_sets["fine_edges"] else None)
        nulls = scalar("null_count", _is_count, "a non-negative integer")
        n = scalar("count", _is_count, "a non-negative integer")
        if _is_count(n) and c and sum(c) != n:
            problems.append(f"{where}.counts: sum to {sum(c)} but count is {n}")
        if _is_count(n) and fc and sum(fc) != n:
            problems.append(f"{where}.fine_counts: sum to {sum(fc)} but count is {n}")
        moments = {k: scalar(k, _is_number, "a finite number") for k in ("sum", "sumsq")}
        bounds = {k: scalar(k, _is_number, "a finite number or null", nullable=True) for k in ("min", "max")}
        if len(problems) > before:
            return None
        return NumericProfile(
            edges=tuple(float(x) for x in edge_sets["edges"]),
            counts=tuple(c),
            fine_edges=tuple(float(x) for x in edge_sets["fine_edges"]),
            fine_counts=tuple(fc),
            null_count=nulls,
            count=n,
            sum=float(moments["sum"]),
            sumsq=float(moments["sumsq"]),
            min=None if bounds["min"] is None else float(bounds["min"]),
            max=None if bounds["max"] is None else float(bounds["max"]),
        )
    if kind == "categorical":
        cats = raw.get("categories")
        if not isinstance(cats, list) or not all(isinstance(x, str) for x in cats):
            problems.append(f"{where}.categories: expected a list of strings")
            cats = []
        elif len(set(cats)) != len(cats):
            problems.append(f"{where}.categories: duplicates")
        c = counts("counts", len(cats) + 1)
        nulls = scalar("null_count", _is_count, "a non-negative integer")
        unseen = scalar("unseen_count", _is_count, "a non-negative integer")
        vocab = raw.get("vocabulary")
        if vocab is not None and (not isinstance(vocab, list) or not all(isinstance(x, str) for x in vocab)):
            problems.append(f"{where}.vocabulary: expected a list of strings or null")
        if len(problems) > before:
            return None
        return CategoricalProfile(
            categories=tuple(cats),
            counts=tuple(c),
            null_count=nulls,
            unseen_count=unseen,
            vocabulary=None if vocab is None else tuple(vocab),
        )
    problems.append(f"{where}.type: expected 'numeric' or 'categorical', got {kind!r}")
    return None


def merge(a: ReferenceProfile, b: ReferenceProfile) -> ReferenceProfile:
    """The profile of the union of two disjoint datasets binned on the same edges/categories.

    Counts and the moments sum/sumsq add, min/max combine; vocabularies are united (unknown if
    either is unknown). Raises ``InputDataError`` when the columns or bins differ.
    """
    if set(a.columns) != set(b.columns):
        raise InputDataError(
            f"cannot merge profiles with different columns: {list(a.columns)} vs {list(b.columns)}",
            hint="build the second profile with edges_from=<the first>",
        )
    merged: dict[str, ColumnProfile] = {}
    for name, x in a.columns.items():
        y = b.columns[name]
        if type(x) is not type(y):
            raise InputDataError(f"cannot merge column {name!r}: {x.kind} vs {y.kind}")
        if isinstance(x, NumericProfile):
            if x.edges != y.edges or x.fine_edges != y.fine_edges:
                raise InputDataError(
                    f"cannot merge column {name!r}: the bin edges differ",
                    hint="build the second profile with edges_from=<the first>",
                )
            merged[name] = replace(
                x,
                counts=_add(x.counts, y.counts),
                fine_counts=_add(x.fine_counts, y.fine_counts),
                null_count=x.null_count + y.null_count,
                count=x.count + y.count,
                sum=x.sum + y.sum,
                sumsq=x.sumsq + y.sumsq,
                min=_combine(min, x.min, y.min),
                max=_combine(max, x.max, y.max),
            )
        else:
            if x.categories != y.categories:
                raise InputDataError(
                    f"cannot merge column {name!r}: the top categories differ",
                    hint="build the second profile with edges_from=<the first>",
                )
            vocab = None
            if x.vocabulary is not None and y.vocabulary is not None:
                vocab = tuple(sorted(set(x.vocabulary) | set(y.vocabulary)))
            merged[name] = replace(
                x,
                counts=_add(x.counts, y.counts),
                null_count=x.null_count + y.null_count,
                unseen_count=x.unseen_count + y.unseen_count,
                vocabulary=vocab,
            )
    return ReferenceProfile(columns=merged, row_count=a.row_count + b.row_count, created_at=_now())


def _add(x: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i + j) for i, j in zip(x, y, strict=True))


def _combine(fn, x: float | None, y: float | None) -> float | None:
    vals = [v for v in (x, y) if v is not None]
    return fn(vals) if vals else None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- counting
# One layout, shared by the Spark pass and the numpy path: a flat int64 vector (row count,
# then per column its buckets and null/unseen counts) and a float64 vector (per numeric
# column: sum, sumsq, min, max). Partitions reduce by adding, except min/max.


_LUT_CELLS = 16384
_LUT_SLACK = 1e-6  # cells: far above float64 rounding of (v - lo) / width, far below one cell
_LUTS: dict[bytes, tuple] = {}
_COARSE_MAPS: dict[tuple[bytes, bytes], Any] = {}  # (coarse, fine) edges -> _coarse_split
_STACKED: dict[tuple, Any] = {}  # a grid's edges -> its StackedNumeric layout (or None), per process
_STACKED_KEEP = 8


def bucket_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.bincount(np.searchsorted(edges, values, side="left"), minlength=edges.size + 1)``, faster."""
    return np.bincount(bucket_index(values, edges), minlength=edges.size + 1)


def bucket_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, values, side="left")`` (the number of edges below each value), faster.

    Most values fall in a cell of a uniform grid over [edges[0], edges[-1]] holding no edge (nor
    in its neighbours, so float rounding in the cell index cannot matter): their bucket is read
    from a table. The rest (cells around an edge, values at or above the last edge) take the
    exact binary search. Results are identical.
    """
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    lut = _lut(edges)
    if lut is None:
        return np.searchsorted(edges, values, side="left")
    lo, inv_width, table = lut
    t = values - lo
    t *= inv_width
    np.clip(t, -1.0, float(_LUT_CELLS), out=t)
    idx = t.astype(np.int32)  # truncates toward zero
    idx += 1
    buckets = table[idx]
    exact = buckets < 0
    if exact.any():
        buckets[exact] = np.searchsorted(edges, values[exact], side="left")
    return buckets


def coarse_index(values: np.ndarray, fine_index: np.ndarray, coarse: np.ndarray, fine: np.ndarray):
    """Coarse buckets from the fine ones: ``np.searchsorted(coarse, values, side="left")``, or None.

    A value in fine bucket j lies in (fine[j-1], fine[j]]; the coarse edges below it are those
    <= fine[j-1], plus the one coarse edge (if any) strictly inside that interval when the value
    is above it. None when some fine bucket holds two coarse edges (then search directly).
    """
    split = _coarse_split(coarse, fine)
    if split is None:
        return None
    base, inner = split
    out = base[fine_index]
    out += values > inner[fine_index]
    return out


def _coarse_split(coarse: np.ndarray, fine: np.ndarray):
    key = (coarse.tobytes(), fine.tobytes())
    if key in _COARSE_MAPS:
        return _COARSE_MAPS[key]
    out = None
    if fine.size:
        lower = np.concatenate([[-np.inf], fine])
        upper = np.concatenate([fine, [np.inf]])
        base = np.searchsorted(coarse, lower, side="right").astype(np.int64)
        inside = np.searchsorted(coarse, upper, side="left") - base  # coarse edges in (lower, upper)
        if (inside <= 1).all():
            inner = np.full(fine.size + 1, np.inf)
            has = inside == 1
            inner[has] = coarse[base[has]]
            out = (base, inner)
    _COARSE_MAPS[key] = out
    return out


_INT_CATEGORIES: dict[tuple, tuple] = {}  # (categories, integer type) -> _int_categories


def _int_categories(cats, typ):
    """(the categories that are integers of ``typ``, as an Arrow array; per array index the
    category's position, then ``len(cats)`` for every other value). A category matches an
    integer only when it is that integer's decimal string (what casting to string gives): "7"
    and "-7" do, "07", "+7", "7.0", "-0" and "1_0" never match any integer."""
    import re

    import pyarrow as pa

    key = (tuple(cats), str(typ))
    hit = _INT_CATEGORIES.get(key)
    if hit is not None:
        return hit
    bits = typ.bit_width
    lo, hi = (
        (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if pa.types.is_signed_integer(typ) else (0, 2**bits - 1)
    )
    values, positions = [], []
    for i, c in enumerate(cats):
        if isinstance(c, str) and re.fullmatch(r"0|-?[1-9][0-9]*", c):
            v = int(c)
            if lo <= v <= hi:
                values.append(v)
                positions.append(i)
    out = (pa.array(values, type=typ), np.asarray([*positions, len(cats)], dtype=np.int64))
    if len(_INT_CATEGORIES) > 64:
        _INT_CATEGORIES.clear()
    _INT_CATEGORIES[key] = out
    return out


#: Widest value range a dense integer table covers (:func:`_dense_int_table`).
DENSE_INT_SPAN = 4096
_DENSE_INT: dict[tuple, Any] = {}  # (categories, vocabulary, integer type) -> _dense_int_table


def _dense_int_table(cats, vocab, typ):
    """Counting integer labels without a hash lookup: ``(lo, span, slot_category, slot_known)``,
    or None when the categories and the vocabulary hold no integer of ``typ``, when their
    integers span :data:`DENSE_INT_SPAN` values or more, or for ``uint64``. A value v falls in slot ``clip(v, lo - 1, lo + span) - (lo - 1)``:
    slot 0 below the categories, ``span + 1`` above, the others one integer each;
    ``slot_category`` maps slots to category positions (``len(cats)`` for every other value),
    ``slot_known`` marks the vocabulary's integers (None without a vocabulary). The same
    matching as :func:`_int_categories`: an integer matches only its own decimal string."""
    import pyarrow as pa

    key = (tuple(cats), None if vocab is None else tuple(vocab), str(typ))
    if key in _DENSE_INT:
        return _DENSE_INT[key]
    values, positions = _int_categories(cats, typ)
    cat_ints = values.to_pylist()
    vocab_ints = _int_categories(vocab, typ)[0].to_pylist() if vocab is not None else []
    every = cat_ints + vocab_ints
    out = None
    if every and not pa.types.is_uint64(typ) and max(every) - min(every) < DENSE_INT_SPAN:
        lo, span = min(every), max(every) - min(every) + 1
        slot_category = np.full(span + 2, len(cats), dtype=np.int64)
        slot_category[np.asarray(cat_ints, dtype=np.int64) - lo + 1] = positions[:-1]
        slot_known = None
        if vocab is not None:
            slot_known = np.zeros(span + 2, dtype=bool)
            slot_known[np.asarray(vocab_ints, dtype=np.int64) - lo + 1] = True
        out = (lo, span, slot_category, slot_known)
    if len(_DENSE_INT) > 64:
        _DENSE_INT.clear()
    _DENSE_INT[key] = out
    return out


def _dense_int_counts(values: np.ndarray, table, k: int) -> tuple[np.ndarray, int | None]:
    """Per category (then "other") counts of null-free integer ``values``, and how many are in the
    vocabulary (None without one), through :func:`_dense_int_table`'s slots."""
    lo, span, slot_category, slot_known = table
    slots = np.clip(values.astype(np.int64, copy=False), lo - 1, lo + span)
    slots -= lo - 1
    per_slot = np.bincount(slots, minlength=span + 2)
    counted = np.bincount(slot_category, weights=per_slot, minlength=k).astype(np.int64)
    known = int(per_slot[slot_known].sum()) if slot_known is not None else None
    return counted, known


def _lut(edges: np.ndarray):
    key = edges.tobytes()
    hit = _LUTS.get(key)
    if hit is not None or key in _LUTS:
        return hit
    lut = None
    if edges.size >= 2 and np.isfinite(edges).all() and edges[-1] > edges[0] and edges.size < 2**15:
        lo, hi = float(edges[0]), float(edges[-1])
        width = (hi - lo) / _LUT_CELLS
        # Cell u (0 .. G-1, table index u + 1) holds the values whose t = (v - lo) / width truncates
        # to u. float64 rounding moves t by ~1e-11 cells at most, so a value of cell u lies in
        # [lo + (u - d) * width, lo + (u + 1 + d) * width] with d = 1e-6: the cell is pure (one
        # bucket for all its values) when no edge lies in that interval.
        u = np.arange(_LUT_CELLS, dtype=np.float64)
        lower = lo + (u - _LUT_SLACK) * width
        upper = lo + (u + 1 + _LUT_SLACK) * width
        first = np.searchsorted(edges, lower, side="left")  # edges below every value of the cell
        last = np.searchsorted(edges, upper, side="right")  # edges at or below the top of the cell
        cells = np.where(first == last, first, -1)
        table = np.empty(_LUT_CELLS + 2, dtype=np.int32)
        table[0] = 0  # t clipped to -1: the value is below edges[0], no edge is below it
        table[1 : _LUT_CELLS + 1] = cells
        table[_LUT_CELLS + 1] = -1  # at or above the last edge: exact
        # Truncation also maps t in (-1, 0), just below edges[0] (bucket 0), to cell 0.
        if table[1] != 0:
            table[1] = -1
        lut = (lo, 1.0 / width, table)
    _LUTS[key] = lut
    return lut


@dataclass(frozen=True)
class _Grid:
    """What the counting pass needs from a profile: names, edges, categories, vocabularies."""

    numeric: tuple[tuple[str, np.ndarray, np.ndarray], ...]
    categorical: tuple[tuple[str, tuple[str, ...], tuple[str, ...] | None], ...]

    @classmethod
    def of(cls, profile: ReferenceProfile) -> _Grid:
        num, cat = [], []
        for name, c in profile.columns.items():
            if isinstance(c, NumericProfile):
                num.append((name, np.asarray(c.edges), np.asarray(c.fine_edges)))
            else:
                cat.append((name, c.categories, c.vocabulary))
        return cls(tuple(num), tuple(cat))

    @property
    def int_size(self) -> int:
        n = 1 + sum(e.size + 1 + f.size + 1 + 1 for _, e, f in self.numeric)
        return n + sum(len(c) + 1 + 2 for _, c, _ in self.categorical)

    def empty(self) -> tuple[np.ndarray, np.ndarray]:
        floats = np.tile([0.0, 0.0, np.inf, -np.inf], len(self.numeric))
        return np.zeros(self.int_size, dtype=np.int64), floats

    @cached_property
    def _stacked(self):
        """The vectorized layout of the numeric columns (checks/stacked_counts.py), or None.

        Built once per process for each set of edges and kept (:data:`_STACKED`): every scoring
        task unpickles its own grid. Never pickled with the grid.
        """
        from batchinfer.checks.stacked_counts import StackedNumeric

        # The layout holds int-vector offsets, which the categorical columns' sizes also shift:
        # the key is every edge and the vector's size, not the numeric edges alone.
        key = (tuple((e.tobytes(), f.tobytes()) for _, e, f in self.numeric), self.int_size)
        if key not in _STACKED:
            positions, pos = [], 1
            for _, edges, fine in self.numeric:
                positions.append((pos, pos + edges.size + 1))
                pos += edges.size + 1 + fine.size + 1 + 1
            while len(_STACKED) >= _STACKED_KEEP:
                _STACKED.pop(next(iter(_STACKED)))
            _STACKED[key] = StackedNumeric.of(self.numeric, positions, self.int_size)
        return _STACKED[key]

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_stacked"}

    def count_batch(self, batch: Mapping[str, Any], ints: np.ndarray, floats: np.ndarray) -> None:
        """Add one batch (column name -> pyarrow array or numpy array) into the accumulators.

        NaN-free numeric columns are binned together (:mod:`batchinfer.checks.stacked_counts`);
        the rest column by column (:meth:`count_columns`), with the same counts.
        """
        import pyarrow as pa

        stacked = self._stacked if self.numeric else None
        first = batch[self.numeric[stacked.columns[0]][0]] if stacked is not None else None
        if stacked is None or len(first) == 0:
            self.count_columns(batch, ints, floats)
            return
        arrays = []
        for j in stacked.columns:
            col = batch[self.numeric[j][0]]
            arrays.append(
                col.to_numpy(zero_copy_only=False) if isinstance(col, (pa.Array, pa.ChunkedArray)) else col
            )
        added, moments, has_nan = stacked.count(arrays)
        ints += added
        done = np.asarray(stacked.columns)[~has_nan]
        if done.size:
            acc = floats.reshape(-1, 4)
            kept = moments[~has_nan]
            acc[done, :2] += kept[:, :2]
            acc[done, 2] = np.minimum(acc[done, 2], kept[:, 2])
            acc[done, 3] = np.maximum(acc[done, 3], kept[:, 3])
        skip = {self.numeric[j][0] for j in done}
        self.count_columns(batch, ints, floats, skip=skip, rows=len(first))

    def count_columns(
        self, batch: Mapping[str, Any], ints: np.ndarray, floats: np.ndarray, *, skip=frozenset(), rows=None
    ) -> None:
        """:meth:`count_batch` one column at a time; ``skip``: numeric columns already counted."""
        import pyarrow as pa
        import pyarrow.compute as pc

        pos = 1
        for j, (name, edges, fine) in enumerate(self.numeric):
            if name in skip:
                pos += edges.size + 1 + fine.size + 1 + 1
                continue
            col = batch[name]
            if isinstance(col, (pa.Array, pa.ChunkedArray)):
                col = col.to_numpy(zero_copy_only=False)
            v = np.asarray(col, dtype=np.float64)
            rows = v.size
            nan = np.isnan(v)
            valid = v[~nan] if nan.any() else v
            fine_index = bucket_index(valid, fine)
            fine_counts = np.bincount(fine_index, minlength=fine.size + 1)
            coarse_idx = coarse_index(valid, fine_index, edges, fine)  # no second search
            if coarse_idx is None:
                coarse_idx = bucket_index(valid, edges)
            ints[pos : pos + edges.size + 1] += np.bincount(coarse_idx, minlength=edges.size + 1)
            pos += edges.size + 1
            ints[pos : pos + fine.size + 1] += fine_counts
            pos += fine.size + 1
            ints[pos] += v.size - valid.size
            pos += 1
            if valid.size:
                with np.errstate(invalid="ignore", over="ignore"):  # +inf and -inf: a NaN sum
                    floats[4 * j : 4 * j + 4] += [valid.sum(), np.dot(valid, valid), 0.0, 0.0]
                floats[4 * j + 2] = min(floats[4 * j + 2], valid.min())
                floats[4 * j + 3] = max(floats[4 * j + 3], valid.max())
        for name, cats, vocab in self.categorical:
            col = batch[name]
            arr = col if isinstance(col, (pa.Array, pa.ChunkedArray)) else pa.array(col, from_pandas=True)
            rows = len(arr)
            k = len(cats) + 1
            nulls = arr.null_count
            dense = (
                _dense_int_table(cats, vocab, arr.type)
                if pa.types.is_integer(arr.type) and not nulls
                else None
            )
            known = None  # values in the vocabulary, when the dense table counted them
            if dense is not None:
                # Null-free integer labels in a narrow range (class labels): one bincount over
                # their slots, no hash lookup; the same counts as the index_in paths below.
                counted, known = _dense_int_counts(arr.to_numpy(), dense, k)
            else:
                if pa.types.is_integer(arr.type):
                    # Integer labels: match them as integers, not cast to strings (the cast was
                    # most of a prediction grid's cost); the same counts, since a category only
                    # ever matches the integer whose decimal string it is.
                    cat_set, cat_pos = _int_categories(cats, arr.type)
                    hit = pc.index_in(arr, value_set=cat_set)
                    idx = cat_pos[pc.fill_null(hit, len(cat_pos) - 1).to_numpy(zero_copy_only=False)]
                    if nulls:
                        idx[np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)] = -1
                else:
                    arr = pc.cast(arr, pa.string())
                    hit = pc.index_in(arr, value_set=pa.array(cats, type=pa.string()))
                    idx = pc.if_else(pc.is_null(arr), -1, pc.fill_null(hit, k - 1)).to_numpy(
                        zero_copy_only=False
                    )
                counted = np.bincount(idx[idx >= 0], minlength=k)
            ints[pos : pos + k] += counted
            ints[pos + k] += nulls
            if vocab is not None and len(vocab) == len(cats) and set(vocab) == set(cats):
                ints[pos + k + 1] += counted[k - 1]  # the vocabulary is the categories: unseen = other
            elif vocab is not None:
                if known is None:
                    known_set = (
                        _int_categories(vocab, arr.type)[0]
                        if pa.types.is_integer(arr.type)
                        else pa.array(vocab, type=pa.string())
                    )
                    known = pc.sum(pc.is_in(arr, value_set=known_set)).as_py() or 0
                ints[pos + k + 1] += len(arr) - nulls - known
            pos += k + 2
        ints[0] += rows or 0

    def to_profile(self, ints: np.ndarray, floats: np.ndarray) -> ReferenceProfile:
        cols: dict[str, ColumnProfile] = {}
        pos = 1
        for j, (name, edges, fine) in enumerate(self.numeric):
            c = ints[pos : pos + edges.size + 1]
            pos += edges.size + 1
            fc = ints[pos : pos + fine.size + 1]
            pos += fine.size + 1
            n = int(c.sum())
            s, ss, lo, hi = floats[4 * j : 4 * j + 4]
            cols[name] = NumericProfile(
                edges=tuple(float(x) for x in edges),
                counts=tuple(int(x) for x in c),
                fine_edges=tuple(float(x) for x in fine),
                fine_counts=tuple(int(x) for x in fc),
                null_count=int(ints[pos]),
                count=n,
                sum=float(s),
                sumsq=float(ss),
                min=float(lo) if n else None,
                max=float(hi) if n else None,
            )
            pos += 1
        for name, cats, vocab in self.categorical:
            k = len(cats) + 1
            cols[name] = CategoricalProfile(
                categories=tuple(cats),
                counts=tuple(int(x) for x in ints[pos : pos + k]),
                null_count=int(ints[pos + k]),
                unseen_count=int(ints[pos + k + 1]),
                vocabulary=vocab,
            )
            pos += k + 2
        return ReferenceProfile(columns=cols, row_count=int(ints[0]), created_at=_now())

    def reduce(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        ints, floats = self.empty()
        for i, f in parts:
            ints += i
            f4, acc = np.asarray(f).reshape(-1, 4), floats.reshape(-1, 4)
            acc[:, :2] += f4[:, :2]
            acc[:, 2] = np.minimum(acc[:, 2], f4[:, 2])
            acc[:, 3] = np.maximum(acc[:, 3], f4[:, 3])
        return ints, floats


def _skeleton(
    numeric: Mapping[str, tuple[np.ndarray, np.ndarray]],
    categorical: Mapping[str, tuple[tuple[str, ...], tuple[str, ...] | None]],
) -> ReferenceProfile:
    """A zero-count profile carrying only the bins, to count against."""
    cols: dict[str, ColumnProfile] = {}
    for name, (e, f) in numeric.items():
        cols[name] = NumericProfile(
            tuple(e), (0,) * (len(e) + 1), tuple(f), (0,) * (len(f) + 1), 0, 0, 0.0, 0.0, None, None
        )
    for name, (cats, vocab) in categorical.items():
        cols[name] = CategoricalProfile(tuple(cats), (0,) * (len(cats) + 1), 0, 0, vocab)
    return ReferenceProfile(columns=cols, row_count=0)


#: Extra tail quantiles in the fine grid: without them the outermost fine buckets span
#: (q_0.01, max], and W1 (which spreads a bucket's mass uniformly) errs by ~5% of a std.
FINE_TAIL_PROBS = (1e-4, 1e-3, 3e-3, 1 - 3e-3, 1 - 1e-3, 1 - 1e-4)


def _probs(bins: int, *, fine: bool) -> list[float]:
    grid = set(np.linspace(0.0, 1.0, bins + 1).tolist())
    return sorted(grid | set(FINE_TAIL_PROBS) if fine else grid)


def _edges_at(quantile_by_prob: dict[float, float], probs: list[float]) -> np.ndarray:
    return np.unique([quantile_by_prob[p] for p in probs])


def _data_vocabulary(categorical: Mapping[str, Any], top_k: int, max_vocabulary: int) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for name, v in categorical.items():
        arr = pc.cast(pa.array(v, from_pandas=True), pa.string())
        vc = pc.value_counts(arr.drop_null())
        values, counts = vc.field("values").to_pylist(), vc.field("counts").to_pylist()
        out[name] = _top_categories(values, counts, top_k, max_vocabulary)
    return out


def _top_categories(
    values: list[str], counts: list[int], top_k: int, max_vocabulary: int
) -> tuple[tuple[str, ...], tuple[str, ...] | None]:
    order = sorted(range(len(values)), key=lambda i: (-counts[i], values[i]))
    top = tuple(values[i] for i in order[:top_k])
    vocab = tuple(sorted(values)) if len(values) <= max_vocabulary else None
    return top, vocab


def _check_params(bins: int, fine_bins: int, top_k: int) -> None:
    for name, v in (("bins", bins), ("fine_bins", fine_bins), ("top_k", top_k)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def quantile_edges(values, bins: int, fine_bins: int) -> tuple:
    """(coarse, fine) edges of one numeric column: exact quantiles (numpy's linear interpolation)
    of its non-NaN values at the :func:`_probs` grids, duplicates dropped; ``([0.0], [0.0])``
    when every value is null."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not v.size:
        return ([0.0], [0.0])
    return tuple(
        np.unique(np.quantile(v, _probs(k, fine=fine))) for k, fine in ((bins, False), (fine_bins, True))
    )


def profile_arrays(
    numeric: Mapping[str, np.ndarray] | None = None,
    categorical: Mapping[str, Any] | None = None,
    *,
    bins: int = 10,
    fine_bins: int = 100,
    top_k: int = 20,
    max_vocabulary: int = 1000,
    edges_from: ReferenceProfile | None = None,
) -> ReferenceProfile:
    """:func:`build_profile` for in-memory arrays (numpy, no Spark), e.g. for small data and tests.

    With ``edges_from`` the edges and categories are those of that profile (the vocabulary
    is still this data's), which makes the result comparable with it and mergeable into it.
    """
    _check_params(bins, fine_bins, top_k)
    numeric, categorical = dict(numeric or {}), dict(categorical or {})
    lengths = {name: len(v) for name, v in {**numeric, **categorical}.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            "columns must all have the same length: " + ", ".join(f"{n} has {k}" for n, k in lengths.items())
        )
    cat_bins = _data_vocabulary(categorical, top_k, max_vocabulary)
    if edges_from is not None:
        base = _select(edges_from, list(numeric) + list(categorical))
        num_bins = {n: (base.columns[n].edges, base.columns[n].fine_edges) for n in numeric}
        cat_bins = {n: (base.columns[n].categories, vocab) for n, (_, vocab) in cat_bins.items()}
    else:
        num_bins = {name: quantile_edges(v, bins, fine_bins) for name, v in numeric.items()}
    grid = _Grid.of(_skeleton(num_bins, cat_bins))
    ints, floats = grid.empty()
    grid.count_batch({**numeric, **categorical}, ints, floats)
    return grid.to_profile(ints, floats)


def count_arrays(columns: Mapping[str, Any], profile: ReferenceProfile) -> ReferenceProfile:
    """:func:`current_counts` for in-memory arrays: count them on the profile's bins.

    ``columns`` maps every profiled column name to a numpy array, list or pyarrow array;
    ``unseen_count`` counts values outside the profile's vocabulary.
    """
    missing = [n for n in profile.columns if n not in columns]
    if missing:
        raise InputDataError(f"profiled columns {missing} are missing from the data")
    grid = _Grid.of(profile)
    ints, floats = grid.empty()
    grid.count_batch({n: columns[n] for n in profile.columns}, ints, floats)
    return grid.to_profile(ints, floats)


#: Rows a streamed profile (:func:`profile_batches`) keeps for its quantile edges. Inputs with at
#: most this many rows get exact edges from every row; larger ones a seeded Bernoulli sample of
#: about this many rows. By the Dvoretzky-Kiefer-Wolfowitz inequality a sample of n rows puts
#: every edge within a rank error eps of the exact quantile with probability >= 1 - 2 exp(-2 n
#: eps^2): for 1,000,000 rows, eps = 0.25 % with probability > 99.999 % (Spark's
#: ``approxQuantile`` guarantees its ``relative_error``, 0.1 % by default). Counts, nulls, moments
#: and categories always cover every row.
EDGE_SAMPLE_ROWS = 1_000_000


def profile_batches(
    batches: Iterable[Any],
    numeric_columns: list[str],
    categorical_columns: list[str] | None = None,
    *,
    rows: int,
    bins: int = 10,
    fine_bins: int = 100,
    top_k: int = 20,
    max_vocabulary: int = 1000,
    sample_rows: int = EDGE_SAMPLE_ROWS,
    seed: int = 0,
    spill_dir: str | Path | None = None,
) -> ReferenceProfile:
    """:func:`build_profile` without Spark, over a stream of Arrow record batches (or tables).

    ``rows`` is how many rows the stream holds (a plan knows it from the Parquet footers). Two
    passes, bounded memory, as Spark's ``approxQuantile`` + counting pass:

    1. every batch: exact category counts (memory grows with the number of distinct values, as
       in Spark's ``groupBy``), and the rows kept for the edges (:data:`EDGE_SAMPLE_ROWS`);
       with more than ``sample_rows`` rows, the monitored columns also go to a temporary Arrow
       file (under ``spill_dir`` or the system temp directory, deleted afterwards);
    2. edges from the kept rows (:func:`quantile_edges`), top-K categories from the exact counts,
       then every row is counted on them (the same counting code as :func:`count_arrays`).

    Up to ``sample_rows`` rows this equals :func:`profile_arrays` of the concatenated columns.
    """
    import tempfile

    import pyarrow as pa
    import pyarrow.compute as pc

    _check_params(bins, fine_bins, top_k)
    numeric_columns, categorical_columns = list(numeric_columns), list(categorical_columns or [])
    if not numeric_columns and not categorical_columns:
        raise ValueError("profile_batches needs at least one numeric or categorical column")
    both = set(numeric_columns) & set(categorical_columns)
    if both:
        raise InputDataError(f"columns {sorted(both)} are listed as both numeric and categorical")
    names = numeric_columns + categorical_columns
    fraction = 1.0 if rows <= sample_rows else sample_rows / rows
    rng = np.random.default_rng(seed)
    kept: list[Any] = []  # every row (fraction 1) or the sample
    freq: dict[str, dict[str, int]] = {n: {} for n in categorical_columns}
    with tempfile.TemporaryDirectory(prefix="batchinfer-profile-", dir=spill_dir) as tmp:
        spill = schema = None
        for batch in batches:
            if schema is None:
                schema = _check_arrow_columns(batch.schema, numeric_columns, categorical_columns)
            batch = batch.select(names)
            for name in categorical_columns:
                vc = pc.value_counts(pc.cast(batch.column(name), pa.string()).drop_null())
                counts = freq[name]
                for v, c in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True):
                    counts[v] = counts.get(v, 0) + c
            if fraction >= 1.0:
                kept.append(batch)
                continue
            if spill is None:
                spill = pa.ipc.new_file(str(Path(tmp) / "monitored.arrow"), batch.schema)
            spill.write(batch)
            keep = rng.random(batch.num_rows) < fraction
            if keep.any():
                kept.append(batch.filter(pa.array(keep)))
        if spill is not None:
            spill.close()
        num_bins = {}
        for name in numeric_columns:
            values = [_as_float64(b.column(name)) for b in kept]
            num_bins[name] = quantile_edges(
                np.concatenate(values) if values else np.zeros(0), bins, fine_bins
            )
        cat_bins = {}
        for name in categorical_columns:
            values, counts = list(freq[name]), list(freq[name].values())
            cat_bins[name] = _top_categories(values, counts, top_k, max_vocabulary)
        grid = _Grid.of(_skeleton(num_bins, cat_bins))
        ints, floats = grid.empty()
        if spill is None:
            for b in kept:
                grid.count_batch(_monitored(b, numeric_columns, categorical_columns), ints, floats)
        else:
            kept.clear()
            with pa.OSFile(str(Path(tmp) / "monitored.arrow")) as source:  # read, not mapped: RSS stays small
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    b = reader.get_batch(i)
                    grid.count_batch(_monitored(b, numeric_columns, categorical_columns), ints, floats)
        return grid.to_profile(ints, floats)  # numeric columns first, in the caller's order


def _as_float64(arr) -> np.ndarray:
    """A numeric Arrow column as float64 numpy, nulls as NaN (NaN counts as null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


def _monitored(batch, numeric_columns: list[str], categorical_columns: list[str]) -> dict:
    out: dict[str, Any] = {n: _as_float64(batch.column(n)) for n in numeric_columns}
    out.update({n: batch.column(n) for n in categorical_columns})
    return out


def _check_arrow_columns(schema, numeric: list[str], categorical: list[str]):
    """:func:`_check_columns` for an Arrow schema: every column there, numeric ones numeric."""
    import pyarrow as pa

    missing = [c for c in numeric + categorical if schema.get_field_index(c) < 0]
    if missing:
        raise InputDataError(
            f"monitored columns {missing} are not in the data (it has {sorted(schema.names)})",
            hint="check the drift column names for typos",
        )
    is_num = (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal, pa.types.is_boolean)
    not_numeric = [c for c in numeric if not any(f(schema.field(c).type) for f in is_num)]
    if not_numeric:
        raise InputDataError(
            "numeric drift columns must have a numeric type: "
            + ", ".join(f"{c} is {schema.field(c).type}" for c in not_numeric),
            hint="profile them as categorical columns instead",
        )
    return schema


def _select(profile: ReferenceProfile, names: list[str]) -> ReferenceProfile:
    missing = [n for n in names if n not in profile.columns]
    if missing:
        raise InputDataError(
            f"columns {missing} are not in the reference profile (it has {list(profile.columns)})"
        )
    return ReferenceProfile(columns={n: profile.columns[n] for n in names}, row_count=profile.row_count)


# --------------------------------------------------------------------------- Spark


def _check_columns(df, numeric: list[str], categorical: list[str]) -> None:
    from pyspark.sql.types import BooleanType, NumericType

    fields = {f.name: f.dataType for f in df.schema.fields}
    missing = [c for c in numeric + categorical if c not in fields]
    if missing:
        raise InputDataError(
            f"monitored columns {missing} are not in the data (it has {sorted(fields)})",
            hint="check the drift column names for typos",
        )
    not_numeric = [c for c in numeric if not isinstance(fields[c], (NumericType, BooleanType))]
    if not_numeric:
        raise InputDataError(
            "numeric drift columns must have a numeric type: "
            + ", ".join(f"{c} is {fields[c].simpleString()}" for c in not_numeric),
            hint="profile them as categorical columns instead",
        )
    both = set(numeric) & set(categorical)
    if both:
        raise InputDataError(f"columns {sorted(both)} are listed as both numeric and categorical")


def current_counts(df, profile: ReferenceProfile) -> ReferenceProfile:
    """Count ``df`` on the reference's bins, for every profiled column, in ONE Spark job.

    Each partition bins its Arrow batches with ``np.searchsorted`` + ``np.bincount`` (and
    Arrow's ``index_in`` for categories) and yields a single row of count vectors; the driver
    collects one small row per partition and adds them. No data rows reach the driver.
    Returns a profile of ``df`` on the reference's edges/categories (``unseen_count`` counts
    values outside the reference vocabulary), ready for the drift statistics or for merging.
    """
    from pyspark.sql import functions as F

    grid = _Grid.of(profile)
    _check_columns(df, [n for n, _, _ in grid.numeric], [n for n, _, _ in grid.categorical])
    exprs = [F.col(n).cast("double").alias(n) for n, _, _ in grid.numeric]
    exprs += [F.col(n).cast("string").alias(n) for n, _, _ in grid.categorical]

    def count_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        ints, floats = grid.empty()
        for b in batches:
            grid.count_batch({name: b.column(name) for name in b.schema.names}, ints, floats)
        yield pa.RecordBatch.from_pydict(
            {"ints": [ints.tolist()], "floats": [floats.tolist()]},
            schema=pa.schema([("ints", pa.list_(pa.int64())), ("floats", pa.list_(pa.float64()))]),
        )

    rows = df.select(*exprs).mapInArrow(count_partition, "ints array<bigint>, floats array<double>").collect()
    parts = [(np.asarray(r["ints"], dtype=np.int64), np.asarray(r["floats"], dtype=np.float64)) for r in rows]
    return grid.to_profile(*grid.reduce(parts))


def build_profile(
    df,
    numeric_columns: list[str],
    categorical_columns: list[str] | None = None,
    *,
    bins: int = 10,
    fine_bins: int = 100,
    top_k: int = 20,
    max_vocabulary: int = 1000,
    relative_error: float = 1e-3,
    edges_from: ReferenceProfile | None = None,
) -> ReferenceProfile:
    """Profile a Spark DataFrame: quantile edges and top-K categories, then one counting pass.

    Numeric edges are approximate quantiles (``approxQuantile``, one job for all columns,
    ``relative_error`` in rank) at ``bins`` and ``fine_bins`` equal-probability steps, with
    duplicate edges dropped (the fine grid also gets the tail quantiles
    :data:`FINE_TAIL_PROBS`); categories are the ``top_k`` most frequent (ties by value) and
    the vocabulary is every distinct value when there are at most ``max_vocabulary``.
    With ``edges_from`` the edges and categories come from that profile (the vocabulary is
    still this data's), so the result merges with it: ``merge(p_a, build_profile(df_b, ...,
    edges_from=p_a))`` is the profile of both.

    >>> ref = build_profile(df, ["age", "income"], ["country"])      # doctest: +SKIP
    >>> ref.save("reference_profile.json")                           # doctest: +SKIP
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    _check_params(bins, fine_bins, top_k)
    numeric_columns, categorical_columns = list(numeric_columns), list(categorical_columns or [])
    if not numeric_columns and not categorical_columns:
        raise ValueError("build_profile needs at least one numeric or categorical column")
    _check_columns(df, numeric_columns, categorical_columns)

    if edges_from is not None:
        base = _select(edges_from, numeric_columns + categorical_columns)
        num_bins = {n: (c.edges, c.fine_edges) for n, c in base.columns.items() if n in numeric_columns}
        top = {n: c.categories for n, c in base.columns.items() if n in categorical_columns}
    else:
        num_bins, top = {}, {}
        if numeric_columns:
            coarse, fine = _probs(bins, fine=False), _probs(fine_bins, fine=True)
            probs = sorted(set(coarse) | set(fine))
            clean = df.select(
                *[
                    F.when(F.isnan(F.col(c).cast("double")), None).otherwise(F.col(c).cast("double")).alias(c)
                    for c in numeric_columns
                ]
            )
            quantiles = clean.approxQuantile(numeric_columns, probs, relative_error)
            for name, q in zip(numeric_columns, quantiles, strict=True):
                if not q:  # all null
                    num_bins[name] = ([0.0], [0.0])
                    continue
                by_p = dict(zip(probs, q, strict=True))
                num_bins[name] = (_edges_at(by_p, coarse), _edges_at(by_p, fine))

    cat_bins: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {}
    if categorical_columns:
        pairs = F.explode(
            F.array(
                *[
                    F.struct(F.lit(c).alias("c"), F.col(c).cast("string").alias("v"))
                    for c in categorical_columns
                ]
            )
        ).alias("p")
        freq = df.select(pairs).select("p.c", "p.v").where(F.col("v").isNotNull()).groupBy("c", "v").count()
        w = Window.partitionBy("c").orderBy(F.col("count").desc(), F.col("v"))
        keep = max(top_k, max_vocabulary + 1)
        rows = freq.withColumn("rank", F.row_number().over(w)).where(F.col("rank") <= keep).collect()
        for name in categorical_columns:
            vals = [(r["v"], r["count"]) for r in rows if r["c"] == name]
            values, counts = [v for v, _ in vals], [n for _, n in vals]
            cats, vocab = _top_categories(values, counts, top_k, max_vocabulary)
            cat_bins[name] = (top[name] if name in top else cats, vocab)

    skeleton = _skeleton(num_bins, cat_bins)
    # keep the caller's column order
    ordered = {n: skeleton.columns[n] for n in numeric_columns + categorical_columns}
    return current_counts(df, ReferenceProfile(columns=ordered, row_count=0))
