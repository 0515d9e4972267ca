"""Helpers for running batchinfer jobs from Apache Airflow (``BatchInferSubmitOperator``, the example DAG).

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
  downstream task to follow;
- :func:`decide`: what a finished try means (success / retry / fail, and why), from spark-submit's
  exit code and a manifest *of that try* (its ``attempt`` must match; a stale one is ignored).

The Airflow operator itself, :class:`BatchInferSubmitOperator`, lives in
``batchinfer.airflow_operator`` (it imports Airflow) and is importable from here as well:
``from batchinfer.airflow import BatchInferSubmitOperator``.

>>> kwargs = spark_submit_kwargs("conf/base/churn.yaml", env="prod",
...                              overrides=["input.partitions.ds={{ ds }}"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
EXIT_MANIFEST_NOT_WRITTEN = 8

OUTCOMES: dict[int, str] = {
    EXIT_OK: "succeeded",
    EXIT_UNEXPECTED: "infrastructure_failure",
    EXIT_CONFIG: "config_error",
    EXIT_INPUT: "input_error",
    EXIT_MODEL: "model_error",
    EXIT_GATE: "gate_failed",
    EXIT_OUTPUT: "output_error",
    EXIT_DEVICE: "device_error",
    EXIT_MANIFEST_NOT_WRITTEN: "succeeded",  # committed; only the --manifest-out copy is missing
}

# "Error code is: 5." (spark-submit's own exit status) and, on Kubernetes, the driver's.
_ERROR_CODE = re.compile(r"Error code is: (-?\d+)")
_K8S_CODE = re.compile(r"Kubernetes spark exit code is: (-?\d+)")

ARCHIVE_ALIAS = "environment"


def submit_application() -> str:
    """The spark-submit primary resource shipped in the wheel: ``batchinfer/submit.py`` (absolute)."""
    return str(Path(__file__).resolve().with_name("submit.py"))


DEFAULT_APPLICATION = submit_application()


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
    return exit_code not in (
        EXIT_CONFIG,
        EXIT_INPUT,
        EXIT_MODEL,
        EXIT_GATE,
        EXIT_OUTPUT,
        EXIT_DEVICE,
        EXIT_MANIFEST_NOT_WRITTEN,
    )


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


def output_path_of(config: str | os.PathLike, *, env: str | None = None) -> str | None:
    """``output.path`` of a job config (with its ``env`` overlay), or None when it has none."""
    output = _layers(Path(config), env).get("output")
    path = output.get("path") if isinstance(output, dict) else None
    return str(path) if path else None


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
    """Keyword arguments for ``SparkSubmitOperator`` that run ``config`` through ``batchinfer/submit.py``.

    - ``conf``: the job's ``spark.conf`` (strings, booleans lower-cased), plus
      ``spark.pyspark.python=./environment/bin/python`` when an ``archive`` (``batchinfer package``)
      is shipped;
    - ``application_args``: ``--config``, ``--env``, every ``--set`` (may hold Jinja such as
      ``{{ ds }}``: the operator templates ``application_args``), ``--manifest-out``;
    - ``name``: ``spark.app_name`` or ``batchinfer:<job>``;
    - ``application``: ``batchinfer/submit.py`` of this installation unless given.

    ``--set spark.conf.<key>=<value>`` overrides (without Jinja) are applied to ``conf`` too:
    spark-submit's ``--conf`` wins over the job config, so the override must travel there.

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
    from batchinfer.layering import split_key_path

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "{{" in item:
            continue
        try:
            parts = split_key_path(key.strip())
        except ValueError:
            continue  # the job reports the bad override as a config error
        if len(parts) == 3 and parts[:2] == ["spark", "conf"]:
            conf[parts[2]] = raw.strip().strip("'\"")
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


# --------------------------------------------------------------------------- the outcome of a try


@dataclass(frozen=True)
class Decision:
    """What a finished try means. ``action``: ``success`` | ``retry`` | ``fail``."""

    action: str
    outcome: str
    exit_code: int | None
    message: str
    manifest: dict | None = None

    @property
    def gate_failed(self) -> bool:
        return self.outcome == "gate_failed"


def manifest_of_attempt(manifest: Mapping | None, attempt: str) -> dict | None:
    """``manifest`` if it was written by the try ``attempt`` (a stale file from another try is None)."""
    if isinstance(manifest, Mapping) and manifest.get("attempt") == attempt:
        return dict(manifest)
    return None


