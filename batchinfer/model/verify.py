"""The verification gate: score real rows with a candidate (quantized) model and its reference.

The comparison itself is pure functions over numpy arrays (:func:`compare_outputs`,
:func:`check_budget`, :func:`roc_auc`), tested without files or Spark; :func:`verify_models`
only adds sampling, two onnxruntime sessions and timing.

Gate on what matters for batch scores, row by row: label agreement, metric change, the mean
over rows of each row's largest |difference|, and the |difference| of the probability of the
class the reference picked. A mean over every class probability is reported as detail only:
with many classes it dilutes a broken model (a 214-class model that predicted one class for
almost every row had a per-class mean |diff| of 0.009). The max difference is reported, never
gated: int8 moves a few borderline rows a lot while the population barely moves.

>>> report = verify_models("m.int8.onnx", "m.onnx", mapping, label_column="churned")  # doctest: +SKIP
>>> report.passed, report.failures  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from batchinfer.errors import ConfigError, InputDataError


@dataclass(frozen=True)
class VerificationBudget:
    """What a candidate may lose against its reference before the gate fails."""

    min_label_agreement: float = 0.995
    max_metric_change: float = 0.005
    max_row_abs_diff: float = 0.01  # mean over rows of each row's largest |diff|
    max_top_class_abs_diff: float = 0.01  # mean |diff| of the reference's top-class probability

    def __post_init__(self) -> None:
        problems = []
        if not (0.0 <= self.min_label_agreement <= 1.0):
            problems.append(("--min-label-agreement", f"must be in [0, 1], got {self.min_label_agreement}"))
        for flag, value in (
            ("--max-metric-change", self.max_metric_change),
            ("--max-row-abs-diff", self.max_row_abs_diff),
            ("--max-top-class-abs-diff", self.max_top_class_abs_diff),
        ):
            if not (value >= 0):
                problems.append((flag, f"must be >= 0, got {value}"))
        if problems:
            raise ConfigError("invalid verification budget", problems=problems)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- pure metrics


def roc_auc(y_true, score) -> float | None:
    """Area under the ROC curve of a binary label (Mann-Whitney U with average ranks for ties).

    The positive class is the larger label value (1 for 0/1, True for booleans). Returns None
    when only one class is present (AUC is undefined).

    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.shape[0] != s.shape[0]:
        raise ValueError(f"roc_auc: {y.shape[0]} labels but {s.shape[0]} scores")
    classes = np.unique(y)
    if len(classes) != 2:
        return None
    pos = y == classes[1]
    n_pos = int(pos.sum())
    n_neg = len(y) - n_pos
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    # average ranks over ties: each run of equal scores gets the mean of its 1-based positions
    boundaries = np.flatnonzero(np.diff(sorted_s)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(s)]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def accuracy(y_true, y_pred) -> float:
    y, p = _comparable(np.asarray(y_true), np.asarray(y_pred))
    return float((y == p).mean()) if len(y) else float("nan")


def label_agreement(a, b) -> float:
    a, b = _comparable(np.asarray(a), np.asarray(b))
    return float((a == b).mean()) if len(a) else float("nan")


def abs_diff_stats(reference, candidate) -> dict:
    """|reference - candidate| of one float output, per row first.

    ``row_abs_diff``: the mean over rows of each row's largest |diff| (gated);
    ``top_class_abs_diff``: the mean |diff| of the value the reference ranks highest in each row
    (its predicted class's probability; gated); ``mean_abs_diff`` (over every value, detail) and
    ``max_abs_diff`` (detail).
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(candidate, dtype=np.float64)
    if r.shape != c.shape:
        raise ValueError(f"output shapes differ: reference {r.shape}, candidate {c.shape}")
    d = np.abs(r - c)
    if d.size == 0:
        return {"row_abs_diff": 0.0, "top_class_abs_diff": 0.0, "mean_abs_diff": 0.0, "max_abs_diff": 0.0}
    rows = d.reshape(d.shape[0], -1) if d.ndim else d.reshape(1, 1)
    ref_rows = r.reshape(rows.shape)
    top = rows[np.arange(rows.shape[0]), ref_rows.argmax(axis=1)]
    return {
        "row_abs_diff": float(rows.max(axis=1).mean()),
        "top_class_abs_diff": float(top.mean()),
        "mean_abs_diff": float(d.mean()),
        "max_abs_diff": float(d.max()),
    }


def _comparable(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of different dtypes (int64 label column vs int label output, strings) compare as text."""
    a, b = a.reshape(len(a), -1)[:, 0] if a.ndim > 1 else a, b.reshape(len(b), -1)[:, 0] if b.ndim > 1 else b
    if a.dtype.kind in "iub" and b.dtype.kind in "iub":
        return a.astype(np.int64), b.astype(np.int64)
    if a.dtype.kind in "iubf" and b.dtype.kind in "iubf":
        return a.astype(np.float64), b.astype(np.float64)
    return a.astype(str), b.astype(str)


