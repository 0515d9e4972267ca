"""Worker-side scoring helpers shared by the scenarios.

This module is imported by name inside Spark's Python workers (the scenario scripts put its
folder on ``PYTHONPATH``), so its module globals survive across tasks in one worker process:
that is what makes the session cache a per-worker cache rather than a per-task one.
"""

from __future__ import annotations

import numpy as np

INPUT_NAME = "input"
SLICE_ROWS = 10_000  # onnxruntime throughput drops above ~20k rows per run on this CPU

_SESSIONS: dict[tuple[str, int], object] = {}


def get_session(model_path: str, threads: int = 1):
    """One onnxruntime session per (model, threads) per process."""
    key = (model_path, threads)
    session = _SESSIONS.get(key)
    if session is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(model_path, opts, providers=["CPUExecutionProvider"])
        _SESSIONS[key] = session
    return session


def score_matrix(session, x: np.ndarray, slice_rows: int = SLICE_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Score a [n, 64] float32 matrix in slices; returns (score = P(class 1), label)."""
    n = len(x)
    scores = np.empty(n, dtype=np.float32)
    labels = np.empty(n, dtype=np.int64)
    for lo in range(0, n, slice_rows):
        hi = min(n, lo + slice_rows)
        label, proba = session.run(["label", "probabilities"], {INPUT_NAME: x[lo:hi]})
        scores[lo:hi] = proba[:, 1]
        labels[lo:hi] = label
    return scores, labels


def score_frame_batches(batches, model_path: str, features: list[str]):
    """mapInPandas body: pandas batches in, (id, score, label) batches out."""
    import pandas as pd

    session = get_session(model_path, threads=1)
    for pdf in batches:
        x = np.ascontiguousarray(pdf[features].to_numpy(dtype=np.float32))
        score, label = score_matrix(session, x)
        yield pd.DataFrame({"id": pdf["id"].to_numpy(), "score": score, "label": label})


def score_one_row(model_path: str, values) -> tuple[float, int]:
    """Per-row UDF body: one session.run per row."""
    session = get_session(model_path, threads=1)
    x = np.asarray(values, dtype=np.float32).reshape(1, -1)
    label, proba = session.run(["label", "probabilities"], {INPUT_NAME: x})
    return float(proba[0, 1]), int(label[0])
