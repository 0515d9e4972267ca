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


def _quantize_and_verify(root, data, reference, name, capsys, *budget, method="dynamic-int8") -> tuple:
    out = root / f"{name}.onnx"
    quantize = ["model", "quantize", str(reference), "--method", method, "--out", str(out)]
    if method == "static-int8":
        quantize += [
            "--data",
            str(data),
            "--columns",
            COLS,
            "--rows",
            "600",
            "--calibration-batch-rows",
            "200",
        ]
    assert main(quantize) == 0
    # Batches of 400 rows (not the job's 300): a batch-dependent model's card pins that size.
    data_args = [
        "--data",
        str(data),
        "--columns",
        COLS,
        "--label",
        "y",
        "--rows",
        "800",
        "--batch-rows",
        "400",
    ]
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


def _tampered(card, *, on: str = "fail"):
    """The card as if verified on an AVX2 AMD host whose outputs were other than this machine's."""
    from batchinfer.model.canary import decode_array, encode_array
    from tests.unit.test_canary import AMD

    doc = json.loads(card.read_text())
    canary = doc["canary"]
    canary["hardware"] = AMD
    probs = decode_array(canary["reference_outputs"]["probabilities"])[:, ::-1].copy()
    canary["reference_outputs"]["probabilities"] = encode_array(probs)
    canary["reference_outputs"]["label"] = encode_array(probs.argmax(axis=1).astype("int64"))
    path = card.with_name(f"tampered-{on}.onnx.card.json")
    path.write_text(json.dumps(doc))
    return path


def test_every_worker_checks_the_canary_and_the_manifest_records_it(spark, workspace, tmp_path, capsys):
    root, data, reference = workspace
    model, card, rc = _quantize_and_verify(root, data, reference, "canary", capsys, MEASURED)
    assert rc == 0
    doc = json.loads(card.read_text())
    assert doc["canary"]["rows"] == 256 and doc["canary"]["source"] == "real"
    hw = doc["verification"]["hardware"]
    assert hw["cpu"]["int8_path"] and hw["onnxruntime"]["providers"] == ["CPUExecutionProvider"]
    assert doc["canary"]["hardware"] == hw

    result = Job.from_config(_card_config(data, card, tmp_path / "ok")).run(spark=spark)
    workers = result.manifest["workers"]
    assert workers and all(w["canary"]["passed"] for w in workers.values())
    assert all(w["canary"]["max_abs_diff_vs_verified"] == 0.0 for w in workers.values())

    # Over budget: exit 4 before anything is committed, naming this host's CPU and the card's.
    with pytest.raises(ModelError) as err:
        Job.from_config(_card_config(data, _tampered(card), tmp_path / "bad")).run(spark=spark)
    assert err.value.exit_code == 4
    text = str(err.value)
    assert "canary batch (256 rows) over budget on worker host" in text
    assert "the card was verified on host epyc-7, AMD EPYC 7B12 (avx2; int8 path avx2)" in text
    assert not (tmp_path / "bad" / "_SUCCESS").exists()
    failed_workers = err.value.result.manifest["workers"]  # the failing worker's canary is recorded
    assert failed_workers and all(not w["canary"]["passed"] for w in failed_workers.values())
    assert not list((tmp_path / "bad").glob("ds=*"))

    cfg = _card_config(data, _tampered(card, on="warn"), tmp_path / "warned")
    cfg["runtime"]["on_canary_mismatch"] = "warn"
    warned = Job.from_config(cfg).run(spark=spark)
    assert warned.status == "succeeded"
    assert all(not w["canary"]["passed"] for w in warned.manifest["workers"].values())
    assert any("canary batch (256 rows) over budget" in w for w in warned.manifest["warnings"])


def test_a_batch_dependent_model_is_recorded_and_pinned(spark, workspace, tmp_path, capsys):
    root, data, reference = workspace
    _, card, rc = _quantize_and_verify(root, data, reference, "dependent", capsys, MEASURED)
    assert rc == 0
    dep = json.loads(card.read_text())["verification"]["batch_dependence"]
    assert dep["batch_rows"] == [400, 311] and dep["verified_batch_rows"] == 400
    assert dep["dependent"] is (dep["max_abs_diff"] > 1e-6)
    _, static_card, rc = _quantize_and_verify(
        root, data, reference, "invariant", capsys, MEASURED, method="static-int8"
    )
    assert rc == 0
    static_dep = json.loads(static_card.read_text())["verification"]["batch_dependence"]
    assert static_dep["dependent"] is False and static_dep["max_abs_diff"] <= 1e-6
    if not dep["dependent"]:
        pytest.skip("dynamic int8 happened to be batch-invariant on these rows")

    cfg = _card_config(data, card, tmp_path / "pinned")
    del cfg["runtime"]["batch_rows"]  # not set: pinned to the verified 400
    m = Job.from_config(cfg).run(spark=spark).manifest
    assert all(w["batch_rows"] == [400] for w in m["workers"].values())
    assert any("batch-dependent" in n and "pinned to the verified 400" in n for n in m["notes"])
    assert m["model"]["card"]["verification"]["batch_dependence"]["dependent"] is True

    cfg = _card_config(data, card, tmp_path / "overridden")  # runtime.batch_rows: 300 set explicitly
    m = Job.from_config(cfg).run(spark=spark).manifest
    assert all(w["batch_rows"] == [300] for w in m["workers"].values())
    assert any("runtime.batch_rows 300 is not the verified 400" in n for n in m["notes"])
