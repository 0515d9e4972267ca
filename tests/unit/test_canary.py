"""The card's canary batch and the hardware record, without Spark (real onnxruntime sessions)."""

from __future__ import annotations

import copy

import numpy as np
import onnxruntime as ort
import pytest

from batchinfer.errors import ConfigError, ModelError
from batchinfer.model.canary import (
    build_canary,
    check_canary,
    decode_array,
    encode_array,
    synthetic_feeds,
)
from batchinfer.model.verify import VerificationBudget
from batchinfer.scoring import hardware, session
from tests.unit.test_quantize import tiny_mlp

AMD = {
    "host": "epyc-7",
    "cpu": {
        "vendor": "AuthenticAMD",
        "model": "AMD EPYC 7B12",
        "features": ["avx2"],
        "machine": "x86_64",
        "int8_path": "avx2",
    },
    "onnxruntime": {"version": "1.32.0", "build": "cpu", "providers": ["CPUExecutionProvider"]},
    "gpu": None,
}


def _session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def canary(tmp_path_factory):
    root = tmp_path_factory.mktemp("canary")
    model = tiny_mlp(root / "m.onnx")
    feeds = {"input": np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)}
    here = hardware.hardware_record(["CPUExecutionProvider"])
    sess = _session(model)
    return model, build_canary(feeds, sess, sess, VerificationBudget(), source="real", hardware=here)


def test_arrays_round_trip_through_the_card_encoding():
    for a in (
        np.arange(6, dtype=np.float32).reshape(2, 3),
        np.array([3, -1], np.int64),
        np.array(["a", "b"]),
    ):
        back = decode_array(encode_array(a))
        assert back.shape == a.shape and (back == a).all()


def test_the_verifying_machine_passes_its_own_canary(canary):
    model, c = canary
    assert c["rows"] == 200 and c["verified_figures"]["label_agreement"] == 1.0
    result = check_canary(_session(model).run, c, hardware.hardware_record())
    assert result["passed"] and result["failures"] == []
    assert result["max_abs_diff_vs_verified"] == 0.0 and result["same_kernels_as_verified"]


def test_a_mismatch_is_detected_when_hardware_differs_and_outputs_diverge(canary, tmp_path):
    """The card says it was verified on an AVX2 AMD host, and that host's outputs were others."""
    model, c = canary
    other = copy.deepcopy(c)
    other["hardware"] = AMD
    probs = decode_array(other["reference_outputs"]["probabilities"])
    flipped = probs[:, ::-1].copy()  # every label flips
    other["reference_outputs"]["probabilities"] = encode_array(flipped)
    other["reference_outputs"]["label"] = encode_array(flipped.argmax(axis=1).astype(np.int64))
    result = check_canary(_session(model).run, other, hardware.hardware_record())
    assert not result["passed"] and not result["same_kernels_as_verified"]
    assert any("label agreement" in f for f in result["failures"])
    assert any("row max |diff|" in f for f in result["failures"])

    handle = session.SessionHandle(_session(model), ("k",), ["CPUExecutionProvider"], [], None)
    with pytest.raises(ModelError) as err:
        session.check_canary(handle, other, on_mismatch="fail")
    text = str(err.value)
    me = hardware.cpu_record()
    assert f"host {hardware.socket.gethostname()}" in text and me["int8_path"] in text  # this worker
    assert "host epyc-7, AMD EPYC 7B12 (avx2; int8 path avx2)" in text  # the card's
    assert "fix:" in text and "on_canary_mismatch: warn" in text
    assert handle.canary is not None and not handle.canary["passed"]  # run once, kept on the handle


def test_warn_mode_returns_the_failed_result_and_runs_once(canary, monkeypatch):
    model, c = canary
    other = copy.deepcopy(c)
    other["tolerance"]["max_row_abs_diff"] = -1.0  # nothing can pass
    handle = session.SessionHandle(_session(model), ("k",), ["CPUExecutionProvider"], [], None)
    calls = []
    real = handle.session.run

    class Counting:
        def run(self, names, feeds):
            calls.append(len(next(iter(feeds.values()))))
            return real(names, feeds)

    handle.session = Counting()
    first = session.check_canary(handle, other, on_mismatch="warn")
    second = session.check_canary(handle, other, on_mismatch="warn")
    assert first is second and not first["passed"] and calls == [200]
    assert session.check_canary(handle, None) is None


