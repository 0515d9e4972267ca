"""`batchinfer model inspect | quantize | verify` through the CLI entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from batchinfer.cli import main
from batchinfer.model.artifact import load_model
from batchinfer.model.card import read_card
from tests.support import budget
from tests.support.data import write_partitioned
from tests.unit.test_quantize import tiny_mlp, with_label

COLS = "f0,f1,f2,f3"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_partitioned(root / "data", files_per_day=2, rows_per_file=500, extra=with_label)
    model = tiny_mlp(root / "mlp.onnx")
    return root, data, model


def test_inspect_prints_signature_and_json(assets, capsys):
    _, _, model = assets
    assert main(["model", "inspect", str(model)]) == 0
    text = capsys.readouterr().out
    art = load_model(model)
    assert art.sha256 in text and "opset      17" in text and "tests" in text
    assert re.search(r"input\s+tensor\(float\)\s+\[N, 4\]", text)
    assert re.search(r"label\s+tensor\(int64\)\s+\[N\]", text)
    assert main(["model", "inspect", str(model), "--json", "--nodes"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["sha256"] == art.sha256 and info["size_bytes"] == art.size_bytes
    assert info["inputs"] == [
        {"name": "input", "type": "tensor(float)", "dtype": "float32", "shape": ["N", 4]}
    ]
    assert {o["name"] for o in info["outputs"]} == {"probabilities", "label"}
    assert info["opset"] == 17 and info["producer"] == "tests"
    assert [n["name"] for n in info["nodes"]][:2] == ["dense1", "bias1"]


def test_inspect_missing_file_is_a_model_error(tmp_path, capsys):
    assert main(["model", "inspect", str(tmp_path / "nope.onnx")]) == 4
    assert "not found" in capsys.readouterr().err


def test_quantize_then_verify_writes_a_verified_card(assets, tmp_path, capsys):
    _, data, model = assets
    out = tmp_path / "m.int8.onnx"
    rc = main(
        [
            "model",
            "quantize",
            str(model),
            "--method",
            "static-int8",
            "--data",
            str(data),
            "--columns",
            COLS,
            "--rows",
            "800",
            "--calibration-batch-rows",
            "200",
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    card = read_card(f"{out}.card.json")
    assert card["verification"] is None and card["method"] == "static-int8"
    target = card["parameters"]["target_cpu"]
    assert card["parameters"]["target_cpu_requested"] == "auto" and target in ("avx2", "avx512-vnni")
    assert f"int8 recipe for {target} (auto: this machine's CPU" in captured.out
    assert card["model"]["path"] == "m.int8.onnx" and card["model"]["sha256"] == load_model(out).sha256
    assert card["reference"]["sha256"] == load_model(model).sha256
    assert (
        card["parameters"]["calibration"] == "percentile"
        and card["parameters"]["calibration_data"]["rows"] == 800
    )
    assert {"onnx", "onnxruntime", "batchinfer"} <= set(card["tools"])
    capsys.readouterr()

    data_args = ["--data", str(data), "--columns", COLS, "--label", "y", "--rows", "1000"]
    # The default budget's decision (either way, on this CPU) must agree with its own figures.
    measured = budget.measure(capsys, out, model, data_args)
    assert read_card(f"{out}.card.json")["verification"] is None  # --no-card left the card alone
    rc = main(
        ["model", "verify", str(out), "--reference", str(model), *data_args, "--repeats", "1", "--json"]
        + budget.budget_args(measured)  # a budget around what this machine measured
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)  # stdout is pure JSON (calibration chatter goes elsewhere)
    assert report["passed"] is True and report["figures"]["rows"] == 1000
    assert set(report["figures"]["metrics"]) == {"accuracy", "roc_auc"}
    assert report["figures"]["size"]["candidate_bytes"] == out.stat().st_size
    assert report["figures"]["throughput"]["ratio"] > 0
    card = read_card(f"{out}.card.json")
    assert card["verification"]["passed"] is True and card["method"] == "static-int8"
    assert card["verification"]["budget"] == report["budget"]
    budget.assert_decision_consistent(report)


def test_verify_refuses_a_broken_model_on_any_cpu(assets, tmp_path, capsys):
    """Another model with the same signature (weights of another seed) is refused by the defaults."""
    _, data, model = assets
    broken = tiny_mlp(tmp_path / "broken.onnx", seed=7)
    report = budget.measure(capsys, broken, model, ["--data", str(data), "--columns", COLS, "--rows", "800"])
    assert report["passed"] is False
    assert any("label agreement" in f for f in report["failures"])


def test_verify_over_budget_exits_5_and_records_the_failure(assets, tmp_path, capsys):
    _, data, model = assets
    out = tmp_path / "m.dyn.onnx"
    assert main(["model", "quantize", str(model), "--method", "dynamic-int8", "--out", str(out)]) == 0
    rc = main(
        [
            "model",
            "verify",
            str(out),
            "--reference",
            str(model),
            "--data",
            str(data),
            "--columns",
            COLS,
            "--rows",
            "500",
            "--repeats",
            "1",
            "--max-row-abs-diff",
            "0",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 5
    assert (
        "FAILED" in captured.out
        and "mean of each row's largest |diff|" in captured.err
        and "fix:" in captured.err
    )
    card = read_card(f"{out}.card.json")
    assert card["verification"]["passed"] is False and card["method"] == "dynamic-int8"


def test_quantize_refuses_existing_output_and_static_without_data(assets, tmp_path, capsys):
    _, _, model = assets
    out = tmp_path / "x.onnx"
    out.write_bytes(b"")
    assert main(["model", "quantize", str(model), "--method", "fp16", "--out", str(out)]) == 6
    assert "--force" in capsys.readouterr().err
    assert (
        main(["model", "quantize", str(model), "--method", "static-int8", "--out", str(tmp_path / "y.onnx")])
        == 2
    )
    assert "--data PARQUET --columns" in capsys.readouterr().err
    assert (
        main(
            [
                "model",
                "quantize",
                str(model),
                "--method",
                "static-int8",
                "--data",
                "d",
                "--out",
                str(tmp_path / "y.onnx"),
            ]
        )
        == 2
    )
    assert "--data needs --columns" in capsys.readouterr().err


def test_verify_with_a_job_config_mapping(assets, tmp_path, capsys):
    import yaml

    from tests.support.data import job_config

    _, data, model = assets
    cfg = job_config(data, model, tmp_path / "out", features=["f0", "f1", "f2", "f3"])
    cfg["input"]["partitions"] = {"ds": "2026-11-28"}
    cfg_path = tmp_path / "job.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "m.fp16.onnx"
    assert main(["model", "quantize", str(model), "--method", "fp16", "--out", str(out)]) == 0
    capsys.readouterr()
    rc = main(
        [
            "model",
            "verify",
            str(out),
            "--reference",
            str(model),
            "--config",
            str(cfg_path),
            "--json",
            "--repeats",
            "1",
            "--label",
            "y",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["figures"]["rows"] == 1000  # only the selected partition (2 files x 500)
    assert report["figures"]["throughput"]["batch_rows"] == 300  # the job's runtime.batch_rows
    assert report["data"]["source"] == f"config {cfg_path}"


def test_help_is_light_and_no_cli_path_loads_pickles():
    code = (
        "import sys; from batchinfer.cli import build_parser; p = build_parser(); "
        "p.parse_args(['model', 'verify', 'a', '--reference', 'b']); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'numpy', 'pyarrow')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    src = Path(__file__).resolve().parents[2] / "batchinfer"
    for path in src.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b(pickle|joblib|cloudpickle)\.loads?\(", text), path


def test_cards_are_written_with_the_umask_not_0600(tmp_path):
    import os

    from batchinfer.model.card import write_card

    old = os.umask(0o022)
    try:
        path = write_card({"model": {"sha256": "ab"}}, tmp_path / "m.onnx.card.json")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_verify_canary_options(assets, tmp_path, capsys):
    _, data, model = assets
    args = ["model", "verify", str(model), "--reference", str(model), "--data", str(data), "--columns", COLS]
    args += ["--rows", "400", "--repeats", "1"]
    card = tmp_path / "fp32.card.json"
    assert main([*args, "--card", str(card), "--canary", "synthetic", "--canary-rows", "50"]) == 0
    doc = read_card(card)
    assert doc["canary"]["source"] == "synthetic" and doc["canary"]["rows"] == 50
    assert doc["verification"]["batch_dependence"]["dependent"] is False  # fp32
    assert main([*args, "--card", str(card), "--canary-rows", "0"]) == 0
    assert read_card(card)["canary"] is None
    capsys.readouterr()
    assert main([*args, "--canary-rows", "-1"]) == 2
    assert "--canary-rows must be >= 0, got -1" in capsys.readouterr().err


def test_verify_all_targets_emulates_avx2_saturation(assets, tmp_path, capsys):
    """A full-range (VNNI) static int8 model fails the AVX2 emulation; the avx2 recipe passes it.

    The emulations are float arithmetic, the same on every CPU, so their figures may meet a
    fixed budget (labels of this tiny model sit near 0.5: agreement is gated at 90 %).
    """
    _, data, model = assets
    data_args = ["--data", str(data), "--columns", COLS]
    reports = {}
    for target in ("avx512-vnni", "avx2"):
        out = tmp_path / f"{target}.onnx"
        quantize = ["model", "quantize", str(model), "--method", "static-int8", "--out", str(out)]
        quantize += [*data_args, "--rows", "800", "--calibration-batch-rows", "200", "--target-cpu", target]
        assert main(quantize) == 0
        capsys.readouterr()
        main(
            ["model", "verify", str(out), "--reference", str(model), *data_args, "--rows", "1000"]
            + ["--repeats", "1", "--json", "--no-card", "--all-targets", "--min-label-agreement", "0.9"]
        )
        reports[target] = json.loads(capsys.readouterr().out)
    vnni, avx2 = reports["avx512-vnni"]["figures"]["targets"], reports["avx2"]["figures"]["targets"]
    assert vnni["avx2"]["passed"] is False and "int16" in vnni["avx2"]["emulation"]
    assert any(f.startswith("on avx2 (emulated): ") for f in reports["avx512-vnni"]["failures"])
    assert vnni["avx512-vnni"]["passed"] is True and vnni["arm64"]["passed"] is True
    assert all(avx2[t]["passed"] for t in ("avx2", "avx512-vnni", "arm64"))
    assert "cannot be run or emulated" in avx2["gpu"]["not_emulated"]
    row = lambda t: t["outputs"]["probabilities"]["row_abs_diff"]  # noqa: E731
    assert row(vnni["avx2"]) > 5 * row(vnni["avx512-vnni"])  # saturation, not rounding
    budget.assert_decision_consistent(reports["avx2"])

    dyn = tmp_path / "dyn.onnx"
    assert main(["model", "quantize", str(model), "--method", "dynamic-int8", "--out", str(dyn)]) == 0
    capsys.readouterr()
    main(
        ["model", "verify", str(dyn), "--reference", str(model), *data_args, "--rows", "300"]
        + ["--repeats", "1", "--json", "--no-card", "--all-targets"]
    )
    targets = json.loads(capsys.readouterr().out)["figures"]["targets"]
    assert {"avx2", "avx512-vnni", "arm64"} <= {t for t, e in targets.items() if e.get("emulation")}
