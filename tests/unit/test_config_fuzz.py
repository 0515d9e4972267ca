"""Randomly broken configs (seeded): always a ConfigError naming a field, exit code 2, no traceback."""

from __future__ import annotations

import copy
import math
import random

import pytest
import yaml

from batchinfer import cli
from batchinfer.config import validate_data
from batchinfer.errors import ConfigError

BASE = {
    "job": "fuzz-job",
    "description": "a valid job the fuzzer breaks",
    "input": {
        "path": "/data/events",
        "partitions": {"ds": "2026-11-28"},
        "passthrough": ["id", "ds"],
        "invalid_features": "fail",
    },
    "model": {
        "path": "/models/m.onnx",
        "inputs": {"input": {"columns": ["f0", "f1", "f2", "f3"]}},
        "outputs": {"probabilities": {"column": "score", "select": 1}, "label": {"column": "label"}},
    },
    "output": {"path": "/data/scores", "partition_by": ["ds"], "mode": "overwrite_partitions"},
    "runtime": {"batch_rows": 1000, "threads_per_task": 1, "device": "cpu"},
    "spark": {"master": "local[2]", "conf": {"spark.sql.shuffle.partitions": 4}},
}

# field path → values that are invalid there whatever else the config holds
INVALID = {
    ("job",): [5, "", "has space", "x" * 300, None, ["a"], {"a": 1}, "-leading-dash"],
    ("input",): [None, "text", 3, []],
    ("input", "path"): [None, "", 7, ["a"], {"p": 1}],
    ("input", "partitions"): ["ds=1", 3, [1, 2]],
    ("input", "passthrough"): ["id", 3, {"a": 1}, ["id", "id"]],
    ("input", "allow_empty"): ["maybe", [True], {"x": 1}],
    ("input", "on_corrupt_file"): ["ignore", 1, None],
    ("input", "invalid_features"): ["drop", 0, None],
    ("input", "sample_fraction"): [0, -0.5, 1.5, "half", math.inf],
    ("model",): [None, "m.onnx", 1],
    ("model", "inputs"): [{}, [], "input", None],
    ("model", "outputs"): [{}, [], None, "score"],
    ("model", "sha256"): ["abc", 12, "g" * 64],
    ("model", "preprocess"): ["not a name", "os.system", "mod:", 42],
    ("output",): [None, "out", 4],
    ("output", "path"): [None, "", 3],
    ("output", "mode"): ["replace", None, 1],
    ("output", "compression"): ["brotli", 9],
    ("output", "partition_by"): ["ds", 1, {"ds": 1}],
    ("runtime", "batch_rows"): [0, -1, 10**12, "many", 1.5, None, math.nan, "auto-ish", True],
    ("runtime", "worker_memory"): ["lots", "1k", -5, [1], {"a": 1}, True, math.inf],
    ("runtime", "threads_per_task"): [0, 10_000, "two", -3],
    ("runtime", "device"): ["tpu", 0, None],
    ("runtime", "dry_run"): ["perhaps", [1]],
    ("runtime", "allow_custom_code"): ["sure", {"a": 1}],
    ("spark", "conf"): ["a=b", [1, 2], {"k": [1, 2]}, {"k": {"nested": 1}}],
    ("spark", "master"): [5, ["local"]],
}
REQUIRED = [
    ("job",),
    ("input",),
    ("input", "path"),
    ("model",),
    ("model", "inputs"),
    ("model", "outputs"),
    ("output",),
    ("output", "path"),
]
NOISE = [None, 0, -1, 10**15, 3.5, math.nan, "", "x", "${notenv}", [], {}, [None], {"k": None}, True]


def _containers(node, path=()):
    if isinstance(node, dict):
        yield path
        for key, value in node.items():
            yield from _containers(value, (*path, key))


