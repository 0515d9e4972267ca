"""Which Spark property value wins, as Spark users expect (highest first):

1. the command line: ``spark-submit --conf`` (under spark-submit) or ``batchinfer run --conf``;
2. ``spark-defaults.conf`` (``$SPARK_CONF_DIR``, else ``$SPARK_HOME/conf``);
3. the job config's ``spark.conf`` (YAML layers and ``--set``);
4. batchinfer's own defaults (quiet console, string partition values, Arrow batch size, ...).

Under spark-submit, the driver JVM already holds 1 and 2 (spark-submit turns both into the
launched ``SparkConf``); batchinfer then sets only what that conf lacks, and says so in one line
when the job config asked for something else. ``batchinfer run --conf`` passed to the entry point
under spark-submit ranks below what spark-submit itself set. Pure functions, no Spark import.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from batchinfer.errors import ConfigError

_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|(^|\.)key$|access\.key", re.I)


def shown(key: str, value: object) -> str:
    """A value as it may appear in a log line or a manifest (secret-looking keys masked)."""
    return "***" if _SECRET_KEY.search(key) else str(value)


def as_conf_value(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_conf_args(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``--conf KEY=VALUE`` items (repeatable) → a mapping; bad items are one ConfigError.

    >>> parse_conf_args(["spark.sql.shuffle.partitions=8"])
    {'spark.sql.shuffle.partitions': '8'}
    """
    out: dict[str, str] = {}
    problems = []
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key or not key.startswith("spark."):
            problems.append(
                (f"--conf {item}", "expected a Spark property KEY=VALUE, e.g. spark.sql.shuffle.partitions=8")
            )
            continue
        out[key] = value
    if problems:
        raise ConfigError("invalid --conf", problems=problems)
    return out


def spark_defaults_path(environ: Mapping[str, str] | None = None) -> str | None:
    """Where Spark reads ``spark-defaults.conf`` from (the file need not exist)."""
    environ = os.environ if environ is None else environ
    conf_dir = environ.get("SPARK_CONF_DIR")
    if not conf_dir:
        home = environ.get("SPARK_HOME")
        if not home:
            try:  # pip pyspark: SPARK_HOME is the package directory
                import importlib.util

                spec = importlib.util.find_spec("pyspark")
            except (ImportError, ValueError):
                spec = None
            if spec is None or not spec.origin:
                return None
            home = os.path.dirname(spec.origin)
        conf_dir = os.path.join(home, "conf")
    return os.path.join(conf_dir, "spark-defaults.conf")


def read_spark_defaults(path: str | None) -> dict[str, str]:
    """``spark-defaults.conf`` as Spark reads it: ``key value`` (or ``key=value``) per line, ``#`` comments."""
    if not path or not os.path.isfile(path):
        return {}
    out: dict[str, str] = {}
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = re.match(r"^(\S+?)(?:\s*=\s*|\s+)(.*)$", line)
            if match:
                out[match.group(1)] = match.group(2).strip()
            else:
                out[line] = ""
    return out


def resolve_conf(
    defaults: Mapping[str, str],
    job_conf: Mapping[str, object],
    *,
    spark_defaults: Mapping[str, str] | None = None,
    command_line: Mapping[str, str] | None = None,
    launched: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The properties to set on the session builder, and one notice per overridden config value.

    ``launched``: the conf spark-submit started the driver with (None when batchinfer starts
    Spark itself); its keys are never set again.

    >>> conf, notes = resolve_conf({"a": "1"}, {"a": "2", "b": "x"}, launched={"b": "y"})
    >>> conf
    {'a': '2'}
    >>> print(notes[0])
    spark.conf.b=x in the job config is overridden by spark-submit (--conf or spark-defaults.conf): b=y
    """
    spark_defaults = dict(spark_defaults or {})
    command_line = dict(command_line or {})
    conf: dict[str, str] = dict(defaults)
    conf.update({k: as_conf_value(v) for k, v in job_conf.items()})
    notices: list[str] = []
    if launched is None:
        for source, layer in (("spark-defaults.conf", spark_defaults), ("--conf", command_line)):
            for key, value in layer.items():
                if key in job_conf and as_conf_value(job_conf[key]) != value:
                    notices.append(
                        f"spark.conf.{key}={shown(key, as_conf_value(job_conf[key]))} in the job config "
                        f"is overridden by {source}: {key}={shown(key, value)}"
                    )
                conf[key] = value
        return conf, _last_per_key(notices)
    for key, value in command_line.items():
        if key not in launched:
            conf[key] = value
    for key in list(conf):
        if key in launched:
            wanted = conf.pop(key)
            if (key in job_conf or key in command_line) and wanted != launched[key]:
                origin = "--conf" if key in command_line else "the job config"
                label = key if key in command_line else f"spark.conf.{key}"
                notices.append(
                    f"{label}={shown(key, wanted)} in {origin} is overridden by spark-submit "
                    f"(--conf or spark-defaults.conf): {key}={shown(key, launched[key])}"
                )
    return conf, notices


def _last_per_key(notices: list[str]) -> list[str]:
    """spark-defaults.conf then --conf may both override a key: keep the notice of the winner."""
    by_key: dict[str, str] = {}
    for note in notices:
        by_key[note.split("=", 1)[0]] = note
    return list(by_key.values())


def master_notice(config_master: str | None, actual_master: str) -> str | None:
    """Under spark-submit the master comes from its ``--master``: say so when the config differs."""
    if config_master and config_master != actual_master:
        return (
            f"spark.master={config_master} in the job config is ignored under spark-submit: "
            f"the master is {actual_master} (spark-submit --master)"
        )
    return None