def predicted_labels(outputs: dict[str, np.ndarray], label_output: str | None = None):
    """(output name, labels): an integer/string [N] output, else argmax of [N, C], else score >= 0.5."""
    if label_output is not None:
        if label_output not in outputs:
            raise ConfigError(
                f"--label-output {label_output!r} is not a model output (outputs: {sorted(outputs)})"
            )
        return label_output, _as_labels(outputs[label_output])
    for name, v in outputs.items():
        if v.dtype.kind in "iuUSOb" and v.ndim == 1:
            return name, v
    for name, v in outputs.items():
        if v.dtype.kind == "f" and v.ndim == 2 and v.shape[1] >= 2:
            return f"argmax({name})", v.argmax(axis=1)
    for name, v in outputs.items():
        if v.dtype.kind == "f" and (v.ndim == 1 or (v.ndim == 2 and v.shape[1] == 1)):
            return f"{name} >= 0.5", (v.reshape(-1) >= 0.5).astype(np.int64)
    return None, None


def _as_labels(v: np.ndarray) -> np.ndarray:
    if v.dtype.kind == "f" and v.ndim == 2 and v.shape[1] >= 2:
        return v.argmax(axis=1)
    if v.dtype.kind == "f":
        return (v.reshape(-1) >= 0.5).astype(np.int64)
    return v.reshape(-1)


def positive_scores(outputs: dict[str, np.ndarray], score_output: str | None = None):
    """(name, score of the positive class) for binary models: [N, 2][:, 1], [N, 1] or [N] floats."""
    items = [(score_output, outputs[score_output])] if score_output is not None else list(outputs.items())
    if score_output is not None and score_output not in outputs:
        raise ConfigError(
            f"--score-output {score_output!r} is not a model output (outputs: {sorted(outputs)})"
        )
    for name, v in items:
        if v.dtype.kind != "f":
            continue
        if v.ndim == 2 and v.shape[1] == 2:
            return f"{name}[:, 1]", v[:, 1]
        if v.ndim == 1 or (v.ndim == 2 and v.shape[1] == 1):
            return name, v.reshape(-1)
    return None, None


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    *,
    labels=None,
    label_output: str | None = None,
    score_output: str | None = None,
) -> dict:
    """Figures comparing two models' outputs on the same rows (and against true ``labels``)."""
    missing = sorted(set(reference) - set(candidate))
    if missing:
        raise ConfigError(f"the candidate model lacks outputs {missing} of the reference")
    n = len(next(iter(reference.values()))) if reference else 0
    figures: dict = {"rows": int(n), "outputs": {}}
    for name, ref in reference.items():
        cand = candidate[name]
        if ref.dtype.kind == "f":
            figures["outputs"][name] = abs_diff_stats(ref, cand)
        else:
            figures["outputs"][name] = {"agreement": label_agreement(ref, cand)}
    name, ref_labels = predicted_labels(reference, label_output)
    _, cand_labels = predicted_labels(candidate, label_output)
    figures["label_output"] = name
    figures["label_agreement"] = None if name is None else label_agreement(ref_labels, cand_labels)
    if labels is not None:
        y = np.asarray(labels)
        metrics = {}
        if name is not None:
            metrics["accuracy"] = _metric_pair(accuracy(y, ref_labels), accuracy(y, cand_labels))
        score_name, ref_score = positive_scores(reference, score_output)
        _, cand_score = positive_scores(candidate, score_output)
        if score_name is not None:
            ref_auc, cand_auc = roc_auc(y, ref_score), roc_auc(y, cand_score)
            if ref_auc is not None and cand_auc is not None:
                metrics["roc_auc"] = _metric_pair(ref_auc, cand_auc)
                metrics["roc_auc"]["score"] = score_name
        figures["metrics"] = metrics
    return figures


def _metric_pair(ref: float, cand: float) -> dict:
    return {"reference": ref, "candidate": cand, "change": cand - ref}


