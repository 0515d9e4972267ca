"""The canary batch: a few hundred fixed rows a card carries, re-scored by every worker.

``model verify`` stores the rows (model feeds), the reference model's outputs and the
candidate's outputs on the verifying machine, with the tolerances a worker must meet. Each
Python worker, right after building its onnxruntime session and before scoring, runs the
canary through its own provider on its own hardware (:func:`check_canary`): a worker whose
int8 kernels saturate (x86 without VNNI), a wrong onnxruntime build or a GPU fp16 path shows
up here, before anything is written.

Tolerances: the card's budget, or the verifying machine's own canary figure when that is
already worse (a few hundred rows are a small sample), so the verifying machine always passes.

Rows are stored as they are fed to the model (after the job's mapping), little-endian and
base64-encoded. With ``source="synthetic"`` (sensitive data) no real row is stored: each float
column is drawn from interpolated quantiles of the sampled rows.
"""

from __future__ import annotations

import base64

import numpy as np

DEFAULT_ROWS = 256
# Quantiles kept per column for synthetic rows: enough for the shape, too few to give rows away.
SYNTHETIC_QUANTILES = 33


def encode_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    if a.dtype.kind in "OUS":
        return {"dtype": "str", "shape": list(a.shape), "values": [str(x) for x in a.reshape(-1)]}
    le = a.astype(a.dtype.newbyteorder("<"), copy=False)
    return {"dtype": str(a.dtype), "shape": list(a.shape), "data": base64.b64encode(le.tobytes()).decode()}


def decode_array(d: dict) -> np.ndarray:
    if d["dtype"] == "str":
        return np.array(d["values"], dtype=object).reshape(d["shape"])
    dtype = np.dtype(d["dtype"]).newbyteorder("<")
    return np.frombuffer(base64.b64decode(d["data"]), dtype=dtype).astype(d["dtype"]).reshape(d["shape"])


