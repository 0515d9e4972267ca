"""Write the YAML job config the ``batchinfer`` scenario runs (``batchinfer run <config> --json``)."""

from __future__ import annotations

from pathlib import Path

import yaml

FEATURES = [f"f{i}" for i in range(64)]


def _merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def job_config(
    data_dir: Path,
    model_path: Path,
    out_dir: Path,
    *,
    job: str = "bench",
    batch_rows: int = 10_000,
    threads_per_task: int = 1,
    master: str = "local[2]",
    spark_conf: dict | None = None,
    extra: dict | None = None,
) -> dict:
    """The benchmark job as a dict; ``extra`` is deep-merged last (e.g. a ``checks:`` section)."""
    config = {
        "job": job,
        "input": {"path": str(data_dir), "passthrough": ["id"]},
        "model": {
            "path": str(model_path),
            "inputs": {"input": {"columns": list(FEATURES)}},
            "outputs": {
                "probabilities": {"column": "score", "select": 1},
                "label": {"column": "label"},
            },
        },
        "output": {"path": str(out_dir), "partition_by": [], "mode": "overwrite_partitions"},
        "runtime": {"batch_rows": batch_rows, "threads_per_task": threads_per_task},
        "spark": {
            "master": master,
            "conf": {"spark.ui.showConsoleProgress": "false", **(spark_conf or {})},
        },
    }
    return _merge(config, extra or {})


def write_job_config(path: Path, **kwargs) -> Path:
    """job_config(**kwargs) written as YAML to path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(job_config(**kwargs), sort_keys=False, default_flow_style=None))
    return path