def local_output_path(path: str | None) -> Path | None:
    """A local filesystem path for ``output.path`` (plain or ``file://``), or None (s3a://, ${env:})."""
    if not path or "${" in path:
        return None
    if path.startswith("file://"):
        return Path(path[len("file://") :])
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
        return None
    return Path(path).absolute()


def find_run_record(output: str | os.PathLike | None, attempt: str, *, newest: int = 50) -> dict | None:
    """The run manifest the job wrote for ``attempt`` under ``<output>/_batchinfer/`` (local outputs).

    Looks at ``last_run.json`` first, then the ``newest`` run records (run ids sort by start time).
    """
    root = local_output_path(str(output)) if output else None
    if root is None:
        return None
    meta = root / "_batchinfer"
    found = manifest_of_attempt(read_manifest(meta / "last_run.json"), attempt)
    if found:
        return found
    try:
        runs = sorted((p for p in (meta / "runs").iterdir() if p.is_dir()), reverse=True)[:newest]
    except OSError:
        return None
    for run in runs:
        found = manifest_of_attempt(read_manifest(run / "manifest.json"), attempt)
        if found:
            return found
    return None


def decide(
    exit_code: int | None, manifest: Mapping | None, *, attempt: str, output: str | None = None
) -> Decision:
    """Success, retry or fail for one try, from its exit code and *its own* manifest.

    - a manifest counts only when its ``attempt`` is this try's (any other is stale and ignored);
      when it counts, its status and ``error.exit_code`` win over spark-submit's code (in YARN
      cluster mode spark-submit says 1 for every failure);
    - without one: exit 0 and 8 (committed, manifest copy missing) are success; 5 is a failed gate;
      6 an output error (a lock: ``batchinfer unlock``); 2, 3, 4, 7 fail without retry;
      1, no code at all (a killed driver) or anything else is an infrastructure failure: retry.

    >>> decide(1, {"status": "succeeded", "attempt": "old"}, attempt="new").action
    'retry'
    """
    mine = manifest_of_attempt(manifest, attempt)
    code = exit_code
    if mine is not None:
        status = mine.get("status")
        if status in ("succeeded", "dry_run"):
            return Decision(
                "success", status, exit_code, f"batchinfer run {mine.get('run_id')}: {status}", mine
            )
        err_code = (mine.get("error") or {}).get("exit_code")
        if status == "gate_failed":
            code = EXIT_GATE
        elif isinstance(err_code, int):
            code = err_code
    outcome = outcome_of(code)
    where = f" (run {mine.get('run_id')})" if mine else ""
    error = (mine or {}).get("error") or {}
    detail = f": {error.get('message')}" if error.get("message") else ""
    if code in (EXIT_OK, EXIT_MANIFEST_NOT_WRITTEN):
        note = (
            "" if mine else " (no manifest of this try was readable; the job's exit code says it committed)"
        )
        return Decision("success", "succeeded", exit_code, f"batchinfer succeeded{note}", mine)
    if code == EXIT_GATE:
        msg = f"batchinfer check gate failed{where}{detail}; not retried: the same data fails the same way"
        return Decision("fail", outcome, code, msg, mine)
    if code == EXIT_OUTPUT:
        hint = error.get("hint") or (
            f"if no other run is writing it, clear a stale lock with `batchinfer unlock {output}`"
            if output
            else "if no other run is writing the output, clear a stale lock with `batchinfer unlock OUTPUT`"
        )
        msg = f"batchinfer output error{where}{detail}; not retried. Fix: {hint}, then clear this task"
        return Decision("fail", outcome, code, msg, mine)
    if not should_retry(code):
        msg = f"batchinfer exited with code {code} ({outcome}){where}{detail}; not retried"
        return Decision("fail", outcome, code, msg, mine)
    known = "no exit code" if code is None else f"exit code {code}"
    msg = f"batchinfer infrastructure failure or unknown outcome ({known}){where}{detail}; retrying"
    return Decision("retry", "infrastructure_failure", code, msg, mine)


def __getattr__(name: str):
    # The operator imports Airflow: load it only when asked for, so this module stays stdlib-only.
    if name == "BatchInferSubmitOperator":
        from batchinfer.airflow_operator import BatchInferSubmitOperator

        return BatchInferSubmitOperator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
