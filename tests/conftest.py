"""Shared fixtures: one real local SparkSession for the whole test run."""

from __future__ import annotations

import os
import sys

import pytest


def pytest_configure(config):
    """Kept check plans (batchinfer/checks/plan_cache.py) go to a directory of this test run, not
    the user's cache; child processes (CLI runs, Spark workers) inherit it."""
    import tempfile

    os.environ.setdefault("BATCHINFER_CACHE_DIR", tempfile.mkdtemp(prefix="batchinfer-test-cache-"))


def pytest_collection_modifyitems(session, config, items):
    """Run the Airflow DAG tests last, and install their Airflow venv meanwhile (minutes)."""
    airflow = [i for i in items if i.nodeid.startswith("tests/integration/test_airflow_dag.py")]
    if not airflow:
        return
    items[:] = [i for i in items if i not in airflow] + airflow
    from tests.support import airflow_venv

    airflow_venv.start_background()


@pytest.fixture(scope="session")
def spark():
    """A real local[2] SparkSession, quiet, with Python workers on this interpreter."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("batchinfer-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
