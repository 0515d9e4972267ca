"""Helpers for running batchinfer jobs from Apache Airflow (``jobs/airflow/batch_scoring_dag.py``).

This module runs where Airflow runs, usually a different environment from the job's (Airflow
pulls pandas 3; the job pins pandas < 3). It therefore imports neither Airflow nor anything heavy
from batchinfer: only the standard library, plus PyYAML (which Airflow has) when a config is read.

What it provides:

- :func:`spark_submit_kwargs`: ``application``, ``application_args``, ``conf``, ``name``, ``archives``
  for ``SparkSubmitOperator``, built from a job config (the master comes from the Airflow Spark
  connection);
- :func:`exit_code_from_error` / :func:`should_retry`: the job's exit code, recovered from the
  ``AirflowException`` that ``SparkSubmitHook`` raises (``"... Error code is: 5."``), and whether a
  failure is worth a retry: only exit code 1 (infrastructure or unexpected) is;
- :func:`read_manifest` / :func:`outcome_of` / :func:`branch_for`: the run manifest and which
  downstream task to follow.

>>> kwargs = spark_submit_kwargs("conf/base/churn.yaml", env="prod",
...                              overrides=["input.partitions.ds={{ ds }}"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from batchinfer.layering import deep_merge

# Mirrors batchinfer.errors (kept literal here so this module imports nothing from the job stack).
EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_CONFIG = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_GATE = 5
EXIT_OUTPUT = 6
EXIT_DEVICE = 7

OUTCOMES: dict[int, str] = {
    EXIT_OK: "succeeded",
    EXIT_UNEXPECTED: "infrastructure_failure",
    EXIT_CONFIG: "config_error",
    EXIT_INPUT: "input_error",
    EXIT_MODEL: "model_error",
    EXIT_GATE: "gate_failed",
    EXIT_OUTPUT: "output_error",
    EXIT_DEVICE: "device_error",
}

# "Error code is: 5." (spark-submit's own exit status) and, on Kubernetes, the driver's.
_ERROR_CODE = re.compile(r"Error code is: (-?\d+)")
_K8S_CODE = re.compile(r"Kubernetes spark exit code is: (-?\d+)")

DEFAULT_APPLICATION = "jobs/score.py"
ARCHIVE_ALIAS = "environment"


def exit_code_from_error(error: BaseException | str | None) -> int | None:
    """The job's exit code from SparkSubmitHook's error message, or None when it has none.

    >>> exit_code_from_error("Cannot execute: spark-submit ... Error code is: 5.")
    5
    """
    if error is None:
        return None
    text = str(error)
    k8s = _K8S_CODE.search(text)
    if k8s and int(k8s.group(1)) != 0:
        return int(k8s.group(1))
    match = _ERROR_CODE.search(text)
    return int(match.group(1)) if match else None


def should_retry(exit_code: int | None) -> bool:
    """Retry infrastructure failures (exit 1, a killed driver, no code at all); never expected errors.

    Config, input, model, gate, output and device errors (2-7) fail the same way on every retry.
    """
    if exit_code is None:
        return True
    return exit_code not in (EXIT_CONFIG, EXIT_INPUT, EXIT_MODEL, EXIT_GATE, EXIT_OUTPUT, EXIT_DEVICE)


def outcome_of(exit_code: int | None) -> str:
    if exit_code is None:
        return "infrastructure_failure"
    return OUTCOMES.get(exit_code, "infrastructure_failure")


def _read_yaml(path: Path) -> dict:
    import yaml

    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a job config must be a YAML mapping")
    return data


def _layers(config: Path, env: str | None) -> dict:
    """Base file plus ``conf/<env>/<name>`` (same rule as batchinfer.config); no validation here:
    the job validates everything when it starts, and a config error fails there without retries."""
    data = _read_yaml(config)
    if env:
        base_dir = config.parent
        root = base_dir.parent if base_dir.name == "base" else base_dir
        overlay = root / env / config.name
        if overlay.exists():
            data = deep_merge(data, _read_yaml(overlay))
    return data


def spark_submit_kwargs(
    config: str | os.PathLike,
    *,
    env: str | None = None,
    overrides: Sequence[str] = (),
    manifest_out: str | None = None,
    application: str = DEFAULT_APPLICATION,
    archive: str | None = None,
    config_arg: str | None = None,
) -> dict:
    """Keyword arguments for ``SparkSubmitOperator`` that run ``config`` through ``jobs/score.py``.

    - ``conf``: the job's ``spark.conf`` (strings, booleans lower-cased), plus
      ``spark.pyspark.python=./environment/bin/python`` when an ``archive`` (``batchinfer package``)
      is shipped;
    - ``application_args``: ``--config``, ``--env``, every ``--set`` (may hold Jinja such as
      ``{{ ds }}``: the operator templates ``application_args``), ``--manifest-out``;
    - ``name``: ``spark.app_name`` or ``batchinfer:<job>``.

    ``config_arg`` is the config path as the driver sees it (e.g. a bare file name when the YAML
    travels with ``--files`` in cluster mode); it defaults to ``config``.
    """
    path = Path(config)
    data = _layers(path, env)
    spark = data.get("spark") or {}
    conf = {
        str(k): (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in (spark.get("conf") or {}).items()
        # ${env:...} values are resolved (and redacted) by the job itself, not put on a command line.
        if "${env:" not in str(v)
    }
    kwargs: dict = {"application": str(application)}
    if archive:
        conf.setdefault("spark.pyspark.python", f"./{ARCHIVE_ALIAS}/bin/python")
        kwargs["archives"] = f"{archive}#{ARCHIVE_ALIAS}"
    args = ["--config", str(config_arg or config)]
    if env:
        args += ["--env", env]
    for item in overrides:
        args += ["--set", item]
    if manifest_out:
        args += ["--manifest-out", manifest_out]
    kwargs["application_args"] = args
    kwargs["conf"] = conf
    kwargs["name"] = spark.get("app_name") or f"batchinfer:{data.get('job', 'job')}"
    return kwargs


def read_manifest(path: str | os.PathLike | None) -> dict | None:
    """The run manifest JSON at ``path``, or None when it is missing or unreadable."""
    if not path:
        return None
    try:
        with open(path) as fh:
            doc = json.load(fh)
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def outcome_from_manifest(manifest: Mapping | None) -> str | None:
    """``succeeded``/``dry_run``/``gate_failed``/... from a manifest (None without one)."""
    if not manifest:
        return None
    status = manifest.get("status")
    if status == "failed":
        code = (manifest.get("error") or {}).get("exit_code")
        return outcome_of(code if isinstance(code, int) else None)
    return status if isinstance(status, str) else None


def branch_for(outcome: str | None, *, on_success: str, on_gate_failed: str, on_failure: str) -> str:
    """Which task a branch follows: success (and dry runs), a failed gate, anything else."""
    if outcome in ("succeeded", "dry_run"):
        return on_success
    if outcome == "gate_failed":
        return on_gate_failed
    return on_failure
