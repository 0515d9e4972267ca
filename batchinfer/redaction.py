"""One redactor for everything that leaves the process: values read with ``${env:NAME}`` become ``***``.

The config loader remembers every value it substituted from the environment
(:meth:`Redactor.remember`); the output boundaries pass their text through the process-wide
:data:`REDACTOR`: the CLI's error lines and ``fix:`` hints, log records (:class:`RedactingFilter`),
Spark's console lines and log files, the manifest, and the errors a job raises or returns.

>>> r = Redactor(); r.remember(["s3cr3t"]); r.text("partition ds=s3cr3t not found")
'partition ds=*** not found'
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import wraps
from typing import Any

MASK = "***"


def redact(value: Any, secrets: Sequence[str]) -> Any:
    """Replace every occurrence of a secret string inside nested data (dicts, lists, str) with ``***``."""
    secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not secrets:
        return value
    return _redact(value, secrets)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, dict):
        # Keys too: partition names ("ds=<value>") are keys of the manifest's per-partition counts.
        return {_redact(k, secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v, secrets) for v in value]
    if isinstance(value, str):
        for s in secrets:
            value = value.replace(s, MASK)
    return value


class Redactor:
    """The secrets this process has read from the environment, and the ways to hide them."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def remember(self, values: Iterable[str]) -> None:
        self._secrets.update(v for v in values if v)

    @property
    def secrets(self) -> list[str]:
        return sorted(self._secrets)

    def text(self, text: str) -> str:
        return redact(text, self.secrets)

    def data(self, value: Any, extra: Sequence[str] = ()) -> Any:
        return redact(value, [*self.secrets, *extra])

    def scrub(self, exc: BaseException) -> BaseException:
        """Redact a batchinfer error in place (message, hint, problems, failures, ``str()``)."""
        secrets = self.secrets
        if not secrets:
            return exc
        for name in ("message", "hint"):
            value = getattr(exc, name, None)
            if isinstance(value, str):
                setattr(exc, name, redact(value, secrets))
        if getattr(exc, "problems", None):
            exc.problems = [tuple(redact(list(p), secrets)) for p in exc.problems]  # type: ignore[attr-defined]
        if getattr(exc, "failures", None):
            exc.failures = redact(exc.failures, secrets)  # type: ignore[attr-defined]
        exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
        return exc


REDACTOR = Redactor()
"""Process-wide: every value any config loaded in this process took from the environment."""


def scrubs_errors(func):
    """Decorator: batchinfer errors leaving ``func`` carry no secret (see :meth:`Redactor.scrub`)."""
    from batchinfer.errors import BatchInferError

    @wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except BatchInferError as exc:
            REDACTOR.scrub(exc)
            raise

    return wrapper


class RedactingFilter(logging.Filter):
    """A handler filter: the formatted message and any traceback text leave without secrets."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.redactor.secrets:
            return True
        record.msg = self.redactor.text(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self.redactor.text(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True