def synthetic_feeds(feeds: dict[str, np.ndarray], rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows drawn column by column from interpolated quantiles of ``feeds`` (no real row kept).

    Float tensors only: integer or string inputs could reveal real values, so they are refused.
    """
    from batchinfer.errors import ConfigError

    rng = np.random.default_rng(seed)
    out = {}
    qs = np.linspace(0, 1, SYNTHETIC_QUANTILES)
    for name, a in feeds.items():
        if a.dtype.kind != "f":
            raise ConfigError(
                f"--canary synthetic: input {name!r} is {a.dtype}, only float inputs can be synthesized",
                hint="use --canary real, or --canary-rows 0 for no canary",
            )
        flat = a.reshape(a.shape[0], -1).astype(np.float64)
        table = np.quantile(flat, qs, axis=0)  # [Q, F]
        u = rng.random((rows, flat.shape[1])) * (SYNTHETIC_QUANTILES - 1)
        lo = np.floor(u).astype(int)
        hi = np.minimum(lo + 1, SYNTHETIC_QUANTILES - 1)
        frac = u - lo
        cols = np.arange(flat.shape[1])
        values = table[lo, cols] * (1 - frac) + table[hi, cols] * frac
        out[name] = values.reshape((rows, *a.shape[1:])).astype(a.dtype)
    return out


def canary_digest(canary: dict) -> str:
    """sha256 of a canary's content (rows, outputs, tolerance, hardware)."""
    import hashlib
    import json

    body = {k: v for k, v in canary.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def run_outputs(run, feeds: dict[str, np.ndarray], output_names: list[str]) -> dict[str, np.ndarray]:
    return {n: np.asarray(v) for n, v in zip(output_names, run(output_names, feeds), strict=True)}


def tensor_outputs(session) -> list[str]:
    return [o.name for o in session.get_outputs() if o.type.startswith("tensor(")]


def build_canary(
    feeds: dict[str, np.ndarray],
    reference_session,
    candidate_session,
    budget,
    *,
    source: str,
    hardware: dict,
    label_output: str | None = None,
) -> dict:
    """The card's canary: rows, both models' outputs here, and the worker tolerances."""
    from batchinfer.model.verify import compare_outputs

    names = tensor_outputs(reference_session)
    ref = run_outputs(reference_session.run, feeds, names)
    cand = run_outputs(candidate_session.run, feeds, names)
    figures = compare_outputs(ref, cand, label_output=label_output)
    here = canary_quantities(figures)
    tolerance = {
        "min_label_agreement": min(budget.min_label_agreement, here["label_agreement"] or 1.0),
        "max_row_abs_diff": max(budget.max_row_abs_diff, here["row_abs_diff"]),
        "max_top_class_abs_diff": max(budget.max_top_class_abs_diff, here["top_class_abs_diff"]),
    }
    return {
        "rows": int(len(next(iter(feeds.values())))),
        "source": source,
        "label_output": label_output,
        "inputs": {k: encode_array(v) for k, v in feeds.items()},
        "reference_outputs": {k: encode_array(v) for k, v in ref.items()},
        "candidate_outputs": {k: encode_array(v) for k, v in cand.items()},
        "verified_figures": here,
        "tolerance": tolerance,
        "hardware": hardware,
    }


def canary_quantities(figures: dict) -> dict:
    """The gated per-row quantities of a comparison (worst float output)."""
    floats = [s for s in figures["outputs"].values() if "row_abs_diff" in s]
    return {
        "label_agreement": figures.get("label_agreement"),
        "row_abs_diff": max([s["row_abs_diff"] for s in floats] or [0.0]),
        "top_class_abs_diff": max([s["top_class_abs_diff"] for s in floats] or [0.0]),
    }


def check_canary(run, canary: dict, hardware: dict) -> dict:
    """Score the canary with ``run(output_names, feeds)`` and compare with the card.

    Returns the worker's canary record: passed, failures, the figures against the reference
    outputs, the largest |diff| against the verifying machine's own outputs, and both
    hardware records.
    """
    from batchinfer.model.verify import compare_outputs
    from batchinfer.scoring.hardware import same_kernels

    feeds = {k: decode_array(v) for k, v in canary["inputs"].items()}
    ref = {k: decode_array(v) for k, v in canary["reference_outputs"].items()}
    names = list(ref)
    got = run_outputs(run, feeds, names)
    figures = canary_quantities(compare_outputs(ref, got, label_output=canary.get("label_output")))
    verified = {k: decode_array(v) for k, v in canary.get("candidate_outputs", {}).items()}
    drift = 0.0
    for k, v in verified.items():
        if v.dtype.kind == "f" and k in got:
            drift = max(drift, float(np.abs(v.astype(np.float64) - got[k].astype(np.float64)).max()))
    tol = canary["tolerance"]
    failures = []
    agreement = figures["label_agreement"]
    if agreement is not None and not (agreement >= tol["min_label_agreement"]):
        failures.append(f"label agreement {agreement:.4%} < {tol['min_label_agreement']:.4%}")
    if not (figures["row_abs_diff"] <= tol["max_row_abs_diff"]):
        failures.append(f"row max |diff| {figures['row_abs_diff']:.5f} > {tol['max_row_abs_diff']:.5f}")
    if not (figures["top_class_abs_diff"] <= tol["max_top_class_abs_diff"]):
        failures.append(
            f"top value |diff| {figures['top_class_abs_diff']:.5f} > {tol['max_top_class_abs_diff']:.5f}"
        )
    return {
        "passed": not failures,
        "failures": failures,
        "digest": canary.get("digest"),
        "rows": canary["rows"],
        "figures": figures,
        "max_abs_diff_vs_verified": drift,
        "same_kernels_as_verified": same_kernels(hardware, canary.get("hardware")),
        "hardware": hardware,
    }


def mismatch_message(result: dict, canary: dict) -> str:
    """One line naming the worker host, its CPU features and the card's."""
    from batchinfer.scoring.hardware import describe

    return (
        f"canary batch ({result['rows']} rows) over budget on worker {describe(result['hardware'])}: "
        f"{'; '.join(result['failures'])}; the card was verified on {describe(canary.get('hardware'))}"
    )
