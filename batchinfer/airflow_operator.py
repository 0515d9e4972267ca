"""``BatchInferSubmitOperator``: a batchinfer job as an Airflow task (``SparkSubmitOperator`` underneath).

Importable by any DAG (``from batchinfer.airflow import BatchInferSubmitOperator``), in an Airflow
environment that has ``apache-airflow-providers-apache-spark`` and batchinfer installed without
its job dependencies (``pip install --no-deps batchinfer-*.whl``: this module and
``batchinfer.airflow`` need only the standard library, PyYAML and Airflow).

>>> score = BatchInferSubmitOperator(  # doctest: +SKIP
...     task_id="score", config="conf/base/churn.yaml", env="prod", retries=3)

What it does on each try:

- runs ``batchinfer/submit.py`` (shipped in the wheel) through spark-submit with ``--config``,
  ``--env``, the ``--set`` overrides (templated; default ``input.partitions.ds={{ ds }}``), the job's
  ``spark.conf`` as ``--conf``, ``--manifest-out`` and ``--attempt <dag/run/task/try/nonce>``;
- decides the outcome with :func:`batchinfer.airflow.decide`: only a manifest written by *this*
  try counts (a stale file from an earlier try or run is ignored); exit 1 or an unknown outcome
  raises ``AirflowException`` (Airflow retries), a failed gate (5), a lock or other output error (6,
  with the ``batchinfer unlock`` hint) and config/input/model/device errors raise
  ``AirflowFailException`` (no retry);
- XCom: ``return_value`` the manifest path; ``manifest`` (the manifest of this try, when
  readable), ``outcome`` (``succeeded``, ``gate_failed``, ``config_error``, ...,
  ``infrastructure_failure``), ``exit_code``, ``attempt``, ``manifest_path``.

The manifest goes by default under the output's own bookkeeping directory,
``<output>/_batchinfer/airflow/<dag_id>/<ds>/<try>.json`` (local outputs; client deploy mode, where
the driver runs on the Airflow worker). For remote outputs give ``manifest_out`` a path both sides
can read, or let the exit code decide (exit 0 is success, see ``decide``).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 2
    from airflow.exceptions import AirflowException, AirflowFailException

from batchinfer import airflow as bi

DEFAULT_OVERRIDES = ("input.partitions.ds={{ ds }}",)


class BatchInferSubmitOperator(SparkSubmitOperator):
    """Run a batchinfer job config with spark-submit; retry only what a retry can fix.

    :param config: the job YAML (as the Airflow worker sees it; parsed at DAG parse time for the
        ``spark.conf``, the app name and the output path).
    :param env: environment overlay (``conf/<env>/<name>``), passed on as ``--env``.
    :param overrides: ``--set`` items (templated); default ``["input.partitions.ds={{ ds }}"]``.
    :param manifest_out: where the job writes this try's manifest (templated); default under the
        output's ``_batchinfer/airflow/``.
    :param archive: ``env.tar.gz`` from ``batchinfer package`` (shipped with ``--archives``, used as
        the executors' Python); None: the nodes' own Python.
    :param config_arg: the config path as the driver sees it (cluster mode with ``files=``).
    Other keyword arguments go to ``SparkSubmitOperator`` (``conn_id``, ``conf`` merged over the
    job's ``spark.conf``, ``retries``, ...).
    """

    template_fields: Sequence[str] = (*SparkSubmitOperator.template_fields, "manifest_out")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        config: str | os.PathLike,
        env: str | None = None,
        overrides: Sequence[str] | None = None,
        manifest_out: str | None = None,
        archive: str | None = None,
        config_arg: str | None = None,
        application: str | None = None,
        conf: Mapping[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        submit = bi.spark_submit_kwargs(
            config,
            env=env,
            overrides=list(DEFAULT_OVERRIDES if overrides is None else overrides),
            application=application or bi.submit_application(),
            archive=archive,
            config_arg=config_arg,
        )
        merged_conf = {**submit.pop("conf"), **dict(conf or {})}
        if archive and "archives" not in kwargs:
            kwargs["archives"] = submit.pop("archives")
        submit.pop("archives", None)
        super().__init__(
            application=submit["application"],
            application_args=submit["application_args"],
            conf=merged_conf,
            name=name or submit["name"],
            **kwargs,
        )
        self.config = str(config)
        self.manifest_out = manifest_out
        self.output_path = bi.output_path_of(config, env=env)

    def _default_manifest_out(self, context) -> str | None:
        root = bi.local_output_path(self.output_path)
        if root is None:
            return None
        ti = context["ti"]
        ds = context.get("ds") or "no-ds"
        return str(root / "_batchinfer" / "airflow" / ti.dag_id / ds / f"{ti.try_number}.json")

    def execute(self, context):
        ti = context["ti"]
        attempt = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.try_number}/{uuid.uuid4().hex[:8]}"
        manifest_out = self.manifest_out or self._default_manifest_out(context)
        # The rendered job arguments, without what an earlier execute of this object added.
        base = getattr(self, "_job_args", None)
        if base is None:
            base = self._job_args = list(self.application_args or [])
        args = [*base, "--attempt", attempt]
        if manifest_out:
            args += ["--manifest-out", manifest_out]
        self.application_args = args
        ti.xcom_push(key="attempt", value=attempt)
        ti.xcom_push(key="manifest_path", value=manifest_out)
        error: BaseException | None = None
        try:
            super().execute(context)
        except AirflowException as exc:
            error = exc
        code = 0 if error is None else bi.exit_code_from_error(error)
        manifest = bi.manifest_of_attempt(bi.read_manifest(manifest_out), attempt)
        if manifest is None:  # e.g. exit 8: the job could not write --manifest-out; its run record
            manifest = bi.find_run_record(self.output_path, attempt)
        decision = bi.decide(code, manifest, attempt=attempt, output=self.output_path)
        ti.xcom_push(key="outcome", value=decision.outcome)
        ti.xcom_push(key="exit_code", value=decision.exit_code)
        ti.xcom_push(key="manifest", value=decision.manifest)
        self.log.info("batchinfer: %s (attempt %s)", decision.message, attempt)
        if decision.action == "success":
            return manifest_out
        if decision.action == "retry":
            raise AirflowException(decision.message) from error
        raise AirflowFailException(decision.message) from error
