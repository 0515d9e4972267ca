"""The model as the driver sees it: bytes, sha256 digest and ONNX signature.

The driver reads the file once; executors only ever get the bytes (broadcast), never the path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from batchinfer.errors import ModelError

# ONNX element type (as onnxruntime prints it) → numpy dtype name used to build input tensors.
ONNX_TO_NUMPY: dict[str, str] = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, ONNX type, numpy dtype (None if not a plain tensor), shape."""

    name: str
    onnx_type: str
    dtype: str | None
    shape: tuple[int | str | None, ...] | None

    @property
    def rank(self) -> int | None:
        return None if self.shape is None else len(self.shape)

    def dim(self, i: int) -> int | None:
        """A static dimension, or None when symbolic/unknown."""
        if self.shape is None or i >= len(self.shape):
            return None
        d = self.shape[i]
        return d if isinstance(d, int) and d > 0 else None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "type": self.onnx_type,
            "dtype": self.dtype,
            "shape": list(self.shape or []),
        }


@dataclass(frozen=True)
class ModelSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    opset: int | None
    producer: str
    ir_version: int | None

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def to_dict(self) -> dict:
        return {
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "opset": self.opset,
            "producer": self.producer,
            "ir_version": self.ir_version,
        }


@dataclass(frozen=True)
class ModelArtifact:
    """Model bytes plus what the plan needs to know about them."""

    path: str
    sha256: str
    size_bytes: int
    signature: ModelSignature
    content: bytes = field(repr=False)

    def summary(self) -> dict:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "opset": self.signature.opset,
            "producer": self.signature.producer,
        }


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _shape(node_arg) -> tuple | None:
    shape = getattr(node_arg, "shape", None)
    if shape is None:
        return None
    return tuple(d if isinstance(d, int) else (d if isinstance(d, str) else None) for d in shape)


def _spec(node_arg) -> TensorSpec:
    onnx_type = node_arg.type
    return TensorSpec(
        name=node_arg.name,
        onnx_type=onnx_type,
        dtype=ONNX_TO_NUMPY.get(onnx_type),
        shape=_shape(node_arg) if onnx_type.startswith("tensor(") else None,
    )


def read_signature(content: bytes, *, path: str = "<bytes>") -> ModelSignature:
    """Parse and load the model with the installed onnxruntime (on CPU) and read its signature.

    Loading it here is the authoritative check: a truncated file, a non-ONNX file or an opset
    newer than this onnxruntime supports all fail now, on the driver, before any executor work.
    """
    import onnx
    import onnxruntime as ort

    try:
        proto = onnx.load_model_from_string(content)
    except Exception as exc:  # protobuf raises DecodeError and friends
        raise ModelError(
            f"model file {path} is not a valid ONNX model ({type(exc).__name__}: {exc})",
            hint="check the file is a complete .onnx export (not truncated, not a pickle or a zip)",
        ) from exc
    if len(proto.graph.node) == 0 and len(proto.graph.output) == 0:
        raise ModelError(
            f"model file {path} is not a valid ONNX model (no graph found; {len(content)} bytes)",
            hint="check the file is a complete .onnx export (not truncated, not another format)",
        )
    opset = next((imp.version for imp in proto.opset_import if imp.domain in ("", "ai.onnx")), None)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(content, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = str(exc).strip()
        if "opset" in text.lower() and "support" in text.lower():
            reason = f"opset {opset} is newer than this onnxruntime supports"
            hint = "re-export the model with an older target opset, or upgrade onnxruntime"
        else:
            # Drop onnxruntime's C++ source location prefix; keep the reason.
            reason = text.split(") ", 1)[-1] if "onnxruntime_src" in text else text
            reason = reason[:300]
            hint = "check the model loads with onnxruntime; re-export it if needed"
        raise ModelError(
            f"onnxruntime {ort.__version__} cannot load model {path} (opset {opset}): {reason}", hint=hint
        ) from exc
    return ModelSignature(
        inputs=tuple(_spec(i) for i in session.get_inputs()),
        outputs=tuple(_spec(o) for o in session.get_outputs()),
        opset=opset,
        producer=f"{proto.producer_name} {proto.producer_version}".strip(),
        ir_version=proto.ir_version,
    )


def load_model(path: str | Path, *, expected_sha256: str | None = None) -> ModelArtifact:
    """Read the model once on the driver, check its digest, and read its signature."""
    if "://" in str(path) and not str(path).startswith("file://"):
        return _load_remote_model(str(path), expected_sha256)
    p = Path(str(path)[len("file://") :] if str(path).startswith("file://") else path)
    try:
        content = p.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"model file {p} not found", hint="check model.path; is this a typo?") from exc
    except IsADirectoryError as exc:
        raise ModelError(f"model path {p} is a directory, expected an .onnx file") from exc
    except OSError as exc:
        raise ModelError(f"model file {p} cannot be read: {exc}") from exc
    return _artifact(str(p), content, expected_sha256)


def _load_remote_model(uri: str, expected_sha256: str | None) -> ModelArtifact:
    """A model in an object store (``s3a://bucket/m.onnx``): read once on the driver, like a file."""
    from batchinfer.io.filesystem import resolve
    from batchinfer.io.storage import storage_error

    loc = resolve(uri, error=ModelError)
    try:
        with loc.fs.open_input_stream(loc.path) as fh:
            content = fh.read()
    except FileNotFoundError:
        raise ModelError(f"model file {uri} not found", hint="check model.path; is this a typo?") from None
    except OSError as exc:
        raise storage_error(uri, exc, ModelError, action="read model") from None
    return _artifact(uri, content, expected_sha256)


def _artifact(p: str, content: bytes, expected_sha256: str | None) -> ModelArtifact:
    digest = sha256_bytes(content)
    if expected_sha256 is not None and digest.lower() != expected_sha256.lower():
        raise ModelError(
            f"model {p} digest mismatch: expected sha256 {expected_sha256.lower()}, got {digest}",
            hint="the file changed since the config was written; update model.sha256 only if the new "
            "model is intended",
        )
    signature = read_signature(content, path=str(p))
    return ModelArtifact(
        path=str(p), sha256=digest, size_bytes=len(content), signature=signature, content=content
    )
