"""The demo: a partitioned churn dataset, a scikit-learn MLP exported to ONNX, and one job run.

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
    """Train a small MLP on generated rows and export it to ONNX (probabilities as a tensor)."""
    from sklearn.neural_network import MLPClassifier

    from batchinfer.model.export import export_sklearn

    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(20_000, n_features)).astype(np.float32)
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-_true_logit(x)))).astype(np.int64)
    # Early stopping (on a 10 % validation split): ~20 epochs instead of 60, the same AUC (~0.85).
    clf = MLPClassifier(hidden_layer_sizes=hidden, max_iter=60, early_stopping=True, random_state=seed)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a demo model needs no full convergence
        clf.fit(x, y)
    return export_sklearn(clf, path, n_features=n_features, input_name="input")


def ensure_demo_assets(base: str | Path, *, rows: int = 240_000) -> dict[str, Path]:
    """Make the demo data and model under ``base`` when missing (seeded, so the same each time).

    A missing model is trained in a child process while this one writes the data (two cores
    do both at once; scikit-learn and skl2onnx load there, not here).
    """
    base = Path(base)
    data = base / "data" / "events"
    model = base / "models" / "churn.onnx"
    stamp = base / "data" / ".rows"
    training = None if model.exists() else _ModelTraining.start(model)
    try:
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
        if training is not None:
            seconds = training.wait()
            print(f"demo: trained an MLP and exported it to {model} ({seconds:.1f}s)", file=sys.stderr)
    finally:
        if training is not None:
            training.stop()
    return {
        "data": data,
        "model": model,
        "output": base / "output" / "churn_scores",
        "profile": base / "profiles" / "churn_reference.json",
    }


class _ModelTraining:
    """:func:`make_model` in a child process (``python -c``: no fork of this process's threads),
    written to a temporary name and renamed, so an interrupted run never leaves half a model."""

    def __init__(self, process, path: Path, tmp: Path, t0: float) -> None:
        self.process, self.path, self.tmp, self.t0 = process, path, tmp, t0

    @classmethod
    def start(cls, path: Path) -> _ModelTraining:
        import os
        import subprocess

        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}-{os.getpid()}.onnx")
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from batchinfer.demo import make_model; make_model(sys.argv[1])",
            ]
            + [str(tmp)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        return cls(process, path, tmp, time.perf_counter())

    def wait(self) -> float:
        import os

        _, err = self.process.communicate()
        if self.process.returncode != 0 or not self.tmp.exists():
            from batchinfer.errors import ModelError

            lines = [x for x in (err or "").strip().splitlines() if x.strip()]
            raise ModelError(
                f"training the demo model failed (exit code {self.process.returncode}): "
                f"{lines[-1] if lines else 'no output'}",
                hint="check that scikit-learn and skl2onnx are installed (make env)",
            )
        os.replace(self.tmp, self.path)
        return time.perf_counter() - self.t0

    def stop(self) -> None:
        if self.process.poll() is None:  # interrupted while it trains
            self.process.kill()
            self.process.wait()
        self.tmp.unlink(missing_ok=True)


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

    single_pass.warm_up()  # the job's checks need Great Expectations: import it while assets are made
    assets = ensure_demo_assets(base, rows=rows)
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