def _set(cfg, path, value):
    node = cfg
    for key in path[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def _delete(cfg, path):
    node = cfg
    for key in path[:-1]:
        node = node.get(key)
        if not isinstance(node, dict):
            return
    node.pop(path[-1], None)


def broken_config(rng: random.Random) -> tuple[dict, tuple]:
    """A config with one certainly-invalid field (returned) plus random noise elsewhere."""
    cfg = copy.deepcopy(BASE)
    kind = rng.choice(["invalid", "missing", "unknown"])
    if kind == "invalid":
        path = rng.choice(sorted(INVALID))
        _set(cfg, path, rng.choice(INVALID[path]))
        if path == ("model", "preprocess"):
            cfg["runtime"]["allow_custom_code"] = True
    elif kind == "missing":
        path = rng.choice(REQUIRED)
        _delete(cfg, path)
    else:
        parent = rng.choice([p for p in _containers(cfg) if p[:1] not in (("spark",),) or p == ()])
        if parent[-1:] in (("partitions",), ("inputs",), ("outputs",)):
            parent = parent[:-1]  # free-form mappings accept any key
        path = (
            *parent,
            rng.choice(["bogus", "batchrows", "Input", "paht", "mode_"]) + str(rng.randint(0, 9)),
        )
        _set(cfg, path, rng.choice(NOISE))
    for _ in range(rng.randint(0, 2)):  # more damage, anywhere
        noisy = rng.choice(sorted(INVALID))
        if noisy[:1] != path[:1]:
            _set(cfg, noisy, rng.choice(NOISE))
    return cfg, path


CASES = 300


def _assert_names_field(err: ConfigError, path: tuple) -> None:
    assert err.problems, err
    fields = [p for p, _ in err.problems]
    assert all(isinstance(f, str) and f and f != "(top level)" for f in fields), fields
    assert all(isinstance(m, str) and m for _, m in err.problems)


def test_validate_data_always_raises_config_error_with_field_paths():
    rng = random.Random(20261129)
    named = 0
    for i in range(CASES):
        cfg, path = broken_config(rng)
        try:
            validate_data(cfg, source=f"case {i}")
        except ConfigError as err:
            _assert_names_field(err, path)
            fields = [p for p, _ in err.problems]
            named += any(f.startswith(".".join(path[:1])) for f in fields)
        else:
            pytest.fail(f"case {i}: broken config at {'.'.join(path)} was accepted: {cfg}")
    assert named == CASES  # the broken section is always among the reported paths


def test_cross_field_problems_get_their_own_field_paths():
    cfg = copy.deepcopy(BASE)
    cfg["output"]["partition_by"] = ["nope"]
    cfg["input"]["passthrough"] = ["score", "id"]
    cfg["model"]["preprocess"] = "pkg.mod:func"
    with pytest.raises(ConfigError) as info:
        validate_data(cfg)
    fields = dict(info.value.problems)
    assert set(fields) == {"model.preprocess", "model.outputs", "output.partition_by"}
    assert "runtime.allow_custom_code: true" in fields["model.preprocess"]


def test_validate_data_rejects_non_mapping_documents():
    for doc in ([], [1, 2], "job: x", 3, None):
        with pytest.raises(ConfigError) as info:
            validate_data(doc)  # type: ignore[arg-type]
        assert info.value.problems


def test_cli_validate_exit_code_2_and_no_traceback(tmp_path, capsys):
    rng = random.Random(7)
    config = tmp_path / "job.yaml"
    for i in range(120):
        cfg, path = broken_config(rng)
        config.write_text(yaml.safe_dump(cfg))
        rc = cli.main(["validate", str(config)])
        out, err = capsys.readouterr()
        assert rc == 2, f"case {i} ({'.'.join(path)}): rc={rc}\n{out}\n{err}"
        assert "batchinfer: config error" in err and "Traceback" not in err + out
        assert "\n  - " in err  # one "  - field: message" line per problem
    # Not YAML at all, or not a mapping: still exit code 2.
    for text in ("job: [unclosed", "- a\n- b\n", "just text", "\x00\x01"):
        config.write_text(text)
        assert cli.main(["validate", str(config)]) == 2
        assert "Traceback" not in capsys.readouterr().err
