"""Daily batch scoring with batchinfer on Spark (Airflow 3; Airflow 2.7+ works too).

    score ──► route ──► publish              (succeeded)
      │           ├──► alert_gate_failed    (a data-quality / drift / prediction gate failed: exit 5)
      │           └──► alert_failure        (config, input, model, output errors; infrastructure
      │                                      failures once the retries are spent)
      └──► fail_run                          (marks the DAG run failed whenever ``score`` failed)

- ``{{ ds }}`` selects the partition: ``--set input.partitions.ds={{ ds }}``.
- Retries: only infrastructure failures (exit 1: a lost executor, a killed driver, a network
  error) are retried. Exit codes 2-7 (config, input, model, gate, output, device) would fail the
  same way again, so ``score`` fails at once with ``AirflowFailException``.
- XCom: ``score`` returns the manifest path (``return_value``) and pushes ``manifest_path`` and
  ``outcome``; the manifest is written by the job with ``--manifest-out`` (client deploy mode: the
  driver runs on the Airflow worker). In YARN/Kubernetes cluster mode, point ``MANIFEST_DIR`` at
  storage both can read, or read ``<output>/_batchinfer/last_run.json``.

Settings come from the environment of the Airflow scheduler/worker:
``BATCHINFER_HOME`` (checkout or unpacked release; default: this repository),
``BATCHINFER_CONFIG`` (default ``conf/base/churn.yaml``), ``BATCHINFER_ENV`` (default ``prod``),
``BATCHINFER_ARCHIVE`` (``env.tar.gz`` from ``batchinfer package``; empty: the nodes' own Python),
``BATCHINFER_MANIFEST_DIR`` (default ``/tmp/batchinfer/manifests``). The Spark master comes from
the Airflow connection ``spark_default`` (e.g. ``yarn``).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

try:  # Airflow 3
    from airflow.sdk import DAG, TriggerRule, task
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.exceptions import AirflowException, AirflowFailException
    from airflow.utils.trigger_rule import TriggerRule


HOME = Path(os.environ.get("BATCHINFER_HOME", Path(__file__).resolve().parents[2]))
CONFIG = os.environ.get("BATCHINFER_CONFIG", "conf/base/churn.yaml")
ENV = os.environ.get("BATCHINFER_ENV", "prod")
ARCHIVE = os.environ.get("BATCHINFER_ARCHIVE") or None
MANIFEST_DIR = os.environ.get("BATCHINFER_MANIFEST_DIR", "/tmp/batchinfer/manifests")

try:  # batchinfer.airflow needs only the standard library and PyYAML, no job dependencies
    from batchinfer import airflow as bi
except ImportError:  # Airflow runs in its own venv: use the checkout's copy
    sys.path.insert(0, str(HOME))
    from batchinfer import airflow as bi


class BatchInferSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator that maps batchinfer's exit codes to retry / no retry and reports the outcome.

    SparkSubmitHook raises ``AirflowException("Cannot execute: ... Error code is: N.")``: the code
    is read back from the message (and the manifest's status, when readable, wins).
    """

    template_fields = (*SparkSubmitOperator.template_fields, "manifest_out")

    def __init__(self, *, manifest_out: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.manifest_out = manifest_out

    def execute(self, context):
        ti = context["ti"]
        ti.xcom_push(key="manifest_path", value=self.manifest_out)
        try:
            super().execute(context)
        except AirflowException as exc:
            code = bi.exit_code_from_error(exc)
            outcome = bi.outcome_from_manifest(bi.read_manifest(self.manifest_out)) or bi.outcome_of(code)
            ti.xcom_push(key="outcome", value=outcome)
            if outcome == "gate_failed" or not bi.should_retry(code):
                raise AirflowFailException(
                    f"batchinfer exited with code {code} ({outcome}); not retried"
                ) from exc
            raise  # infrastructure failure: Airflow retries
        manifest = bi.read_manifest(self.manifest_out)
        ti.xcom_push(key="outcome", value=bi.outcome_from_manifest(manifest) or "succeeded")
        return self.manifest_out


with DAG(
    dag_id="batchinfer_churn_scoring",
    description="Score yesterday's churn events with batchinfer on Spark",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,  # one writer per output table (batchinfer also locks it)
    default_args={
        "owner": "ml-platform",
        "retries": 3,
        "retry_delay": timedelta(minutes=5),
        "retry_exponential_backoff": True,
    },
    tags=["batchinfer", "scoring"],
) as dag:
    manifest_out = MANIFEST_DIR + "/{{ dag.dag_id }}/{{ ds }}/{{ ti.try_number }}.json"
    submit = bi.spark_submit_kwargs(
        HOME / CONFIG,
        env=ENV,
        overrides=["input.partitions.ds={{ ds }}"],
        manifest_out=manifest_out,
        application=str(HOME / bi.DEFAULT_APPLICATION),
        archive=ARCHIVE,
    )
    score = BatchInferSubmitOperator(
        task_id="score",
        conn_id="spark_default",
        manifest_out=manifest_out,
        execution_timeout=timedelta(hours=3),
        **submit,
    )

    @task.branch(trigger_rule=TriggerRule.ALL_DONE)
    def route(ti=None) -> str:
        outcome = ti.xcom_pull(task_ids="score", key="outcome")
        if outcome is None:  # the task died before pushing: look at the manifest itself
            outcome = bi.outcome_from_manifest(
                bi.read_manifest(ti.xcom_pull(task_ids="score", key="manifest_path"))
            )
        return bi.branch_for(
            outcome, on_success="publish", on_gate_failed="alert_gate_failed", on_failure="alert_failure"
        )

    @task
    def publish(ti=None) -> str:
        """Downstream consumers start here (e.g. a dataset/asset update); the manifest says what was written."""
        path = ti.xcom_pull(task_ids="score", key="manifest_path")
        manifest = bi.read_manifest(path) or {}
        print(f"published run {manifest.get('run_id')}: {manifest.get('rows_out')} rows ({path})")
        return path

    @task
    def alert_gate_failed(ti=None) -> None:
        """Replace the print with your alerting (Slack, PagerDuty, e-mail): the failed checks are listed."""
        path = ti.xcom_pull(task_ids="score", key="manifest_path")
        manifest = bi.read_manifest(path) or {}
        failed = [
            o for o in (manifest.get("checks") or {}).get("outcomes", []) if o.get("status") == "failed"
        ]
        print(f"ALERT batchinfer gate failed for {ti.dag_id} run {manifest.get('run_id')}: {failed} ({path})")

    @task
    def alert_failure(ti=None) -> None:
        outcome = ti.xcom_pull(task_ids="score", key="outcome")
        print(f"ALERT batchinfer scoring failed ({outcome}); see the score task's log")

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def fail_run() -> None:
        raise AirflowFailException("score failed: the DAG run is marked failed after the alert")

    score >> route() >> [publish(), alert_gate_failed(), alert_failure()]
    score >> fail_run()
