"""Driver-side helpers for the scenario scripts: arguments, SparkSession, result line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FEATURES = [f"f{i}" for i in range(64)]


def parse_args(description: str, extra=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", required=True, help="Parquet input directory")
    ap.add_argument("--model", required=True, help="ONNX model path")
    ap.add_argument("--out", required=True, help="Parquet output directory (overwritten)")
    ap.add_argument("--master", default="local[2]")
    if extra:
        extra(ap)
    return ap.parse_args()


def build_spark(app: str, master: str = "local[2]", conf: dict | None = None):
    """A quiet local SparkSession whose Python workers run this interpreter and can import ortcache."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master)
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "2g")
    )
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def emit(**result) -> None:
    """Print the result as the last stdout line (the harness parses it)."""
    sys.stdout.flush()
    print(json.dumps(result), flush=True)
