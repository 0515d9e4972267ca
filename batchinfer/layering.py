"""Merging config layers (``conf/base`` + ``conf/<env>``). Standard library only: the Airflow
helper uses it in an Airflow environment that has none of batchinfer's dependencies."""

from __future__ import annotations

from collections.abc import Mapping


def deep_merge(base: Mapping, overlay: Mapping) -> dict:
    """Overlay wins; mappings merge recursively, everything else (lists too) is replaced.

    >>> deep_merge({"a": {"x": 1, "y": 2}, "l": [1]}, {"a": {"y": 3}, "l": [2]})
    {'a': {'x': 1, 'y': 3}, 'l': [2]}
    """
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
