"""A job whose config points at a model card: scores a verified model, refuses anything else."""

from __future__ import annotations

import json

import pytest

from batchinfer.cli import main
from batchinfer.errors import ModelError
from batchinfer.job import Job
from tests.support import budget as budgets
from tests.support.data import job_config, write_partitioned
from tests.unit.test_quantize import tiny_mlp, with_label

FEATURES = ["f0", "f1", "f2", "f3"]
COLS = ",".join(FEATURES)
MEASURED = "measured"  # a budget around what this machine measured (int8 figures differ by CPU)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("card_job")
    data = write_partitioned(root / "data", files_per_day=2, rows_per_file=400, extra=with_label)
    reference = tiny_mlp(root / "mlp.onnx")
    return root, data, reference


def _quantize_and_verify(root, data, reference, name, capsys, *budget) -> tuple:
    out = root / f"{name}.onnx"
    assert main(["model", "quantize", str(reference), "--method", "dynamic-int8", "--out", str(out)]) == 0
    data_args = ["--data", str(data), "--columns", COLS, "--label", "y", "--rows", "800"]
    if budget == (MEASURED,):
        budget = tuple(budgets.budget_args(budgets.measure(capsys, out, reference, data_args)))
    rc = main(
        ["model", "verify", str(out), "--reference", str(reference), *data_args, "--repeats", "1", *budget]
    )
    return out, root / f"{name}.onnx.card.json", rc


def _card_config(data, card, out) -> dict:
    cfg = job_config(data, "unused", out, features=FEATURES)
    del cfg["model"]["path"]
    cfg["model"]["card"] = str(card)
    return cfg


def test_job_scores_the_model_of_a_verified_card(spark, workspace, tmp_path, capsys):
    root, data, reference = workspace
    model, card, rc = _quantize_and_verify(root, data, reference, "verified", capsys, MEASURED)
    assert rc == 0
    result = Job.from_config(_card_config(data, card, tmp_path / "scores")).run(spark=spark)
    assert result.status == "succeeded" and result.rows_out == 1600
    m = result.manifest
    card_doc = json.loads(card.read_text())
    assert m["model"]["sha256"] == card_doc["model"]["sha256"]
    assert m["model"]["card"]["method"] == "dynamic-int8"
    assert m["model"]["card"]["verification"]["passed"] is True
    assert m["model"]["card"]["reference"]["sha256"] == card_doc["reference"]["sha256"]
    assert m["model"]["card"]["created_at"] == card_doc["created_at"]


def test_job_refuses_a_card_with_a_failed_verification(workspace, tmp_path, capsys):
    root, data, reference = workspace
    _, card, rc = _quantize_and_verify(root, data, reference, "failed", capsys, "--max-row-abs-diff", "0")
    assert rc == 5
    with pytest.raises(ModelError, match="records a failed verification"):
        Job.from_config(_card_config(data, card, tmp_path / "scores")).plan()


def test_job_refuses_a_model_changed_after_its_card(workspace, tmp_path, capsys):
    root, data, reference = workspace
    model, card, rc = _quantize_and_verify(root, data, reference, "changed", capsys, MEASURED)
    assert rc == 0
    model.write_bytes(reference.read_bytes())  # swapped after verification
    with pytest.raises(ModelError, match="digest mismatch"):
        Job.from_config(_card_config(data, card, tmp_path / "scores")).plan()
