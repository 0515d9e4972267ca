"""Resolve a path or URI to a pyarrow filesystem (local, HDFS, S3, GCS...)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """A filesystem plus a path on it; ``uri`` is what Spark should be given."""

    fs: object  # pyarrow.fs.FileSystem
    path: str
    uri: str
    is_local: bool

    def join(self, *parts: str) -> Location:
        path = "/".join([self.path.rstrip("/"), *parts])
        uri = "/".join([self.uri.rstrip("/"), *parts])
        return Location(self.fs, path, uri, self.is_local)


def resolve(path_or_uri: str) -> Location:
    """Local paths become absolute (relative to the working directory); URIs go to pyarrow."""
    from pyarrow import fs as pafs

    if "://" in path_or_uri and not path_or_uri.startswith("file://"):
        filesystem, path = pafs.FileSystem.from_uri(path_or_uri)
        return Location(filesystem, path.rstrip("/"), path_or_uri.rstrip("/"), False)
    local = path_or_uri[len("file://") :] if path_or_uri.startswith("file://") else path_or_uri
    absolute = os.path.abspath(os.path.expanduser(local))
    return Location(pafs.LocalFileSystem(), absolute, absolute, True)


def exists(loc: Location) -> bool:
    from pyarrow import fs as pafs

    return loc.fs.get_file_info(loc.path).type != pafs.FileType.NotFound


def is_dir(loc: Location) -> bool:
    from pyarrow import fs as pafs

    return loc.fs.get_file_info(loc.path).type == pafs.FileType.Directory


def is_hidden(name: str) -> bool:
    """Spark and Hive ignore names starting with '_' or '.' (``_SUCCESS``, ``.crc``, ``_batchinfer``)."""
    return name.startswith("_") or name.startswith(".")
