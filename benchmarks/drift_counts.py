"""How fast the single pass counts drift: nanoseconds per value, stacked (sorted) vs per column.

The scoring tasks bin every monitored feature on its reference profile's coarse and fine edges
(``batchinfer/checks/stacked_counts.py``, ``profile._Grid.count_batch``). This times exactly that
call on the benchmark's shape: 10,000-row batches of float32 features, edges from a reference
profile of the same distribution; and the prediction grid (a score and a 0/1 label), its
label through the dense integer table and through the Arrow lookup. Prints the figures and saves them as JSON; checks that both
paths give the same counts. A figure, not a test: run it on an otherwise idle machine.

    .venv/bin/python benchmarks/drift_counts.py --rows 500000 --features 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--batch-rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument(
        "--out", type=Path, default=None, help="results file (default: results/drift_counts-<timestamp>.json)"
    )
    args = ap.parse_args()

    import pyarrow as pa

    from batchinfer.checks.profile import _Grid, _probs, _skeleton

    rng = np.random.default_rng(7)
    numeric = {}
    for j in range(args.features):
        ref = rng.normal(size=20_000) * (1 + j % 5) + j
        numeric[f"f{j}"] = (
            np.unique(np.quantile(ref, _probs(10, fine=False))),
            np.unique(np.quantile(ref, _probs(100, fine=True))),
        )
    grid = _Grid.of(_skeleton(numeric, {}))
    values = {
        name: (rng.normal(size=args.rows) * (1 + j % 5) + j).astype(np.float32)
        for j, name in enumerate(numeric)
    }
    batches = [
        {k: pa.array(v[s : s + args.batch_rows]) for k, v in values.items()}
        for s in range(0, args.rows, args.batch_rows)
    ]
    batches[0][next(iter(values))].to_numpy(zero_copy_only=False)  # pyarrow's first conversion imports pandas

    def timed(count) -> tuple[float, tuple]:
        best, acc = float("inf"), None
        for _ in range(args.repeat):
            acc = grid.empty()
            t0 = time.perf_counter()
            for b in batches:
                count(b, *acc)
            best = min(best, time.perf_counter() - t0)
        return best, acc

    n_values = args.rows * args.features
    stacked_s, stacked = timed(grid.count_batch)
    per_column_s, per_column = timed(grid.count_columns)
    same = bool((stacked[0] == per_column[0]).all())
    predictions = _predictions(args, rng)
    result = {
        "rows": args.rows,
        "features": args.features,
        "batch_rows": args.batch_rows,
        "stacked_s": round(stacked_s, 4),
        "stacked_ns_per_value": round(stacked_s / n_values * 1e9, 2),
        "per_column_s": round(per_column_s, 4),
        "per_column_ns_per_value": round(per_column_s / n_values * 1e9, 2),
        "same_counts": same and predictions.pop("same_counts"),
        "predictions": predictions,
        "cpu_flags_avx512": "avx512f" in Path("/proc/cpuinfo").read_text()
        if Path("/proc/cpuinfo").exists()
        else None,
    }
    print(json.dumps(result, indent=2))
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.out = Path(__file__).parent / "results" / f"drift_counts-{stamp}.json"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not same:
        raise SystemExit("stacked and per-column counts differ")


def _predictions(args, rng) -> dict:
    """The prediction grid's share: a float32 score and an int64 label (0/1) per row, the label
    counted through the dense integer table and, for comparison, through the Arrow lookup
    (``index_in``) that null-free narrow labels no longer take (the table switched off here)."""
    import pyarrow as pa

    from batchinfer.checks import profile as P

    ref = rng.random(20_000)
    grid = P._Grid.of(
        P._skeleton(
            {
                "score": (
                    np.quantile(ref, P._probs(10, fine=False)),
                    np.quantile(ref, P._probs(100, fine=True)),
                )
            },
            {"label": (("0", "1"), ("0", "1"))},
        )
    )
    score = rng.random(args.rows).astype(np.float32)
    label = (score > 0.5).astype(np.int64)
    batches = [
        {"score": pa.array(score[s : s + args.batch_rows]), "label": pa.array(label[s : s + args.batch_rows])}
        for s in range(0, args.rows, args.batch_rows)
    ]
    dense_table = P._dense_int_table
    best = {"dense": float("inf"), "lookup": float("inf")}
    counts = {}
    for k in range(args.repeat * 2):
        for way in ("dense", "lookup") if k % 2 else ("lookup", "dense"):
            P._dense_int_table = dense_table if way == "dense" else (lambda *a: None)
            try:
                acc = grid.empty()
                t0 = time.perf_counter()
                for b in batches:
                    grid.count_batch(b, *acc)
                best[way] = min(best[way], time.perf_counter() - t0)
                counts[way] = acc[0]
            finally:
                P._dense_int_table = dense_table
    return {
        "dense_label_s": round(best["dense"], 4),
        "lookup_label_s": round(best["lookup"], 4),
        "ns_per_row_dense": round(best["dense"] / args.rows * 1e9, 1),
        "ns_per_row_lookup": round(best["lookup"] / args.rows * 1e9, 1),
        "same_counts": bool((counts["dense"] == counts["lookup"]).all()),
    }


if __name__ == "__main__":
    main()
