"""What a host computes integer and float kernels with: the record a card and a worker compare.

onnxruntime's int8 kernels (MLAS) pick their instructions at run time from the CPU: AVX-512
VNNI / AVX-VNNI / AMX on recent Intel, plain AVX2 on many AMD EPYC and older Intel machines,
the dot-product extension on ARM. On x86 without VNNI the U8S8 path multiplies byte pairs into
saturating int16 sums (``vpmaddubsw``), so the same int8 model can give different, less
accurate answers there (see docs/quantization.md). The record names exactly the features that
change those kernels, the onnxruntime build and provider, and the GPU when one is used.

>>> rec = hardware_record(["CPUExecutionProvider"])  # doctest: +SKIP
>>> rec["cpu"]["int8_path"]  # doctest: +SKIP
'avx512-vnni'
"""

from __future__ import annotations

import platform
import socket
from functools import lru_cache

# /proc/cpuinfo flag → the name the record uses. x86 "flags", ARM "Features".
X86_FEATURES = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512_vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "amx_int8": "amx_int8",
    "amx_tile": "amx_tile",
}
ARM_FEATURES = {"asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve"}
INT8_FEATURES = tuple(X86_FEATURES.values()) + tuple(ARM_FEATURES.values())


def parse_cpuinfo(text: str) -> dict:
    """Vendor, model and the int8-relevant features from the text of ``/proc/cpuinfo``.

    >>> parse_cpuinfo("vendor_id : AuthenticAMD\\nmodel name : AMD EPYC\\nflags : fpu avx2 fma\\n")
    {'vendor': 'AuthenticAMD', 'model': 'AMD EPYC', 'features': ['avx2']}
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if sep and key not in fields:  # the first processor's block describes them all
            fields[key] = value.strip()
    raw = set((fields.get("flags") or fields.get("features") or "").split())
    features = [name for flag, name in X86_FEATURES.items() if flag in raw]
    features += [name for flag, name in ARM_FEATURES.items() if flag in raw]
    vendor = fields.get("vendor_id") or fields.get("cpu implementer") or ""
    model = fields.get("model name") or fields.get("cpu part") or ""
    return {"vendor": vendor, "model": model, "features": features}


def int8_path(machine: str, features: list[str] | tuple[str, ...]) -> str:
    """The int8 kernel family onnxruntime's MLAS uses on a CPU with these features.

    >>> int8_path("x86_64", ["avx2"]), int8_path("x86_64", ["avx2", "avx512_vnni"])
    ('avx2', 'avx512-vnni')
    """
    feats = set(features)
    m = machine.lower()
    if m in ("aarch64", "arm64"):
        return "arm64-dotprod" if "dotprod" in feats else "arm64"
    if "amx_int8" in feats:
        return "amx"
    if "avx512_vnni" in feats:
        return "avx512-vnni"
    if "avx_vnni" in feats:
        return "avx-vnni"
    if "avx512bw" in feats:
        return "avx512bw"  # AVX-512 without VNNI: the same saturating byte-pair path as AVX2
    if "avx2" in feats:
        return "avx2"
    return "baseline"


# Kernel families whose U8S8 products are summed exactly in int32 (no int16 saturation).
EXACT_INT8_PATHS = {"amx", "avx512-vnni", "avx-vnni", "arm64-dotprod", "arm64"}


@lru_cache(maxsize=1)
def cpu_record() -> dict:
    """This host's CPU: vendor, model, machine, int8 features and kernel family."""
    try:
        with open("/proc/cpuinfo") as fh:
            info = parse_cpuinfo(fh.read())
    except OSError:  # not Linux: the machine type is all we can say
        info = {"vendor": "", "model": platform.processor(), "features": []}
    machine = platform.machine()
    return {**info, "machine": machine, "int8_path": int8_path(machine, info["features"])}


def onnxruntime_record(providers: list[str] | None = None) -> dict:
    """onnxruntime version, build (cpu/gpu) and the providers a session actually uses."""
    from importlib import metadata

    from batchinfer.scoring.device import import_onnxruntime

    ort = import_onnxruntime()
    build = "cpu"
    for dist, name in (("onnxruntime-gpu", "gpu"), ("onnxruntime", "cpu")):
        try:
            metadata.version(dist)
            build = name
            break
        except metadata.PackageNotFoundError:
            continue
    return {
        "version": ort.__version__,
        "build": build,
        "device": ort.get_device(),
        "providers": list(providers) if providers is not None else ["CPUExecutionProvider"],
    }


def gpu_record(device_id: int | None) -> dict | None:
    """Name and compute capability of a CUDA device (``nvidia-smi``), or None without one."""
    if device_id is None:
        return None
    import subprocess

    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                f"--id={device_id}",
                "--query-gpu=name,compute_cap,driver_version",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"device_id": device_id, "name": None, "compute_capability": None}
    name, _, rest = out.partition(",")
    cap, _, driver = rest.partition(",")
    return {
        "device_id": device_id,
        "name": name.strip(),
        "compute_capability": cap.strip(),
        "driver": driver.strip(),
    }


def hardware_record(providers: list[str] | None = None, device_id: int | None = None) -> dict:
    """Everything that changes a model's numbers on this host, as JSON-ready data."""
    from batchinfer.scoring.device import uses_cuda

    return {
        "host": socket.gethostname(),
        "cpu": dict(cpu_record()),
        "onnxruntime": onnxruntime_record(providers),
        "gpu": gpu_record(device_id) if providers and uses_cuda(providers) else None,
    }


def describe(record: dict | None) -> str:
    """One line: 'host h, AMD EPYC (avx2; int8 path avx2), onnxruntime 1.32 cpu, CPUExecutionProvider'."""
    if not record:
        return "unknown hardware (no record)"
    cpu = record.get("cpu") or {}
    ort = record.get("onnxruntime") or {}
    feats = ",".join(cpu.get("features") or []) or "no int8 features"
    text = (
        f"host {record.get('host', '?')}, {cpu.get('model') or cpu.get('vendor') or '?'} "
        f"({feats}; int8 path {cpu.get('int8_path', '?')}), onnxruntime {ort.get('version', '?')} "
        f"{ort.get('build', '?')}, {'+'.join(ort.get('providers') or ['?'])}"
    )
    gpu = record.get("gpu")
    if gpu:
        text += f", GPU {gpu.get('name')} (compute {gpu.get('compute_capability')})"
    return text


def same_kernels(a: dict | None, b: dict | None) -> bool:
    """Whether two records run the same kernel family (int8 path, ORT version/build, providers, GPU)."""
    if not a or not b:
        return False

    def key(r):
        gpu = r.get("gpu") or {}
        ort = r.get("onnxruntime") or {}
        return (
            (r.get("cpu") or {}).get("int8_path"),
            ort.get("version"),
            ort.get("build"),
            tuple(ort.get("providers") or ()),
            gpu.get("name"),
            gpu.get("compute_capability"),
        )

    return key(a) == key(b)
