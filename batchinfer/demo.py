"""The demo: a partitioned churn dataset, a small MLP written as ONNX, and one job run.

``make demo`` calls ``batchinfer demo``: data and model are made once (seeded) under ``demo/``
and reused; the job then scores every partition and prints a summary. Tests and notebooks use
the same generators on smaller sizes.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "conf" / "demo.yaml"
DAYS = ("2026-11-26", "2026-11-27", "2026-11-28")
N_FEATURES = 12
COUNTRIES = ("DE", "FR", "US", "GB", "ES")
PLANS = ("free", "basic", "pro")


def feature_names(n: int = N_FEATURES) -> list[str]:
    return [f"f{i}" for i in range(n)]


def _true_logit(x: np.ndarray) -> np.ndarray:
    return 1.5 * x[:, 0] - 1.0 * x[:, 1] + 0.8 * x[:, 2] * x[:, 3] + 0.5 * np.sin(3 * x[:, 4]) - 0.3


def make_dataset(
    root: str | Path,
    *,
    rows: int = 240_000,
    days: tuple[str, ...] = DAYS,
    files_per_day: int = 2,
    n_features: int = N_FEATURES,
    seed: int = 7,
    shift: dict[str, float] | None = None,
) -> Path:
    """Write ``root/ds=<day>/part-<i>.parquet`` with ``customer_id``, ``country``, ``plan``,
    ``f0..f{n-1}`` (float32) and a ``churned`` label. ``shift`` adds a constant to named features."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    rng = np.random.default_rng(seed)
    per_file = max(1, rows // (len(days) * files_per_day))
    next_id = 0
    for day in days:
        for part in range(files_per_day):
            x = rng.normal(size=(per_file, n_features)).astype(np.float32)
            for name, delta in (shift or {}).items():
                x[:, int(name[1:])] += np.float32(delta)
            p = 1 / (1 + np.exp(-_true_logit(x)))
            churned = (rng.random(per_file) < p).astype(np.int64)
            table = {
                "customer_id": np.arange(next_id, next_id + per_file, dtype=np.int64),
                "country": rng.choice(COUNTRIES, size=per_file, p=[0.3, 0.2, 0.3, 0.1, 0.1]),
                "plan": rng.choice(PLANS, size=per_file),
            }
            next_id += per_file
            for j in range(n_features):
                table[f"f{j}"] = x[:, j]
            table["churned"] = churned
            out = root / f"ds={day}"
            out.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table(table), out / f"part-{part:03d}.parquet")
    return root


