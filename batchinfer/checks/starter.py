"""A starter suite: expectations proposed from the data itself, to review and edit.

:func:`propose_expectations` looks at a Spark DataFrame in one aggregation (plus one small
second aggregation for the category sets of low-cardinality string columns) and proposes,
per column: presence, Spark type, null rate, the observed numeric range widened by a
margin, and the category set. :func:`write_suite_yaml` writes them in the compact YAML
format of ``checks.input``::

    specs = propose_expectations(spark.read.parquet("data/events"), margin=0.1)
    write_suite_yaml(specs, "conf/suites/events.yaml")
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from batchinfer.errors import ConfigError, InputDataError

_NUMERIC = ("ByteType", "ShortType", "IntegerType", "LongType", "FloatType", "DoubleType", "DecimalType")
_INTEGRAL = ("ByteType", "ShortType", "IntegerType", "LongType")


def propose_expectations(df: Any, *, margin: float = 0.1, max_categories: int = 50) -> list[dict]:
    """Propose compact expectation specs (dicts) that ``df`` satisfies, with some slack.

    - ``row_count_between`` with ``min: 1`` (the input must not be empty);
    - per column ``column_exists`` and ``type`` (the Spark type name);
    - ``not_null``, with ``mostly`` when the column has nulls (the allowed null share is
      the observed one widened by ``margin``, relatively);
    - ``between`` for numeric columns: the observed finite min/max widened by ``margin``
      times the range (never below 0 when the data has no negatives), with ``mostly``
      when a float column holds NaN or infinities (GX counts those as out of range);
    - ``in_set`` for string columns with at most ``max_categories`` distinct values.

    Raises:
        ValueError: ``margin`` < 0 or ``max_categories`` < 1.
        InputDataError: ``df`` has no rows or no columns.

    >>> propose_expectations(spark.range(3))  # doctest: +SKIP
    [{'expect': 'row_count_between', 'min': 1}, {'expect': 'column_exists', 'column': 'id'},
     {'expect': 'type', 'column': 'id', 'dtype': 'LongType'}, {'expect': 'not_null', 'column': 'id'},
     {'expect': 'between', 'column': 'id', 'min': 0, 'max': 3}]
    """
    from pyspark.sql import functions as F

    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    if not (isinstance(max_categories, int) and max_categories >= 1):
        raise ValueError(f"max_categories must be a positive integer, got {max_categories!r}")
    fields = list(df.schema.fields)
    if not fields:
        raise InputDataError("cannot propose expectations for a DataFrame without columns")

    kinds = {f.name: type(f.dataType).__name__ for f in fields}
    aggs = [F.count(F.lit(1)).alias("rows")]
    for i, f in enumerate(fields):
        col = df[f.name]
        kind = kinds[f.name]
        aggs.append(F.count(col).alias(f"nn{i}"))
        if kind in _NUMERIC:
            finite = col
            if kind in ("FloatType", "DoubleType"):  # NaN sorts above everything in Spark
                bad = F.isnan(col) | col.isin(float("inf"), float("-inf"))
                finite = F.when(~bad, col)
                aggs.append(F.count(F.when(bad, 1)).alias(f"nf{i}"))
            aggs += [F.min(finite).alias(f"lo{i}"), F.max(finite).alias(f"hi{i}")]
        elif kind == "StringType":
            aggs.append(F.approx_count_distinct(col).alias(f"nd{i}"))
    stats = df.agg(*aggs).first().asDict()
    n_rows = stats["rows"]
    if n_rows == 0:
        raise InputDataError("cannot propose expectations from an empty DataFrame (0 rows)")

    # approx_count_distinct errs by a few %, so fetch sets a little above the cut and
    # check the exact size.
    small = [
        (i, f.name)
        for i, f in enumerate(fields)
        if kinds[f.name] == "StringType" and 0 < stats[f"nd{i}"] <= int(max_categories * 1.1) + 1
    ]
    categories: dict[str, list] = {}
    if small:
        row = df.agg(*[F.collect_set(df[name]).alias(f"s{i}") for i, name in small]).first()
        for i, name in small:
            values = sorted(row[f"s{i}"])
            if len(values) <= max_categories:
                categories[name] = values

    specs: list[dict] = [{"expect": "row_count_between", "min": 1}]
    for i, f in enumerate(fields):
        name, kind = f.name, kinds[f.name]
        specs.append({"expect": "column_exists", "column": name})
        specs.append({"expect": "type", "column": name, "dtype": kind})
        n_null = n_rows - stats[f"nn{i}"]
        if n_null == 0:
            specs.append({"expect": "not_null", "column": name})
        elif n_null < n_rows and _mostly(n_null, n_rows, margin) > 0:
            specs.append({"expect": "not_null", "column": name, "mostly": _mostly(n_null, n_rows, margin)})
        if kind in _NUMERIC and stats.get(f"lo{i}") is not None:
            lo, hi = _widen(float(stats[f"lo{i}"]), float(stats[f"hi{i}"]), margin, kind in _INTEGRAL)
            between = {"expect": "between", "column": name, "min": lo, "max": hi}
            # NaN/inf fail ``between`` in GX: tolerate the observed share (of non-null values).
            mostly = _mostly(stats.get(f"nf{i}") or 0, stats[f"nn{i}"], margin)
            if mostly < 1:
                between["mostly"] = mostly
            specs.append(between)
        if name in categories:
            specs.append({"expect": "in_set", "column": name, "values": categories[name]})
    return specs


def _mostly(n_bad: int, n: int, margin: float) -> float:
    """The share of good values to require: the observed bad share widened by ``margin``."""
    if n_bad == 0 or n == 0:
        return 1.0
    allowed_bad = min(1.0, (n_bad / n) * (1 + margin))
    return math.floor((1 - allowed_bad) * 10_000) / 10_000


def _widen(lo: float, hi: float, margin: float, integral: bool) -> tuple[float | int, float | int]:
    span = hi - lo
    pad = margin * span if span > 0 else margin * max(abs(lo), 1.0)
    new_lo, new_hi = lo - pad, hi + pad
    if lo >= 0 > new_lo:  # no negatives seen: do not invite them
        new_lo = 0.0
    if integral:
        return math.floor(new_lo), math.ceil(new_hi)
    # Round outwards to ~5 significant digits of the range, so the YAML stays readable.
    scale = max(abs(new_lo), abs(new_hi), new_hi - new_lo)
    q = 10.0 ** (math.floor(math.log10(scale)) - 4) if scale > 0 else 1.0
    return round(math.floor(new_lo / q) * q, 12), round(math.ceil(new_hi / q) * q, 12)


def write_suite_yaml(specs: list[dict], path: str | Path, *, comment: str | None = None) -> Path:
    """Write ``specs`` as ``input:`` in the compact YAML format (one flow mapping per line).

    The file loads back with ``ChecksConfig.model_validate(yaml.safe_load(...))``; specs are
    validated before anything is written.

    Raises:
        ConfigError: a spec is not a valid compact expectation spec.
    """
    import yaml
    from pydantic import ValidationError

    from batchinfer.checks.expectations import ChecksConfig, pydantic_problems

    try:
        checks = ChecksConfig.model_validate({"input": list(specs)})
    except ValidationError as exc:
        raise ConfigError("Invalid starter expectations", problems=pydantic_problems(exc)) from exc

    lines = [f"# {line}" for line in (comment or "").splitlines()]
    lines.append("# Proposed by batchinfer from observed data: review the bounds before relying on them.")
    lines.append("input:")
    for raw, spec in zip(specs, checks.input, strict=True):
        item = dict(raw) if isinstance(raw, dict) else spec.to_compact()  # dicts keep int bounds
        lines.append(
            "  - " + yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=10**9).strip()
        )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def register(sub) -> None:
    """``batchinfer expectations init --data PARQUET --out SUITE.yaml``."""
    p = sub.add_parser("expectations", help="data-quality expectation tools")
    inner = p.add_subparsers(dest="expectations_command", metavar="SUBCOMMAND")
    init = inner.add_parser("init", help="propose a starter suite from reference data, to review and edit")
    init.add_argument("--data", required=True, help="Parquet file or (Hive-partitioned) directory")
    init.add_argument("--out", required=True, help="YAML file to write (the checks.input list)")
    init.add_argument("--margin", type=float, default=0.1, help="widen observed ranges by this share")
    init.add_argument("--max-categories", type=int, default=50, help="largest category set proposed")
    init.add_argument("--columns", help="comma-separated columns to cover (default: all)")
    init.set_defaults(handler=_cmd_init)
    p.set_defaults(handler=lambda args: p.print_help() or 2)


def _cmd_init(args) -> int:
    import os
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from batchinfer.io.filesystem import resolve

    if not os.path.exists(resolve(args.data).path) and "://" not in args.data:
        raise InputDataError(f"--data {args.data} does not exist", hint="give a Parquet file or directory")
    spark = (
        SparkSession.builder.master("local[*]")
        .appName("batchinfer-expectations-init")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.read.parquet(args.data)
    if args.columns:
        df = df.select(*[c.strip() for c in args.columns.split(",") if c.strip()])
    specs = propose_expectations(df, margin=args.margin, max_categories=args.max_categories)
    write_suite_yaml(specs, args.out, comment=f"proposed from {args.data}; review before use")
    print(f"wrote {args.out}: {len(specs)} expectations proposed from {args.data}")
    return 0
