"""Daily batch scoring with batchinfer on Spark (Airflow 3; Airflow 2.7+ works too).

    score ──► route ──► publish              (succeeded)
      │           ├──► alert_gate_failed    (a data-quality / drift / prediction gate failed: exit 5)
      │           └──► alert_failure        (config, input, model, output errors; infrastructure
      │                                      failures once the retries are spent)
      └──► fail_run                          (marks the DAG run failed whenever ``score`` failed)

``score`` is :class:`batchinfer.airflow.BatchInferSubmitOperator` (shipped in the package, any DAG
can import it):

- ``{{ ds }}`` selects the partition (``--set input.partitions.ds={{ ds }}``, the default);
- retries: only infrastructure failures (exit 1) and unknown outcomes are retried; exit codes 2-7
  fail at once (``AirflowFailException``), 6 with the ``batchinfer unlock`` hint;
- each try passes ``--attempt`` and accepts only a manifest written by that try, so a file left
  by an earlier try or run never decides the outcome;
- XCom: ``manifest`` (this try's manifest), ``outcome``, ``exit_code``, ``manifest_path``
  (default ``<output>/_batchinfer/airflow/<dag_id>/<ds>/<try>.json``; client deploy mode).

Settings come from the environment of the Airflow scheduler/worker:
``BATCHINFER_HOME`` (checkout or unpacked release; default: this repository),
``BATCHINFER_CONFIG`` (default ``conf/base/churn.yaml``, relative to ``BATCHINFER_HOME``),
``BATCHINFER_ENV`` (default ``prod``; empty: no overlay),
``BATCHINFER_ARCHIVE`` (``env.tar.gz`` from ``batchinfer package``; empty: the nodes' own Python),
``BATCHINFER_MANIFEST_DIR`` (optional: manifests there instead of under the output),
``BATCHINFER_RETRIES`` (3) and ``BATCHINFER_RETRY_DELAY_S`` (300). The Spark master comes from the
Airflow connection ``spark_default`` (e.g. ``yarn``).
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta
from pathlib import Path

try:  # Airflow 3
    from airflow.sdk import DAG, TriggerRule, task
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.exceptions import AirflowFailException
    from airflow.utils.trigger_rule import TriggerRule


HOME = Path(os.environ.get("BATCHINFER_HOME", Path(__file__).resolve().parents[2]))
CONFIG = HOME / os.environ.get("BATCHINFER_CONFIG", "conf/base/churn.yaml")
ENV = os.environ.get("BATCHINFER_ENV", "prod") or None
ARCHIVE = os.environ.get("BATCHINFER_ARCHIVE") or None
MANIFEST_DIR = os.environ.get("BATCHINFER_MANIFEST_DIR") or None
RETRIES = int(os.environ.get("BATCHINFER_RETRIES", "3"))
RETRY_DELAY = timedelta(seconds=float(os.environ.get("BATCHINFER_RETRY_DELAY_S", "300")))

try:  # an installed batchinfer (pip install --no-deps batchinfer-*.whl in the Airflow environment)
    from batchinfer import airflow as bi
except ImportError:  # otherwise the checkout's copy (needs only the standard library and PyYAML)
    sys.path.insert(0, str(HOME))
    from batchinfer import airflow as bi


with DAG(
    dag_id="batchinfer_churn_scoring",
    description="Score yesterday's churn events with batchinfer on Spark",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,  # one writer per output table (batchinfer also locks it)
    default_args={
        "owner": "ml-platform",
        "retries": RETRIES,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": True,
    },
    tags=["batchinfer", "scoring"],
) as dag:
    score = bi.BatchInferSubmitOperator(
        task_id="score",
        config=CONFIG,
        env=ENV,
        archive=ARCHIVE,
        manifest_out=(MANIFEST_DIR + "/{{ dag.dag_id }}/{{ ds }}/{{ ti.try_number }}.json")
        if MANIFEST_DIR
        else None,
        conn_id="spark_default",
        execution_timeout=timedelta(hours=3),
    )

    @task.branch(trigger_rule=TriggerRule.ALL_DONE)
    def route(ti=None) -> str:
        # None when the task died before deciding (killed worker): alert_failure. Never a manifest
        # file read here: it could be a stale one from another try.
        outcome = ti.xcom_pull(task_ids="score", key="outcome")
        return bi.branch_for(
            outcome, on_success="publish", on_gate_failed="alert_gate_failed", on_failure="alert_failure"
        )

    @task
    def publish(ti=None) -> str:
        """Downstream consumers start here (e.g. a dataset/asset update); the manifest says what was written."""
        path = ti.xcom_pull(task_ids="score", key="manifest_path")
        manifest = ti.xcom_pull(task_ids="score", key="manifest") or {}
        print(f"published run {manifest.get('run_id')}: {manifest.get('rows_out')} rows ({path})")
        return path

    @task
    def alert_gate_failed(ti=None) -> None:
        """Replace the print with your alerting (Slack, PagerDuty, e-mail): the failed checks are listed."""
        path = ti.xcom_pull(task_ids="score", key="manifest_path")
        manifest = ti.xcom_pull(task_ids="score", key="manifest") or {}
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