def test_tolerance_never_fails_the_verifying_machine_on_a_small_sample(tmp_path):
    """A canary subsample can be worse than the budget: the tolerance is then its own figure."""
    ref, other = tiny_mlp(tmp_path / "a.onnx"), tiny_mlp(tmp_path / "b.onnx", seed=5)
    feeds = {"input": np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)}
    c = build_canary(feeds, _session(ref), _session(other), VerificationBudget(), source="real", hardware={})
    assert c["tolerance"]["min_label_agreement"] == c["verified_figures"]["label_agreement"] < 0.995
    assert check_canary(_session(other).run, c, {})["passed"]


def test_synthetic_rows_keep_the_columns_range_but_no_real_row():
    rng = np.random.default_rng(0)
    real = {
        "input": rng.normal(loc=[0, 10, -5, 100], scale=[1, 2, 0.5, 10], size=(500, 4)).astype(np.float32)
    }
    fake = synthetic_feeds(real, 300, seed=1)["input"]
    assert fake.shape == (300, 4) and fake.dtype == np.float32
    assert (fake.min(axis=0) >= real["input"].min(axis=0)).all()
    assert (fake.max(axis=0) <= real["input"].max(axis=0)).all()
    assert np.abs(fake.mean(axis=0) - real["input"].mean(axis=0)).max() < 2
    rows = {tuple(r) for r in real["input"].tolist()}
    assert not any(tuple(r) in rows for r in fake.tolist())
    with pytest.raises(ConfigError, match="only float inputs can be synthesized"):
        synthetic_feeds({"ids": np.arange(5)}, 3)


def test_cpu_features_and_int8_paths_from_cpuinfo():
    amd = "vendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B12\nflags\t\t: fpu sse avx avx2 fma\n"
    info = hardware.parse_cpuinfo(amd)
    assert info == {"vendor": "AuthenticAMD", "model": "AMD EPYC 7B12", "features": ["avx2"]}
    assert hardware.int8_path("x86_64", info["features"]) == "avx2"
    intel = "vendor_id : GenuineIntel\nflags : avx2 avx512f avx512bw avx512_vnni amx_tile amx_int8\n"
    feats = hardware.parse_cpuinfo(intel)["features"]
    assert hardware.int8_path("x86_64", feats) == "amx"
    assert hardware.int8_path("x86_64", ["avx2", "avx512f", "avx512bw"]) == "avx512bw"
    arm = "CPU implementer : 0x41\nFeatures : fp asimd asimddp i8mm\n"
    assert hardware.int8_path("aarch64", hardware.parse_cpuinfo(arm)["features"]) == "arm64-dotprod"
    rec = hardware.hardware_record(["CPUExecutionProvider"])
    assert rec["onnxruntime"]["version"] == ort.__version__ and rec["gpu"] is None
    assert not hardware.same_kernels(rec, AMD) or rec["cpu"]["int8_path"] == "avx2"


def test_gpu_record_reads_name_and_compute_capability(tmp_path, monkeypatch):
    """nvidia-smi's CSV line (a stand-in script here: no GPU on CI) becomes the card's GPU record."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text('#!/bin/sh\necho "NVIDIA H200, 9.0, 570.86"\n')
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    rec = hardware.hardware_record(["CUDAExecutionProvider", "CPUExecutionProvider"], device_id=0)
    assert rec["gpu"] == {
        "device_id": 0,
        "name": "NVIDIA H200",
        "compute_capability": "9.0",
        "driver": "570.86",
    }
    assert "GPU NVIDIA H200 (compute 9.0)" in hardware.describe(rec)
    assert not hardware.same_kernels(rec, hardware.hardware_record(["CPUExecutionProvider"]))
    monkeypatch.setenv("PATH", "/nonexistent")
    assert hardware.gpu_record(1) == {"device_id": 1, "name": None, "compute_capability": None}