def make_model(path: str | Path, *, n_features: int = N_FEATURES, seed: int = 7, hidden=(32, 16)) -> Path:
    """Train a small MLP (ReLU, softmax) on generated rows and write it as ONNX.

    Outputs ``label`` (int64 [N]) and ``probabilities`` (float32 [N, 2]), as a scikit-learn
    classifier exported with ``export_sklearn`` has. It is trained here with numpy (Adam, 20
    epochs of 1,000-row steps, ~0.3 s) so the demo needs neither scikit-learn nor skl2onnx; AUC 0.85
    on fresh rows, against 0.86 for the true logit. Written under a temporary name and renamed.
    """
    import os

    weights = _fit_mlp(n_features, seed, tuple(hidden))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}-{os.getpid()}.onnx")
    try:
        tmp.write_bytes(_mlp_onnx(weights, n_features).SerializeToString())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _fit_mlp(
    n_features: int,
    seed: int,
    hidden: tuple[int, ...],
    *,
    epochs: int = 20,
    batch: int = 1000,
    lr: float = 3e-3,
):
    """``[W1, b1, W2, b2, ...]`` of a ReLU MLP with a 2-class softmax, fitted by Adam on cross-entropy."""
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(20_000, n_features)).astype(np.float32)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-_true_logit(x)))).astype(np.int64)
    sizes = (n_features, *hidden, 2)
    init = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):  # Glorot uniform, zero biases
        bound = np.sqrt(6 / (fan_in + fan_out))
        params += [
            init.uniform(-bound, bound, (fan_in, fan_out)).astype(np.float32),
            np.zeros(fan_out, np.float32),
        ]
    first = [np.zeros_like(p) for p in params]
    second = [np.zeros_like(p) for p in params]
    beta1, beta2, step = 0.9, 0.999, 0
    target = np.eye(2, dtype=np.float32)[y]
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            rows = order[start : start + batch]
            acts = [x[rows]]
            for i in range(0, len(params) - 2, 2):
                acts.append(np.maximum(acts[-1] @ params[i] + params[i + 1], 0))
            logits = acts[-1] @ params[-2] + params[-1]
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            grad = (prob - target[rows]) / len(rows)
            grads = [None] * len(params)
            for i in range(len(params) - 2, -1, -2):  # backwards through the layers
                grads[i], grads[i + 1] = acts[i // 2].T @ grad, grad.sum(axis=0)
                if i:
                    grad = (grad @ params[i].T) * (acts[i // 2] > 0)
            step += 1
            for k, g in enumerate(grads):
                first[k] = beta1 * first[k] + (1 - beta1) * g
                second[k] = beta2 * second[k] + (1 - beta2) * g * g
                m_hat, v_hat = first[k] / (1 - beta1**step), second[k] / (1 - beta2**step)
                params[k] -= (lr * m_hat / (np.sqrt(v_hat) + 1e-8)).astype(np.float32)
    return params


def _mlp_onnx(params, n_features: int):
    """The fitted MLP as an ONNX graph: MatMul + Add (+ Relu) per layer, Softmax, ArgMax."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits, last = [], [], "input"
    layers = len(params) // 2
    for i in range(layers):
        w, b = f"W{i}", f"B{i}"
        inits += [numpy_helper.from_array(params[2 * i], w), numpy_helper.from_array(params[2 * i + 1], b)]
        nodes += [
            helper.make_node("MatMul", [last, w], [f"mm{i}"]),
            helper.make_node("Add", [f"mm{i}", b], [f"z{i}"]),
        ]
        last = f"z{i}"
        if i < layers - 1:
            nodes.append(helper.make_node("Relu", [last], [f"h{i}"]))
            last = f"h{i}"
    nodes += [
        helper.make_node("Softmax", [last], ["probabilities"], axis=1),
        helper.make_node("ArgMax", [last], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        "churn_mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, n_features])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2]),
        ],
        inits,
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="batchinfer-demo"
    )


def ensure_demo_assets(base: str | Path, *, rows: int = 240_000, model_ready=None) -> dict[str, Path]:
    """Make the demo model and data under ``base`` when missing (seeded, so the same each time).

    The model first: its training is a Python loop of small numpy steps, which a thread importing
    Great Expectations beside it slows several times over (the GIL); ``model_ready()`` is called
    once the model exists, so that import can start and overlap the data, which mostly runs in
    numpy and pyarrow with the GIL released."""
    base = Path(base)
    data = base / "data" / "events"
    model = base / "models" / "churn.onnx"
    stamp = base / "data" / ".rows"
    if not model.exists():
        t0 = time.perf_counter()
        make_model(model)
        print(
            f"demo: trained an MLP and wrote it to {model} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr
        )
    if model_ready is not None:
        model_ready()
    if not (stamp.exists() and stamp.read_text().strip() == str(rows)):
        import shutil

        if data.exists():
            shutil.rmtree(data)
        t0 = time.perf_counter()
        make_dataset(data, rows=rows)
        stamp.write_text(str(rows))
        print(
            f"demo: wrote {rows:,} rows in {len(DAYS)} ds partitions to {data} "
            f"({time.perf_counter() - t0:.1f}s)",
            file=sys.stderr,
        )
    return {
        "data": data,
        "model": model,
        "output": base / "output" / "churn_scores",
        "profile": base / "profiles" / "churn_reference.json",
    }


def ensure_reference_profile(assets: dict[str, Path], overrides: list[str], *, spark=None) -> Path:
    """Profile the first demo day (scored with the demo model) as the drift reference: on the
    embedded engine (no JVM) unless ``spark`` or the overrides ask for Spark."""
    from batchinfer.checks.reference import build_reference_profile, reference_overrides
    from batchinfer.job import Job

    path = assets["profile"]
    stamp = assets["data"].parent / ".rows"  # rewritten with the data
    inputs = [p for p in (assets["model"], stamp) if p.exists()]
    if path.exists() and all(path.stat().st_mtime >= p.stat().st_mtime for p in inputs):
        return path
    from batchinfer import engines

    job = Job.from_yaml(DEMO_CONFIG, overrides=[*overrides, *reference_overrides(f"ds={DAYS[0]}")])
    engine = engines.resolve(job.config, spark).name  # the embedded engine unless Spark is asked for
    t0 = time.perf_counter()
    profile = build_reference_profile(job, spark=spark)
    path.parent.mkdir(parents=True, exist_ok=True)
    profile.save(path)
    print(
        f"demo: profiled {profile.row_count:,} reference rows (ds={DAYS[0]}) into {path} "
        f"({engine} engine, {time.perf_counter() - t0:.1f}s)",
        file=sys.stderr,
    )
    return path


def run_demo(base: str | Path = "demo", *, rows: int = 240_000, as_json: bool = False) -> int:
    from batchinfer.checks import single_pass
    from batchinfer.job import Job
    from batchinfer.progress import progress_reporter
    from batchinfer.report import summary_text

    # The job's checks need Great Expectations: import it while the data and profile are made.
    assets = ensure_demo_assets(base, rows=rows, model_ready=single_pass.warm_up)
    overrides = [
        f"input.path={assets['data']}",
        f"model.path={assets['model']}",
        f"output.path={assets['output']}",
        f"drift.reference={assets['profile']}",
    ]
    ensure_reference_profile(assets, overrides)
    job = Job.from_yaml(DEMO_CONFIG, overrides=overrides)
    with progress_reporter(enabled=not as_json) as progress:
        result = job.run(progress=progress)
    if as_json:
        print(json.dumps(result.manifest, indent=2, default=str))
    else:
        from batchinfer.cli import _print_checks, _print_report_location

        _print_checks(result.manifest)
        print(summary_text(result.manifest))
        _print_report_location(result)  # as `batchinfer run` does: the page to open next
    return 0
