"""The Airflow venv for tests/integration/test_airflow_dag.py, prepared in the background.

Installing Airflow takes minutes on a fresh clone, mostly downloads. ``tests/conftest.py`` starts
the install when the Airflow tests are collected and runs those tests last, so the install
overlaps the rest of the suite; the tests then wait for it and check the result themselves.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-airflow"
PY = VENV / "bin" / "python"
PACKAGES = ["apache-airflow", "apache-airflow-providers-apache-spark"]
PROBE = "import airflow.providers.apache.spark.operators.spark_submit"

_background: subprocess.Popen | None = None


def installed() -> bool:
    return PY.exists() and subprocess.run([str(PY), "-c", PROBE], capture_output=True).returncode == 0


def start_background() -> None:
    """Create the venv and install Airflow in a child process (no-op when already there)."""
    global _background
    if _background is not None or installed():
        return
    script = (
        "import subprocess, sys\n"
        f"venv, py = {str(VENV)!r}, {str(PY)!r}\n"
        "subprocess.run([sys.executable, '-m', 'venv', '--clear', venv], check=True)\n"
        "sys.exit(subprocess.run([py, '-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', "
        f"*{PACKAGES!r}]).returncode)\n"
    )
    log = open(ROOT / ".venv-airflow.install.log", "w")  # noqa: SIM115 -- the child writes it
    _background = subprocess.Popen(
        [sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def wait_background(timeout: float = 1200) -> None:
    """Wait for a background install started by :func:`start_background` (if any)."""
    global _background
    if _background is None:
        return
    try:
        _background.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _background.kill()
        _background.wait()
    _background = None
