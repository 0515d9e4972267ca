"""Single-process floor: pyarrow dataset scan → numpy → onnxruntime (2 threads) → pyarrow write.

No Spark: this is the least work any scoring job can do on this machine, one output file per
input file. ``session_start_s`` is 0; ``job_s`` includes importing onnxruntime and opening the model.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from _common import FEATURES, emit, parse_args

SCAN_BATCH_ROWS = 100_000


def main() -> None:
    args = parse_args(__doc__, lambda ap: ap.add_argument("--threads", type=int, default=2))
    t0 = time.perf_counter()
    from ortcache import get_session, score_matrix

    session = get_session(args.model, threads=args.threads)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rows = 0
    dataset = ds.dataset(args.data, format="parquet")
    for i, fragment in enumerate(sorted(dataset.get_fragments(), key=lambda f: f.path)):
        ids, scores, labels = [], [], []
        for batch in fragment.to_batches(columns=["id", *FEATURES], batch_size=SCAN_BATCH_ROWS):
            x = np.column_stack([batch.column(f).to_numpy() for f in FEATURES])
            score, label = score_matrix(session, x)
            ids.append(batch.column("id").to_numpy())
            scores.append(score)
            labels.append(label)
        table = pa.table(
            {"id": np.concatenate(ids), "score": np.concatenate(scores), "label": np.concatenate(labels)}
        )
        pq.write_table(table, out / f"part-{i:05d}.parquet")
        rows += table.num_rows
    emit(session_start_s=0.0, job_s=time.perf_counter() - t0, rows_out=rows, threads=args.threads)


if __name__ == "__main__":
    main()
