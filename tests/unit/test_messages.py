"""Small message fixes: whole-sentence hints, opsets of ai.onnx.ml-only models, distinct-value checks."""

from __future__ import annotations

import ast
from pathlib import Path

from onnx import TensorProto, helper

from batchinfer import cli
from batchinfer.checks.quality import format_outcomes_table, outcomes_from_gx

ROOT = Path(__file__).resolve().parents[2]


def _hint_literals():
    for path in sorted((ROOT / "batchinfer").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "hint":
                value = node.value
                if isinstance(value, ast.JoinedStr):
                    value = value.values[0] if value.values else value
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    yield f"{path.relative_to(ROOT)}:{node.value.lineno}", value.value


def test_hints_are_whole_sentences_not_fragments():
    """`fix: or set runtime.device: auto` reads as half a sentence: a hint starts with what to do."""
    hints = list(_hint_literals())
    assert len(hints) > 30
    fragments = [
        (where, h) for where, h in hints if h.split(" ", 1)[0].lower() in ("or", "and", "e.g.", "--config")
    ]
    assert fragments == []


def test_model_inspect_names_the_opsets_of_an_ml_only_model(tmp_path, capsys):
    node = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm="L2")
    graph = helper.make_graph(
        [node],
        "ml_only",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    path = tmp_path / "ml.onnx"
    path.write_bytes(model.SerializeToString())
    assert cli.main(["model", "inspect", str(path)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("opset"))
    assert line.split("   ir_version")[0] == "opset      ai.onnx.ml 3"


def _distinct_result(unexpected_count, values, success):
    """The result GX 1.x gives for expect_column_distinct_values_to_be_in_set (no observed value)."""
    return {
        "results": [
            {
                "success": success,
                "expectation_config": {
                    "type": "expect_column_distinct_values_to_be_in_set",
                    "kwargs": {"column": "cat", "value_set": ["a", "b"]},
                    "meta": {"batchinfer": {"severity": "fail", "index": 0}},
                },
                "result": {
                    "observed_value": None,
                    "unexpected_count": unexpected_count,
                    "partial_unexpected_list": values,
                },
            }
        ]
    }


def test_distinct_values_in_set_shows_the_unexpected_values_not_0_of_none():
    passed = outcomes_from_gx(_distinct_result(0, [], True), "input")
    failed = outcomes_from_gx(_distinct_result(2, ["c", "d"], False), "input")
    assert "None" not in format_outcomes_table(passed) + format_outcomes_table(failed)
    assert "no unexpected values" in format_outcomes_table(passed)
    assert "unexpected: c, d" in format_outcomes_table(failed)
    assert failed[0].message == "2 unexpected value(s): c, d"
