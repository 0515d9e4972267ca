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


# Mappings whose keys are themselves dotted names (Spark properties): in a ``--set`` path, whatever
# follows such a prefix is one key (``spark.conf.spark.sql.shuffle.partitions``).
DOTTED_KEY_MAPPINGS: tuple[tuple[str, ...], ...] = (("spark", "conf"),)


def split_key_path(key: str) -> list[str]:
    """The parts of a ``--set`` key path; quote a part that contains dots.

    >>> split_key_path('spark.conf."spark.sql.shuffle.partitions"')
    ['spark', 'conf', 'spark.sql.shuffle.partitions']
    >>> split_key_path("spark.conf.spark.sql.shuffle.partitions")  # spark.conf keys are Spark properties
    ['spark', 'conf', 'spark.sql.shuffle.partitions']
    >>> split_key_path("input.partitions.ds")
    ['input', 'partitions', 'ds']

    Raises ``ValueError`` (with the reason) for an empty part or an unclosed quote.
    """
    parts: list[str] = []
    quoted: list[bool] = []
    i, n = 0, len(key)
    while True:
        if i < n and key[i] in "\"'":
            quote = key[i]
            end = key.find(quote, i + 1)
            if end < 0:
                raise ValueError(f"unclosed {quote} in the key")
            part, i = key[i + 1 : end], end + 1
            if i < n and key[i] != ".":
                raise ValueError(f"a quoted part must be followed by '.' or the end, got {key[i]!r}")
            quoted.append(True)
        else:
            end = key.find(".", i)
            end = n if end < 0 else end
            part, i = key[i:end], end
            quoted.append(False)
        if not part:
            raise ValueError("empty part in the key path (two dots in a row, or a dot at an end)")
        parts.append(part)
        if i >= n:
            break
        i += 1  # the dot
        if i >= n:
            raise ValueError("empty part in the key path (two dots in a row, or a dot at an end)")
    for prefix in DOTTED_KEY_MAPPINGS:
        k = len(prefix)
        if tuple(parts[:k]) == prefix and len(parts) > k + 1 and not any(quoted[k:]):
            parts = [*parts[:k], ".".join(parts[k:])]
    return parts


def set_path(data: dict, parts: list[str], value) -> str | None:
    """Set ``value`` at ``parts`` inside ``data`` (in place); a mapping merges into a mapping.

    Returns None, or why the path cannot be set (a part that is not a mapping).

    >>> d = {"spark": {"conf": {"a": "1"}}}
    >>> set_path(d, ["spark", "conf"], {"b": "2"}); d
    {'spark': {'conf': {'a': '1', 'b': '2'}}}
    """
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            return f"cannot set a key inside {part!r}, which is a {type(child).__name__}"
        node = child
    last = parts[-1]
    if isinstance(value, Mapping) and isinstance(node.get(last), Mapping):
        node[last] = deep_merge(node[last], value)
    else:
        node[last] = value
    return None
