"""The example DAG parses in a real Airflow 3 (own venv: Airflow pulls pandas 3) and maps exit codes.

The venv ``.venv-airflow`` (git-ignored) is created on first use, ~40 s and ~660 MB; later runs reuse it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-airflow"
PY = VENV / "bin" / "python"
PACKAGES = ["apache-airflow", "apache-airflow-providers-apache-spark"]
pytestmark = pytest.mark.slow


def _airflow_python() -> Path:
    probe = [str(PY), "-c", "import airflow.providers.apache.spark.operators.spark_submit"]
    if PY.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return PY
    if not PY.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    proc = subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, f"installing Airflow into {VENV} failed:\n{proc.stderr[-3000:]}"
    return PY


CHECK = textwrap.dedent(
    """
    import json, sys
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older Airflow
        from airflow.models import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}
    dag = bag.dags.get("batchinfer_churn_scoring")
    if dag is not None:
        out["tasks"] = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
        out["trigger_rules"] = {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks}
        score = dag.get_task("score")
        out["score"] = {
            "type": type(score).__name__, "retries": score.retries,
            "application": score.application, "application_args": score.application_args,
            "conf": score.conf, "name": score._name if hasattr(score, "_name") else score.name,
        }
        import jinja2
        out["rendered_args"] = [
            jinja2.Template(a).render(ds="2026-11-28", dag=dag, ti={"try_number": 1}) for a in score.application_args
        ]

        # Exit-code mapping: run the operator's execute with spark-submit replaced by a failure.
        from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
        class TI:
            def __init__(self): self.pushed = {}
            def xcom_push(self, key, value): self.pushed[key] = value
        score.manifest_out = "/nonexistent/manifest.json"
        out["mapping"] = {}
        for code in (1, 2, 5, 7):
            def fail(self, context, code=code):
                raise AirflowException(f"Cannot execute: spark-submit ... Error code is: {code}.")
            SparkSubmitOperator.execute = fail
            ti = TI()
            try:
                score.execute({"ti": ti})
            except Exception as exc:
                out["mapping"][code] = [type(exc).__name__, ti.pushed.get("outcome")]
        SparkSubmitOperator.execute = lambda self, context: None
        ti = TI()
        out["success"] = [score.execute({"ti": ti}), ti.pushed]
    print("RESULT " + json.dumps(out))
    """
)


def test_dag_parses_in_airflow(tmp_path):
    python = _airflow_python()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "jobs" / "airflow"),
        BATCHINFER_MANIFEST_DIR="/data/manifests",
    )
    script = CHECK.replace(
        "import json, sys",
        "import json, sys\ntry:\n    from airflow.sdk.exceptions import AirflowException\n"
        "except ImportError:\n    from airflow.exceptions import AirflowException",
        1,
    )
    proc = subprocess.run(
        [str(python), "-c", script, str(ROOT / "jobs" / "airflow")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])

    assert out["import_errors"] == {}
    assert out["dags"] == ["batchinfer_churn_scoring"]
    assert out["tasks"] == {
        "score": ["fail_run", "route"],
        "route": ["alert_failure", "alert_gate_failed", "publish"],
        "publish": [],
        "alert_gate_failed": [],
        "alert_failure": [],
        "fail_run": [],
    }
    assert out["trigger_rules"]["route"] == "all_done"
    assert out["trigger_rules"]["fail_run"] == "one_failed"

    score = out["score"]
    assert score["type"] == "BatchInferSubmitOperator" and score["retries"] == 3
    assert score["application"] == str(ROOT / "jobs" / "score.py")
    assert score["conf"]["spark.executor.memory"] == "8g"  # from conf/prod/churn.yaml
    assert score["conf"]["spark.dynamicAllocation.enabled"] == "true"
    assert score["name"] == "churn-scoring-prod"
    rendered = out["rendered_args"]
    assert rendered[:4] == ["--config", str(ROOT / "conf" / "base" / "churn.yaml"), "--env", "prod"]
    assert rendered[rendered.index("--set") + 1] == "input.partitions.ds=2026-11-28"
    assert rendered[rendered.index("--manifest-out") + 1].startswith(
        "/data/manifests/batchinfer_churn_scoring/2026-11-28/"
    )

    # exit 1 is retried (plain AirflowException); gate/config/device failures are not.
    assert out["mapping"] == {
        "1": ["AirflowException", "infrastructure_failure"],
        "2": ["AirflowFailException", "config_error"],
        "5": ["AirflowFailException", "gate_failed"],
        "7": ["AirflowFailException", "device_error"],
    }
    path, pushed = out["success"]
    assert path == "/nonexistent/manifest.json"
    assert pushed == {"manifest_path": path, "outcome": "succeeded"}
