"""Provider/device choice as pure functions: no GPU, no Spark."""

from __future__ import annotations

import pyarrow as pa
import pytest

from batchinfer.config import load_config
from batchinfer.errors import DeviceError
from batchinfer.scoring import device as dev
from batchinfer.scoring.device import (
    CPU,
    CUDA,
    TENSORRT,
    check_providers_in_use,
    choose_providers,
    coalesce_batches,
    effective_batch_rows,
)

CPU_ONLY = [CPU]
WITH_CUDA = [CUDA, CPU]


def test_cpu_never_asks_for_cuda():
    choice = choose_providers("cpu", available=WITH_CUDA + [TENSORRT], gpu_addresses=["1"])
    assert choice.providers == (CPU,) and choice.device_id is None and choice.warning is None


@pytest.mark.parametrize("device", ["gpu", "auto"])
def test_cuda_on_the_assigned_address(device):
    choice = choose_providers(device, available=WITH_CUDA, gpu_addresses=["1"])
    assert choice.providers == ((CUDA, {"device_id": "1"}), CPU)
    assert choice.device_id == 1 and choice.requested == [CUDA, CPU] and choice.warning is None
    assert choice.gpu_addresses == ("1",)


def test_gpu_without_cuda_build_is_a_device_error():
    with pytest.raises(DeviceError) as err:
        choose_providers("gpu", available=CPU_ONLY, gpu_addresses=["0"])
    assert "no CUDAExecutionProvider" in str(err.value) and "batchinfer[gpu]" in str(err.value)
    assert err.value.exit_code == 7 and "runtime.device: auto" in err.value.hint


def test_gpu_without_spark_gpu_scheduling_is_a_device_error():
    with pytest.raises(DeviceError, match="Spark assigned no GPU to this task"):
        choose_providers("gpu", available=WITH_CUDA, gpu_addresses=[])


@pytest.mark.parametrize(
    ("available", "addresses", "reason"),
    [(CPU_ONLY, ["0"], "no CUDAExecutionProvider"), (WITH_CUDA, [], "Spark assigned no GPU")],
)
def test_auto_falls_back_to_cpu_with_a_warning(available, addresses, reason):
    choice = choose_providers("auto", available=available, gpu_addresses=addresses)
    assert choice.providers == (CPU,) and choice.device_id is None
    assert choice.warning.startswith("runtime.device=auto fell back to CPU") and reason in choice.warning


def test_non_numeric_address_is_explained():
    with pytest.raises(DeviceError, match="not a CUDA device index"):
        choose_providers("gpu", available=WITH_CUDA, gpu_addresses=["GPU-1234"])


def test_tensorrt_first_with_engine_cache():
    choice = choose_providers(
        "gpu", available=[TENSORRT, CUDA, CPU], gpu_addresses=["0"], tensorrt=True, trt_cache_dir="/c"
    )
    assert choice.requested == [TENSORRT, CUDA, CPU]
    trt_options = choice.providers[0][1]
    assert trt_options["device_id"] == "0" and trt_options["trt_engine_cache_path"] == "/c"
    assert trt_options["trt_engine_cache_enable"] == "True"


def test_tensorrt_missing_warns_and_keeps_cuda():
    choice = choose_providers("gpu", available=WITH_CUDA, gpu_addresses=["0"], tensorrt=True)
    assert choice.requested == [CUDA, CPU] and "no TensorrtExecutionProvider" in choice.warning


def test_silently_dropped_cuda_is_an_error_for_gpu_and_a_warning_for_auto():
    choice = choose_providers("gpu", available=WITH_CUDA, gpu_addresses=["1"])
    # What onnxruntime does when it cannot load CUDA: the session runs, on CPU only.
    with pytest.raises(DeviceError, match="requested on device 1 but onnxruntime runs on"):
        check_providers_in_use("gpu", choice, [CPU])
    warning = check_providers_in_use("auto", choice, [CPU])
    assert warning.startswith("runtime.device=auto fell back to CPU")
    assert check_providers_in_use("gpu", choice, [CUDA, CPU]) is None
    cpu_choice = choose_providers("cpu", available=WITH_CUDA, gpu_addresses=[])
    assert check_providers_in_use("cpu", cpu_choice, [CPU]) is None


