"""Scenario scripts, each run by ``benchmarks/run.py`` as its own process.

Every script takes ``--data --model --out`` and prints one JSON line as its last stdout line,
with at least ``session_start_s`` and ``job_s``. Helpers live in ``_common.py`` (driver side) and
``ortcache.py`` (imported by Spark's Python workers, so the scripts put this folder on PYTHONPATH).
"""
