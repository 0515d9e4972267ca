"""The example DAG in a real Airflow 3 (own venv: Airflow pulls pandas 3): it parses, and
``airflow dags test`` runs it end to end with the real operator, the project's spark-submit and
local Spark (no mocks): success, a failed gate (exit 5: no retry, gate branch), an infrastructure
failure (exit 1: retried, and a stale "succeeded" manifest of an earlier try is ignored).

The venv ``.venv-airflow`` (git-ignored, ~660 MB) is installed in the background while the rest of
the suite runs (tests/support/airflow_venv.py; these tests run last); later runs reuse it. ``airflow dags test`` of Airflow 3.3 does run retries (after ``retry_delay``, which the
DAG reads from ``BATCHINFER_RETRY_DELAY_S``): the retried scenario asserts on the second try.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import airflow_venv
from tests.support.airflow_venv import PACKAGES, PY, ROOT, VENV

DAG_ID = "batchinfer_churn_scoring"
pytestmark = pytest.mark.slow


def _airflow_python() -> Path:
    airflow_venv.wait_background()  # started by tests/conftest.py when these tests were collected
    if airflow_venv.installed():
        return PY
    if not PY.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=300)
    proc = subprocess.run(
        [str(PY), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if proc.returncode != 0:
        reach = subprocess.run(
            [str(PY), "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(VENV / "probe"), "six"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if reach.returncode != 0:
            pytest.skip(
                f"the package index cannot be reached to install Airflow: {reach.stderr.strip()[-300:]}"
            )
    assert proc.returncode == 0, f"installing Airflow into {VENV} failed:\n{proc.stderr[-3000:]}"
    return PY


def _base_env(airflow_home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "PYSPARK"))}
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "jobs" / "airflow"),
    )
    return env


CHECK = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(dag_folder=sys.argv[1])
    out = {"import_errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids)}
    dag = bag.dags.get("batchinfer_churn_scoring")
    if dag is not None:
        out["tasks"] = {t.task_id: sorted(t.downstream_task_ids) for t in dag.tasks}
        out["trigger_rules"] = {t.task_id: getattr(t.trigger_rule, "value", t.trigger_rule) for t in dag.tasks}
        score = dag.get_task("score")
        out["score"] = {
            "type": type(score).__name__, "module": type(score).__module__, "retries": score.retries,
            "application": score.application, "application_args": score.application_args,
            "conf": score.conf, "name": score.name, "template_fields": list(score.template_fields),
        }
        import jinja2
        out["rendered_args"] = [jinja2.Template(a).render(ds="2026-11-28") for a in score.application_args]
    print("RESULT " + json.dumps(out))
    """
)


def test_dag_parses_in_airflow(tmp_path):
    python = _airflow_python()
    env = _base_env(tmp_path / "airflow")
    proc = subprocess.run(
        [str(python), "-c", CHECK, str(ROOT / "jobs" / "airflow")],
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
    assert out["dags"] == [DAG_ID]
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
    # The packaged operator, not a copy inside the DAG file.
    assert score["type"] == "BatchInferSubmitOperator" and score["module"] == "batchinfer.airflow_operator"
    assert score["retries"] == 3 and "manifest_out" in score["template_fields"]
    assert score["application"] == str(ROOT / "batchinfer" / "submit.py")  # ships with the wheel
    assert score["conf"]["spark.executor.memory"] == "8g"  # from conf/prod/churn.yaml
    assert score["conf"]["spark.dynamicAllocation.enabled"] == "true"
    assert score["name"] == "churn-scoring-prod"
    rendered = out["rendered_args"]
    assert rendered[:4] == ["--config", str(ROOT / "conf" / "base" / "churn.yaml"), "--env", "prod"]
    assert rendered[rendered.index("--set") + 1] == "input.partitions.ds=2026-11-28"


# --------------------------------------------------------------------------- airflow dags test


@pytest.fixture(scope="module")
def airflow_site(tmp_path_factory):
    """A migrated Airflow home, the job's data and two configs (plain, and one whose gate fails)."""
    from tests.support import models
    from tests.support.data import write_partitioned

    python = _airflow_python()
    root = tmp_path_factory.mktemp("airflow-dags-test")
    home = root / "airflow"
    data = write_partitioned(
        root / "events", days=("2026-11-26", "2026-11-27", "2026-11-28"), files_per_day=1, rows_per_file=40
    )
    model, _ = models.linear_classifier(root / "model.onnx", 4)
    base = textwrap.dedent(
        f"""\
        job: airflow-test
        input: {{path: {data}, passthrough: [id, ds]}}
        model:
          path: {model}
          inputs: {{input: {{columns: [f0, f1, f2, f3]}}}}
          outputs: {{probabilities: {{column: score, select: 1}}}}
        output: {{path: {root / "out"}, partition_by: [ds]}}
        spark: {{conf: {{spark.ui.enabled: false}}}}
        """
    )
    (root / "job.yaml").write_text(base)
    (root / "gate.yaml").write_text(
        base + "checks: {output: [{expect: between, column: score, min: 0, max: 0.01}]}\n"
    )
    spark_home = Path(__import__("pyspark").__file__).parent
    env = _base_env(home)
    env.update(
        # The Airflow connection names the master; spark-submit is the project's (its SPARK_HOME).
        AIRFLOW_CONN_SPARK_DEFAULT=json.dumps({"conn_type": "spark", "host": "local[2]"}),
        SPARK_HOME=str(spark_home),
        PATH=f"{spark_home / 'bin'}{os.pathsep}{env['PATH']}",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_WORKER_DIR=str(root / "spark-work"),
        BATCHINFER_ENV="",
        BATCHINFER_RETRIES="2",
        BATCHINFER_RETRY_DELAY_S="1",
    )
    airflow = str(python.parent / "airflow")
    proc = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"root": root, "home": home, "env": env, "airflow": airflow}


