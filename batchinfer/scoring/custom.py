"""Opt-in custom pre/post-processing: an importable ``module:function`` name, never code in config.

A config may name hooks only when it also sets ``runtime.allow_custom_code: true``::

    model:
      preprocess: mypkg.features:prepare     # pyarrow.RecordBatch -> pyarrow.RecordBatch
      postprocess: mypkg.features:calibrate  # scored RecordBatch -> RecordBatch, same schema
    runtime:
      allow_custom_code: true

The plan imports each hook on the driver and checks it is callable, so a typo fails in
seconds with a :class:`~batchinfer.errors.ConfigError` naming the field. Executors import the
same name again (the module must be installed there, or shipped with ``spark.submit.pyFiles``):
only the name travels, nothing is unpickled and nothing from the config is evaluated.

``preprocess`` runs on every Arrow batch before the tensors are built; it must return a
RecordBatch that still holds the passthrough and feature columns. ``postprocess`` runs on every
scored batch (passthrough + model output columns, before lineage columns) and must return a
RecordBatch with the same schema.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from batchinfer.errors import ConfigError

HOOK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")

_cache: dict[str, Callable] = {}


def resolve_hook(name: str, field: str) -> Callable:
    """Import ``module:function`` and return the callable; ConfigError naming ``field`` otherwise."""
    if not isinstance(name, str) or not HOOK_NAME.match(name):
        raise ConfigError(
            "invalid custom hook name",
            problems=[(field, f"expected 'package.module:function', got {name!r}")],
        )
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            "custom hook cannot be imported",
            problems=[(field, f"module {module_name!r} cannot be imported ({exc})")],
            hint="install the module (and ship it to the executors, e.g. spark.submit.pyFiles)",
        ) from exc
    func = getattr(module, attr, None)
    if func is None:
        raise ConfigError(
            "custom hook not found",
            problems=[(field, f"module {module_name!r} has no attribute {attr!r}; is this a typo?")],
        )
    if not callable(func):
        raise ConfigError(
            "custom hook is not callable",
            problems=[(field, f"{name} is a {type(func).__name__}, not a function")],
        )
    return func


def load_hooks(preprocess: str | None, postprocess: str | None) -> tuple[Callable | None, Callable | None]:
    """Executor side: the hook callables (imported once per Python worker)."""
    out = []
    for name, field in ((preprocess, "model.preprocess"), (postprocess, "model.postprocess")):
        if name is None:
            out.append(None)
            continue
        if name not in _cache:
            _cache[name] = resolve_hook(name, field)
        out.append(_cache[name])
    return out[0], out[1]


def _check_batch(result, name: str, field: str):
    import pyarrow as pa

    if isinstance(result, pa.Table):
        result = result.combine_chunks().to_batches()
        result = result[0] if len(result) == 1 else pa.concat_batches(result)
    if not isinstance(result, pa.RecordBatch):
        raise ConfigError(
            "custom hook returned the wrong type",
            problems=[(field, f"{name} returned {type(result).__name__}, expected a pyarrow.RecordBatch")],
        )
    return result


def apply_preprocess(func: Callable, batch, name: str):
    return _check_batch(func(batch), name, "model.preprocess")


def apply_postprocess(func: Callable, batch, name: str, schema):
    out = _check_batch(func(batch), name, "model.postprocess")
    if out.schema != schema:
        try:
            out = out.select(schema.names).cast(schema)
        except Exception as exc:
            raise ConfigError(
                "custom hook changed the output schema",
                problems=[
                    (
                        "model.postprocess",
                        f"{name} returned columns {out.schema.names} ({exc}); expected {schema.names} "
                        "with the same types",
                    )
                ],
            ) from None
    return out
