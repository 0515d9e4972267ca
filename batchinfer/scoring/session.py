"""One onnxruntime session per Python worker and model digest, for the whole job.

Python workers are reused across tasks (``spark.python.worker.reuse``, on by default), so a
module-level cache keyed by (model digest, providers, device, threads) gives one session per
worker process, not one per batch or partition. ``device`` is the CUDA ``device_id`` (the GPU
address Spark assigned) or None on CPU; ``providers`` are the requested provider names, while
``SessionHandle.providers`` is what onnxruntime actually loaded (``get_providers()``).
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

_LOCK = threading.Lock()
_SESSIONS: dict[tuple, SessionHandle] = {}
# Test seam: counts every session this process created (the job also reports it via an accumulator).
CREATED: list[tuple] = []


@dataclass
class SessionHandle:
    session: object  # onnxruntime.InferenceSession
    key: tuple
    providers: list[str]
    requested: list[str]
    device_id: int | None
    output_names: list[str] = field(default_factory=list)
    canary: dict | None = None  # this session's canary result (run once, see check_canary)

    def run(self, feeds: dict) -> list:
        return self.session.run(self.output_names, feeds)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def get_session(
    digest: str,
    load_bytes: Callable[[], bytes],
    *,
    output_names: list[str],
    providers: list,
    device_id: int | None = None,
    threads: int = 1,
    on_create: Callable[[SessionHandle], None] | None = None,
) -> SessionHandle:
    """Return the cached session for this key, creating it (once) when missing."""
    provider_names = tuple(p if isinstance(p, str) else p[0] for p in providers)
    key = (digest, provider_names, device_id, threads)
    handle = _SESSIONS.get(key)
    if handle is not None:
        return handle
    with _LOCK:
        handle = _SESSIONS.get(key)
        if handle is not None:
            return handle
        from batchinfer.scoring.device import import_onnxruntime

        ort = import_onnxruntime()  # a DeviceError naming the extras when neither build is installed
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(load_bytes(), sess_options=options, providers=list(providers))
        handle = SessionHandle(
            session=session,
            key=key,
            providers=list(session.get_providers()),
            requested=list(provider_names),
            device_id=device_id,
            output_names=list(output_names),
        )
        _SESSIONS[key] = handle
        CREATED.append(key)
        if on_create is not None:
            on_create(handle)
        return handle


def check_canary(handle, canary: dict | None, *, on_mismatch: str = "fail") -> dict | None:
    """Run a model card's canary batch through ``handle``'s session, once per session.

    Called right after the session is built and before it scores a row. The result (passed,
    figures, this worker's hardware record) is kept on the handle and reported with the worker
    stats. Over budget with ``on_mismatch="fail"``: a ModelError (exit 4) naming this host's
    CPU features and the card's, so the task fails before it writes anything.
    """
    if not canary:
        return None
    result = getattr(handle, "canary", None)
    if result is None or result.get("digest") != canary.get("digest"):  # none yet, or another card
        from batchinfer.model.canary import check_canary as run_canary
        from batchinfer.scoring.hardware import hardware_record

        hardware = hardware_record(list(handle.providers), getattr(handle, "device_id", None))
        with _LOCK:
            result = run_canary(handle.session.run, canary, hardware)
        try:
            handle.canary = result
        except AttributeError:  # a test double without the field: run again next time
            pass
    if not result["passed"] and on_mismatch == "fail":
        from batchinfer.errors import ModelError
        from batchinfer.model.canary import mismatch_message

        raise ModelError(
            mismatch_message(result, canary),
            hint="re-quantize for this CPU (batchinfer model quantize --target-cpu avx2 for x86 without "
            "VNNI) and verify on an executor of this kind, or set runtime.on_canary_mismatch: warn",
        )
    return result


def clear_cache() -> None:
    with _LOCK:
        _SESSIONS.clear()