def _dags_test(site, ds: str, config: str, **extra_env) -> dict:
    env = {**site["env"], "BATCHINFER_CONFIG": str(site["root"] / config), **extra_env}
    proc = subprocess.run(
        [site["airflow"], "dags", "test", DAG_ID, ds],
        cwd=site["root"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    db = sqlite3.connect(site["home"] / "airflow.db")
    try:
        (run_id,) = db.execute(
            "select run_id from dag_run where dag_id = ? and logical_date like ? order by id desc limit 1",
            (DAG_ID, f"{ds}%"),
        ).fetchone()
        tis = {
            task: (state, tries)
            for task, state, tries in db.execute(
                "select task_id, state, try_number from task_instance where dag_id = ? and run_id = ?",
                (DAG_ID, run_id),
            )
        }
        xcom = {  # a JSON column: sqlite hands numbers back as numbers
            key: json.loads(value) if isinstance(value, (str, bytes)) else value
            for key, value in db.execute(
                "select key, value from xcom where dag_id = ? and run_id = ? and task_id = 'score'",
                (DAG_ID, run_id),
            )
        }
    finally:
        db.close()
    return {
        "rc": proc.returncode,
        "log": proc.stdout + proc.stderr,
        "tis": tis,
        "xcom": xcom,
        "run_id": run_id,
    }


def _manifest_dir(site, ds: str) -> Path:
    return site["root"] / "out" / "_batchinfer" / "airflow" / DAG_ID / ds


def test_dags_test_success_gate_failure_and_retried_infrastructure_failure(airflow_site):
    site = airflow_site
    # 1. Success on a fresh worker: the manifest directory (under the output's _batchinfer/) does
    #    not exist before the run; the job creates it.
    assert not _manifest_dir(site, "2026-11-28").exists()
    res = _dags_test(site, "2026-11-28", "job.yaml")
    assert res["rc"] == 0, res["log"][-5000:]
    assert res["tis"]["score"] == ("success", 1)
    assert res["tis"]["publish"] == ("success", 1)
    assert res["tis"]["alert_gate_failed"][0] == res["tis"]["alert_failure"][0] == "skipped"
    assert res["tis"]["fail_run"][0] == "skipped"
    xcom = res["xcom"]
    assert xcom["outcome"] == "succeeded" and xcom["exit_code"] == 0
    path = Path(xcom["manifest_path"])
    assert path == _manifest_dir(site, "2026-11-28") / "1.json" and xcom["return_value"] == str(path)
    on_disk = json.loads(path.read_text())
    assert on_disk["attempt"] == xcom["attempt"] == xcom["manifest"]["attempt"]
    assert xcom["attempt"].startswith(f"{DAG_ID}/{res['run_id']}/score/1/")
    assert on_disk["status"] == "succeeded" and on_disk["rows_out"] == 40
    assert "unexpected error" not in res["log"]

    # 2. A failed gate (exit 5): one try only, the gate branch, the DAG run failed.
    res = _dags_test(site, "2026-11-26", "gate.yaml")
    assert res["rc"] != 0  # "DagRun failed"
    assert res["tis"]["score"] == ("failed", 1)  # AirflowFailException: not retried
    assert res["tis"]["alert_gate_failed"] == ("success", 1)
    assert res["tis"]["publish"][0] == res["tis"]["alert_failure"][0] == "skipped"
    assert res["tis"]["fail_run"] == ("failed", 1)
    assert res["xcom"]["outcome"] == "gate_failed" and res["xcom"]["exit_code"] == 5
    assert res["xcom"]["manifest"]["status"] == "gate_failed"
    assert "ALERT batchinfer gate failed" in res["log"]
    assert not (site["root"] / "out" / "ds=2026-11-26").exists()

    # 3. An infrastructure failure on the first try (exit 1, no manifest written), with a stale
    #    "succeeded" manifest of an earlier run at that try's path: ignored, the try is retried,
    #    and the second try succeeds.
    stale_dir = _manifest_dir(site, "2026-11-27")
    stale_dir.mkdir(parents=True)
    stale = {"status": "succeeded", "run_id": "stale", "attempt": f"{DAG_ID}/old/score/1/0", "rows_out": 9}
    (stale_dir / "1.json").write_text(json.dumps(stale))
    marker = site["root"] / "crash-once"
    res = _dags_test(site, "2026-11-27", "job.yaml", BATCHINFER_TEST_CRASH_ONCE=str(marker))
    assert res["rc"] == 0, res["log"][-5000:]
    assert marker.exists()  # the first try did crash
    assert "infrastructure failure or unknown outcome (exit code 1); retrying" in res["log"]
    assert res["tis"]["score"] == ("success", 2)
    assert res["tis"]["publish"] == ("success", 1)
    xcom = res["xcom"]
    assert xcom["outcome"] == "succeeded" and xcom["manifest"]["run_id"] != "stale"
    assert xcom["attempt"].startswith(f"{DAG_ID}/{res['run_id']}/score/2/")
    assert Path(xcom["manifest_path"]) == stale_dir / "2.json"
    assert json.loads((stale_dir / "1.json").read_text()) == stale  # never trusted, never rewritten