def check_budget(figures: dict, budget: VerificationBudget) -> list[str]:
    """Every way ``figures`` exceed ``budget`` (empty: passed). NaN never passes."""
    failures = []
    agreement = figures.get("label_agreement")
    if agreement is not None and not (agreement >= budget.min_label_agreement):
        failures.append(
            f"label agreement {agreement:.4%} < {budget.min_label_agreement:.2%} "
            f"({figures.get('label_output')})"
        )
    for name, stats in figures.get("outputs", {}).items():
        row = stats.get("row_abs_diff")
        if row is not None and not (row <= budget.max_row_abs_diff):
            failures.append(
                f"output {name!r}: mean of each row's largest |diff| {row:.5f} > {budget.max_row_abs_diff}"
            )
        top = stats.get("top_class_abs_diff")
        if top is not None and not (top <= budget.max_top_class_abs_diff):
            failures.append(
                f"output {name!r}: |diff| of the reference's top value {top:.5f} > "
                f"{budget.max_top_class_abs_diff}"
            )
    for metric, pair in figures.get("metrics", {}).items():
        change = pair["change"]
        if not (abs(change) <= budget.max_metric_change):
            failures.append(
                f"{metric} changed by {change:+.5f} ({pair['reference']:.5f} → {pair['candidate']:.5f}), "
                f"budget ±{budget.max_metric_change}"
            )
    return failures


# ---------------------------------------------------------------- running both models


@dataclass
class VerificationReport:
    figures: dict
    budget: VerificationBudget
    failures: list[str]
    data: dict = field(default_factory=dict)
    verified_at: str = ""
    hardware: dict = field(default_factory=dict)  # where it was verified (scoring/hardware.py)
    batch_dependence: dict = field(default_factory=dict)
    canary: dict | None = None  # stored in the card, not in the verification record

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "passed": self.passed,
            "failures": list(self.failures),
            "budget": self.budget.to_dict(),
            "figures": self.figures,
            "data": self.data,
            "verified_at": self.verified_at,
            "hardware": self.hardware,
            "batch_dependence": self.batch_dependence,
        }


