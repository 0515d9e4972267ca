"""The error hierarchy: every expected failure is a ``BatchInferError`` with an exit code.

Each error also inherits the builtin it resembles, so callers may catch either
(``ConfigError`` is a ``ValueError``, ``InputDataError`` a ``ValueError``, ...).

Exit codes (documented in the README and returned by the CLI):

====  ==========================  ===============================================
code  error                       meaning
====  ==========================  ===============================================
0     --                          success
1     (any other exception)       unexpected error: a bug or an infrastructure failure
2     ConfigError                 the job config (or a command-line argument) is invalid
3     InputDataError              input data missing, unreadable or not matching the plan
4     ModelError                  model file unreadable, not ONNX, or not matching the config
5     GateFailedError             a data-quality / drift / prediction check gate failed
6     OutputError                 output exists (error_if_exists), is locked, or overlaps input
7     DeviceError                 the requested device (GPU) is not available
8     --                          succeeded (output committed) but ``--manifest-out`` could not be
                                  written; the run record is in ``<output>/_batchinfer/runs/``
====  ==========================  ===============================================
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
# Not an error: the job succeeded and committed, only the --manifest-out copy is missing.
EXIT_MANIFEST_NOT_WRITTEN = 8


class BatchInferError(Exception):
    """Base class of every expected batchinfer failure."""

    exit_code: int = EXIT_UNEXPECTED
    kind: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message if hint is None else f"{message} (fix: {hint})")

    def to_dict(self) -> dict:
        return {
            "type": type(self).__name__,
            "kind": self.kind,
            "exit_code": self.exit_code,
            "message": self.message,
            "hint": self.hint,
        }


class ConfigError(BatchInferError, ValueError):
    """The job configuration is invalid. ``problems`` lists every (field path, message)."""

    exit_code = 2
    kind = "config"

    def __init__(
        self,
        message: str,
        *,
        problems: list[tuple[str, str]] | None = None,
        hint: str | None = None,
    ) -> None:
        self.problems = list(problems or [])
        if self.problems:
            lines = "; ".join(f"{path}: {msg}" for path, msg in self.problems)
            message = f"{message}: {lines}"
        super().__init__(message, hint=hint)

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["problems"] = [{"field": p, "message": m} for p, m in self.problems]
        return out


class InputDataError(BatchInferError, ValueError):
    """Input data is missing, unreadable, or does not match what the job needs."""

    exit_code = 3
    kind = "input"


class ModelError(BatchInferError, ValueError):
    """The model file is unreadable, not ONNX, or does not match the job config."""

    exit_code = 4
    kind = "model"


class GateFailedError(BatchInferError, RuntimeError):
    """A check gate (data quality, drift, predictions) failed; nothing was written."""

    exit_code = 5
    kind = "gate"

    def __init__(self, message: str, *, failures: list | None = None, hint: str | None = None):
        self.failures = list(failures or [])
        super().__init__(message, hint=hint)


class OutputError(BatchInferError, RuntimeError):
    """The output cannot be written: it exists, is locked by another run, or overlaps input."""

    exit_code = 6
    kind = "output"


class OutputLockedError(OutputError):
    """Another run holds the output lock."""


class ForeignFilesError(OutputError):
    """A partition the commit would replace holds files that no batchinfer run wrote."""


class DeviceError(BatchInferError, RuntimeError):
    """The requested execution device (e.g. a GPU) is not available."""

    exit_code = 7
    kind = "device"


class TaskFailedError(BatchInferError, RuntimeError):
    """A scoring task failed on every attempt the engine allows (``spark.task.maxFailures``).

    Not deterministic as far as batchinfer can tell (a crash, a killed worker): exit 1, safe to retry.
    ``detail`` keeps the last attempt's traceback for the log, never the console.
    """

    kind = "task"

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None) -> None:
        self.detail = detail
        super().__init__(message, hint=hint)


def error_from_dict(info: dict) -> BatchInferError:
    """Rebuild a typed error from :meth:`BatchInferError.to_dict` (e.g. one a Spark task reported)."""
    classes = {c.__name__: c for c in _subclasses(BatchInferError)}
    cls = classes.get(info.get("type", ""), BatchInferError)
    exc = cls.__new__(cls)
    BatchInferError.__init__(exc, info.get("message", ""), hint=info.get("hint"))
    if isinstance(exc, ConfigError):
        exc.problems = [(p["field"], p["message"]) for p in info.get("problems", [])]
    if isinstance(exc, GateFailedError):
        exc.failures = []
    return exc


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


EXIT_CODES: dict[int, str] = {
    EXIT_OK: "success",
    EXIT_UNEXPECTED: "unexpected error (bug or infrastructure failure; safe to retry)",
    ConfigError.exit_code: "config error",
    InputDataError.exit_code: "input data / schema error",
    ModelError.exit_code: "model error",
    GateFailedError.exit_code: "check gate failed (data quality, drift or predictions)",
    OutputError.exit_code: "output error (exists, locked, or overlaps input)",
    DeviceError.exit_code: "device error (GPU requested but unavailable)",
    EXIT_MANIFEST_NOT_WRITTEN: "succeeded and committed, but --manifest-out could not be written "
    "(warning; the manifest is in <output>/_batchinfer/runs/<run_id>/)",
}