def test_dropped_tensorrt_is_a_warning():
    choice = choose_providers("gpu", available=[TENSORRT, CUDA, CPU], gpu_addresses=["0"], tensorrt=True)
    assert "TensorrtExecutionProvider was requested" in check_providers_in_use("gpu", choice, [CUDA, CPU])


def test_gpu_batch_rows_only_when_cuda_is_in_use():
    assert effective_batch_rows([CPU], 10_000, 200_000) == 10_000
    assert effective_batch_rows([CUDA, CPU], 10_000, 200_000) == 200_000
    assert effective_batch_rows([CUDA, CPU], 10_000, None) == dev.DEFAULT_GPU_BATCH_ROWS
    assert effective_batch_rows([TENSORRT, CUDA, CPU], 100_000, None) == 100_000


def test_coalesce_batches_keeps_rows_in_order():
    batches = [pa.record_batch({"x": list(range(i * 3, i * 3 + 3))}) for i in range(7)]
    merged = list(coalesce_batches(iter(batches), 7))
    assert [b.num_rows for b in merged] == [9, 9, 3]
    assert sum((b.column(0).to_pylist() for b in merged), []) == list(range(21))
    big = pa.record_batch({"x": list(range(10))})
    assert [b.num_rows for b in coalesce_batches(iter([big]), 4)] == [10]


def test_available_providers_outside_spark_is_onnxruntimes():
    import onnxruntime as ort

    assert dev.available_providers() == ort.get_available_providers()
    assert dev.task_gpu_addresses() == []


def test_missing_onnxruntime_names_the_extras(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    with pytest.raises(DeviceError, match="onnxruntime is not installed") as err:
        dev.import_onnxruntime()
    assert "batchinfer[cpu]" in err.value.hint and "batchinfer[gpu]" in err.value.hint


def test_driver_device_problem(monkeypatch):
    assert dev.driver_device_problem("cpu") is None and dev.driver_device_problem("auto") is None
    monkeypatch.setattr(dev, "installed_runtimes", lambda: ["onnxruntime"])
    problem = dev.driver_device_problem("gpu")  # this machine: CPU build only
    assert "has no CUDAExecutionProvider" in problem and "batchinfer[gpu]" in problem
    monkeypatch.setattr(dev, "installed_runtimes", lambda: ["onnxruntime", "onnxruntime-gpu"])
    assert "both onnxruntime and onnxruntime-gpu" in dev.driver_device_problem("gpu")
    monkeypatch.setattr(dev, "installed_runtimes", lambda: [])
    assert "not installed" in dev.driver_device_problem("gpu")


def _config(tmp_path, **runtime):
    return {
        "job": "gpu-test",
        "input": {"path": str(tmp_path / "in")},
        "model": {
            "path": str(tmp_path / "m.onnx"),
            "inputs": {"input": {"columns": ["f0"]}},
            "outputs": {"probabilities": {"column": "score"}},
        },
        "output": {"path": str(tmp_path / "out")},
        "runtime": runtime,
    }


def test_runtime_gpu_keys(tmp_path):
    cfg = load_config(
        _config(tmp_path, device="gpu", gpu_batch_rows=131072, tensorrt=True, trt_cache_dir="/cache")
    )
    assert cfg.runtime.device == "gpu" and cfg.runtime.gpu_batch_rows == 131072
    assert cfg.runtime.tensorrt is True and cfg.runtime.trt_cache_dir == "/cache"
    defaults = load_config(_config(tmp_path)).runtime
    assert defaults.device == "cpu" and defaults.gpu_batch_rows is None and defaults.tensorrt is False


def test_validate_reports_gpu_without_cuda(tmp_path, capsys):
    """`batchinfer validate` exits 7 when runtime.device=gpu and this onnxruntime has no CUDA."""
    import yaml

    from batchinfer.cli import main
    from tests.support import models
    from tests.support.data import job_config, write_partitioned

    data = write_partitioned(tmp_path / "events", files_per_day=1, rows_per_file=20)
    model, _ = models.linear_classifier(tmp_path / "model.onnx", 4)
    cfg = job_config(data, model, tmp_path / "out", features=["f0", "f1", "f2", "f3"])
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["validate", str(path)]) == 0
    capsys.readouterr()
    code = main(["validate", str(path), "--set", "runtime.device=gpu"])
    assert code == 7
    assert "has no CUDAExecutionProvider" in capsys.readouterr().err
    assert main(["validate", str(path), "--set", "runtime.device=auto"]) == 0