def _session(content: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(content, sess_options=options, providers=["CPUExecutionProvider"])


def _run_all(session, feeds_list: list[dict]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs() if o.type.startswith("tensor(")]
    parts = [session.run(names, feeds) for feeds in feeds_list]
    return {n: np.concatenate([np.asarray(p[i]) for p in parts], axis=0) for i, n in enumerate(names)}


def _best_time(session, feeds_list: list[dict]) -> float:
    names = [session.get_outputs()[0].name]
    t0 = time.perf_counter()
    for feeds in feeds_list:
        session.run(names, feeds)
    return time.perf_counter() - t0


def measure_throughput(sessions: dict, feeds_list: list[dict], rows: int, repeats: int) -> dict[str, float]:
    """Rows/s per session: best of ``repeats`` interleaved passes (robust to a busy machine)."""
    best = {k: math.inf for k in sessions}
    for _ in range(max(1, repeats)):
        for key, session in sessions.items():
            best[key] = min(best[key], _best_time(session, feeds_list))
    return {k: rows / v if v > 0 else float("inf") for k, v in best.items()}


def verify_models(
    candidate,
    reference,
    mapping,
    *,
    rows: int = 20_000,
    label_column: str | None = None,
    label_output: str | None = None,
    score_output: str | None = None,
    batch_rows: int | None = None,
    threads: int = 1,
    repeats: int = 5,
    seed: int = 1,
    budget: VerificationBudget | None = None,
    canary_rows: int = 256,
    canary_source: str = "real",
    all_targets: bool = False,
) -> VerificationReport:
    """Score a sample of real rows with both models (``ModelArtifact``s) and check the budget.

    ``mapping`` is a :class:`batchinfer.model.calibration.DataMapping` bound to the reference.
    Rows are scored in slices of ``batch_rows`` (the job's ``runtime.batch_rows``), as the job
    scores them: dynamic int8 results depend on the batch, so the candidate is also scored in a
    second slicing and the difference recorded (``batch_dependence``). ``canary_rows`` rows of
    the sample (or synthetic rows, ``canary_source="synthetic"``) become the card's canary batch.
    """
    from batchinfer.model.calibration import feeds_from_table
    from batchinfer.model.card import utc_now

    budget = budget or VerificationBudget()
    batch_rows = batch_rows or mapping.spec.batch_rows
    cand_mapping = mapping.for_model(candidate)
    extra = [label_column] if label_column else []
    table = mapping.sample(rows, seed=seed, extra_columns=extra)
    labels = None
    if label_column:
        col = table.column(label_column)
        if col.null_count:
            keep = table.column(label_column).is_valid()
            table = table.filter(keep)
            col = table.column(label_column)
        labels = col.to_numpy(zero_copy_only=False)
    n = table.num_rows
    if n == 0:
        raise InputDataError("the verification sample has no valid rows", hint="check the data and mapping")
    ref_feeds = list(feeds_from_table(table, mapping.spec, batch_rows))
    cand_feeds = list(feeds_from_table(table, cand_mapping.spec, batch_rows))
    ref_session = _session(reference.content, threads)
    cand_session = _session(candidate.content, threads)
    ref_out = _run_all(ref_session, ref_feeds)
    cand_out = _run_all(cand_session, cand_feeds)
    figures = compare_outputs(
        ref_out, cand_out, labels=labels, label_output=label_output, score_output=score_output
    )
    tput = measure_throughput({"reference": ref_session, "candidate": cand_session}, ref_feeds, n, repeats)
    figures["size"] = {
        "reference_bytes": reference.size_bytes,
        "candidate_bytes": candidate.size_bytes,
        "ratio": candidate.size_bytes / reference.size_bytes if reference.size_bytes else None,
    }
    figures["throughput"] = {
        "reference_rows_per_s": round(tput["reference"]),
        "candidate_rows_per_s": round(tput["candidate"]),
        "ratio": tput["candidate"] / tput["reference"],
        "threads": threads,
        "batch_rows": batch_rows,
        "repeats": repeats,
    }
    failures = check_budget(figures, budget)
    if all_targets:
        figures["targets"] = verify_targets(
            candidate.content, ref_out, cand_feeds, budget, label_output, threads
        )
        for target, entry in figures["targets"].items():
            failures.extend(f"on {target} (emulated): {f}" for f in entry.get("failures", []))
    dependence = measure_batch_dependence(cand_session, table, cand_mapping.spec, batch_rows, cand_out)
    from batchinfer.scoring.hardware import hardware_record

    hardware = hardware_record(list(cand_session.get_providers()))
    canary = None
    if canary_rows > 0:
        from batchinfer.model.canary import build_canary, synthetic_feeds

        k = min(canary_rows, n)
        feeds = next(feeds_from_table(table.slice(0, k), mapping.spec, k))  # one batch of k rows
        if canary_source == "synthetic":
            pool = next(feeds_from_table(table, mapping.spec, n))
            feeds = synthetic_feeds(pool, canary_rows, seed=seed)
        canary = build_canary(
            feeds,
            ref_session,
            cand_session,
            budget,
            source=canary_source,
            hardware=hardware,
            label_output=label_output,
        )
    data = {
        "source": mapping.source,
        "path": mapping.selection.root.uri,
        "rows": n,
        "label_column": label_column,
        "seed": seed,
    }
    return VerificationReport(figures, budget, failures, data, utc_now(), hardware, dependence, canary)


def verify_targets(
    content: bytes, ref_out: dict, feeds_list: list[dict], budget, label_output, threads
) -> dict:
    """The candidate as other CPUs would score it (batchinfer.model.emulate), against the budget.

    Every target gets an entry: figures, failures and how it was emulated, or why it was not.
    """
    from batchinfer.model.emulate import TARGET_EMULATION, target_sessions

    sessions, skipped = target_sessions(content, threads)
    out: dict = {}
    for target, session in sessions.items():
        if target in skipped:
            continue
        # The AVX2 emulation holds a [rows, K/2, M] tensor: score in slices of 256 rows.
        small = [
            {k: v[i : i + 256] for k, v in feeds.items()}
            for feeds in feeds_list
            for i in range(0, len(next(iter(feeds.values()))), 256)
        ]
        got = _run_all(session, small)
        f = compare_outputs(ref_out, got, label_output=label_output)
        entry = {
            "emulation": TARGET_EMULATION[target],
            "label_agreement": f["label_agreement"],
            "outputs": f["outputs"],
        }
        entry["failures"] = check_budget({**f, "metrics": {}}, budget)
        entry["passed"] = not entry["failures"]
        out[target] = entry
    for target, why in skipped.items():
        out.setdefault(target, {"emulation": None, "not_emulated": why})
    return out


# Scores that move by more than this between two slicings of the same rows are batch-dependent.
BATCH_INVARIANCE_TOLERANCE = 1e-6


def measure_batch_dependence(session, table, spec, batch_rows: int, scored: dict) -> dict:
    """Score the same rows in a second slicing and compare with ``scored`` (cut at ``batch_rows``).

    Dynamic int8 computes activation scales per batch, so a row's score depends on its batch
    neighbours; fp32 and static int8 do not. The second size is ~7/9 of the first, so no batch
    boundary coincides except the first.
    """
    from batchinfer.model.calibration import feeds_from_table

    n = table.num_rows
    first = min(batch_rows, n)
    other = max(1, first * 7 // 9)
    if other == first:
        other = max(1, first - 1)
    again = _run_all(session, list(feeds_from_table(table, spec, other)))
    worst, flipped = 0.0, None
    for name, ref in scored.items():
        if ref.dtype.kind == "f":
            d = np.abs(ref.astype(np.float64) - again[name].astype(np.float64))
            worst = max(worst, float(d.max()) if d.size else 0.0)
    name, a = predicted_labels(scored)
    if name is not None:
        _, b = predicted_labels(again)
        flipped = 1.0 - label_agreement(a, b)
    return {
        "batch_rows": [first, other],
        "max_abs_diff": worst,
        "label_flip_rate": flipped,
        "tolerance": BATCH_INVARIANCE_TOLERANCE,
        "dependent": worst > BATCH_INVARIANCE_TOLERANCE,
        "verified_batch_rows": batch_rows,
    }


def format_report(report: VerificationReport, candidate_path: str, reference_path: str) -> str:
    """Human-readable summary for the CLI."""
    f = report.figures
    lines = [
        f"verify {candidate_path} against {reference_path} on {f['rows']:,} rows ({report.data.get('source')})"
    ]
    if f.get("label_agreement") is not None:
        lines.append(f"  label agreement   {f['label_agreement']:.4%}  ({f['label_output']})")
    for name, stats in f["outputs"].items():
        if "row_abs_diff" in stats:
            lines.append(
                f"  {name:<17} row max |diff| {stats['row_abs_diff']:.6f}   top value |diff| "
                f"{stats['top_class_abs_diff']:.6f}   (detail: mean |diff| {stats['mean_abs_diff']:.6f}, "
                f"max |diff| {stats['max_abs_diff']:.6f})"
            )
        else:
            lines.append(f"  {name:<17} agreement {stats['agreement']:.4%}")
    for metric, pair in f.get("metrics", {}).items():
        lines.append(
            f"  {metric:<17} {pair['reference']:.5f} → {pair['candidate']:.5f}  (change {pair['change']:+.5f})"
        )
    s, t = f["size"], f["throughput"]
    lines.append(
        f"  size              {s['reference_bytes']:,} → {s['candidate_bytes']:,} bytes (×{s['ratio']:.3f})"
    )
    lines.append(
        f"  throughput        {t['reference_rows_per_s']:,} → {t['candidate_rows_per_s']:,} rows/s "
        f"(×{t['ratio']:.2f}, {t['threads']} thread(s), batches of {t['batch_rows']:,})"
    )
    b = report.budget
    lines.append(
        f"  budget            label agreement >= {b.min_label_agreement:.2%}, |metric change| <= "
        f"{b.max_metric_change}, row max |diff| <= {b.max_row_abs_diff}, top value |diff| <= "
        f"{b.max_top_class_abs_diff}"
    )
    for target, entry in f.get("targets", {}).items():
        if entry.get("emulation") is None:
            lines.append(f"  {target:<17} not emulated: {entry['not_emulated']}")
            continue
        rows = [s for s in entry["outputs"].values() if "row_abs_diff" in s]
        worst = max([s["row_abs_diff"] for s in rows] or [0.0])
        agreement = entry["label_agreement"]
        lines.append(
            f"  {target:<17} {'ok' if entry['passed'] else 'OVER BUDGET'}: label agreement "
            + ("-" if agreement is None else f"{agreement:.4%}")
            + f", row max |diff| {worst:.6f}  (emulated: {entry['emulation']})"
        )
    dep = report.batch_dependence
    if dep:
        state = "batch-DEPENDENT" if dep["dependent"] else "batch-invariant"
        flips = "" if dep["label_flip_rate"] is None else f", {dep['label_flip_rate']:.3%} labels flip"
        lines.append(
            f"  batching          {state}: max |diff| {dep['max_abs_diff']:.3g} between batches of "
            f"{dep['batch_rows'][0]:,} and {dep['batch_rows'][1]:,} rows{flips}"
        )
    if report.hardware:
        from batchinfer.scoring.hardware import describe

        lines.append(f"  verified on       {describe(report.hardware)}")
    if report.canary:
        lines.append(
            f"  canary            {report.canary['rows']} {report.canary['source']} rows stored in the card"
        )
    if report.passed:
        lines.append("  PASSED")
    else:
        lines.append("  FAILED:")
        lines.extend(f"    - {msg}" for msg in report.failures)
    return "\n".join(lines)
