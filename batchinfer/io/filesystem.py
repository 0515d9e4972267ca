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
    renames_dirs: bool = False  # a directory rename is one atomic operation (HDFS, ViewFS)

    @property
    def atomic_rename(self) -> bool:
        return self.is_local or self.renames_dirs

    def join(self, *parts: str) -> Location:
        path = "/".join([self.path.rstrip("/"), *parts])
        uri = "/".join([self.uri.rstrip("/"), *parts])
        return Location(self.fs, path, uri, self.is_local, self.renames_dirs)


def resolve(path_or_uri: str, *, error=None) -> Location:
    """Local paths become absolute (relative to the working directory); URIs map to a filesystem.

    Hadoop schemes (``s3a://``, ``abfss://``...) are mapped by :mod:`batchinfer.io.storage` with
    the job's ``spark.hadoop.fs.*`` settings; ``error`` is the error class raised when the store
    cannot be opened (default :class:`~batchinfer.errors.InputDataError`).
    """
    from pyarrow import fs as pafs

    if "://" in path_or_uri and not path_or_uri.startswith("file://"):
        from batchinfer.errors import InputDataError
        from batchinfer.io.storage import filesystem_for

        filesystem, path = filesystem_for(path_or_uri, error=error or InputDataError)
        scheme = path_or_uri.split("://", 1)[0].lower()
        return Location(filesystem, path.rstrip("/"), path_or_uri.rstrip("/"), False, scheme in _RENAMES_DIRS)
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


# Hadoop filesystems whose directory rename is one namenode operation (atomic).
_RENAMES_DIRS = ("hdfs", "viewfs")

# Object-store schemes that name the same store (Hadoop's s3a/s3n are S3; abfss is abfs over TLS).
_SAME_STORE = {"s3a": "s3", "s3n": "s3", "gcs": "gs", "abfss": "abfs", "wasbs": "wasb"}


def storage_key(path_or_uri: str) -> tuple[str, str]:
    """Where a path really points: ``("file", real path)`` locally, ``(store, "bucket/key")`` otherwise.

    Local paths go through ``os.path.realpath`` (symlinks and ``..`` resolved, as the filesystem
    would); URIs are normalised (scheme aliases, ``//``, ``.``, ``..``, trailing ``/``).
    """
    import posixpath
    from urllib.parse import urlsplit

    if "://" in path_or_uri and not path_or_uri.startswith("file://"):
        parts = urlsplit(path_or_uri)
        scheme = parts.scheme.lower()
        store = _SAME_STORE.get(scheme, scheme)
        key = posixpath.normpath("/" + parts.path.lstrip("/")).lstrip("/")
        netloc = parts.netloc.lower() if store in ("s3", "gs") else parts.netloc
        return store, f"{netloc}/{key}".rstrip("/") if key and key != "." else netloc
    local = path_or_uri[len("file://") :] if path_or_uri.startswith("file://") else path_or_uri
    return "file", os.path.realpath(os.path.expanduser(local))


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _self_and_ancestors(path: str):
    while True:
        yield path
        parent = os.path.dirname(path)
        if parent == path:
            return
        path = parent


def _under(key: str, base: str) -> bool:
    return key.startswith(base.rstrip("/") + "/")


def overlap(a: str, b: str) -> str | None:
    """How location ``b`` overlaps ``a``: ``"same"``, ``"inside"`` (b in a), ``"contains"``, or None.

    Locally this sees through symlinks, ``..`` and second paths to one directory (bind mounts):
    besides the real paths it compares device and inode of each path and its existing ancestors.
    """
    store_a, key_a = storage_key(a)
    store_b, key_b = storage_key(b)
    if store_a != store_b:
        return None
    if key_a == key_b:
        return "same"
    if _under(key_b, key_a):
        return "inside"
    if _under(key_a, key_b):
        return "contains"
    if store_a != "file":
        return None
    id_a, id_b = _identity(key_a), _identity(key_b)
    if id_a is not None and id_a == id_b:
        return "same"
    if id_a is not None and any(_identity(p) == id_a for p in _self_and_ancestors(key_b)):
        return "inside"
    if id_b is not None and any(_identity(p) == id_b for p in _self_and_ancestors(key_a)):
        return "contains"
    return None
