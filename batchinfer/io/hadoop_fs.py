"""A pyarrow filesystem backed by the Spark driver's Hadoop ``FileSystem`` (through py4j).

For stores pyarrow has no client for (``hdfs://`` without libhdfs, ``viewfs://``, other Hadoop
schemes), planning (Parquet footers, row groups), the model bytes, the commit (staging, journal,
renames, ``_SUCCESS``) and the run records (manifest, lock) still need a filesystem on the
driver. Classic Spark has one: its JVM carries Hadoop's client and configuration
(``HADOOP_CONF_DIR``, ``spark.hadoop.*``, Kerberos). :func:`hadoop_filesystem` wraps it as a
``pyarrow.fs.PyFileSystem`` so that code runs unchanged.

Driver only: executors cannot reach py4j, so the job uses Spark's reader and writer for such a
store (:func:`batchinfer.io.storage.spark_fallback`). Paths on the filesystem are the URI's path
(``/warehouse/events``); the handler prefixes the URI's scheme and authority.

Every call is one or a few py4j round trips (~0.1-1 ms each): fine for footers, a model and
bookkeeping files; a listing of many thousands of files takes seconds.
"""

from __future__ import annotations

import io
from urllib.parse import urlsplit

from pyarrow import fs as pafs

_CHUNK = 8 * 2**20  # bytes per py4j transfer (py4j sends byte[] base64-encoded in one message)


def _java_error(exc: BaseException) -> OSError:
    """A py4j error as the OSError pyarrow callers expect (FileNotFoundError where it is one)."""
    java = getattr(exc, "java_exception", None)
    name = java.getClass().getName() if java is not None else type(exc).__name__
    message = (java.getMessage() if java is not None else str(exc)) or name
    first = str(message).strip().splitlines()[0][:300]
    if name.endswith("FileNotFoundException"):
        return FileNotFoundError(first)
    if name.endswith("FileAlreadyExistsException"):
        return FileExistsError(first)
    return OSError(f"{name.rsplit('.', 1)[-1]}: {first}")


class _JavaCalls:
    """Turn py4j's errors into OSErrors (a context manager around each JVM call)."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if exc is None or isinstance(exc, OSError):
            return False
        from py4j.protocol import Py4JError

        if isinstance(exc, Py4JError):
            raise _java_error(exc) from None
        return False


_JAVA = _JavaCalls()


class _JavaStream(io.RawIOBase):
    """A Hadoop stream (``self._stream``) as a Python binary file: closing closes the Java side."""

    _stream = None

    def close(self) -> None:
        if not self.closed and self._stream is not None:
            with _JAVA:
                self._stream.close()
        super().close()


class _HadoopInput(_JavaStream):
    """An ``FSDataInputStream`` as a seekable Python binary file."""

    def __init__(self, stream, size: int) -> None:
        self._stream = stream
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def size(self) -> int:
        return self._size

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._size - self._pos
        n = min(n, max(0, self._size - self._pos))
        if n == 0:
            return b""
        parts = []
        with _JAVA:
            self._stream.seek(self._pos)
            while n > 0:
                data = bytes(self._stream.readNBytes(min(n, _CHUNK)))
                if not data:
                    break
                parts.append(data)
                n -= len(data)
                self._pos += len(data)
        return b"".join(parts)

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _HadoopOutput(_JavaStream):
    """An ``FSDataOutputStream`` as a Python binary file (the file appears on close)."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._written = 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._written

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        with _JAVA:
            for start in range(0, len(view), _CHUNK):
                self._stream.write(bytes(view[start : start + _CHUNK]))
        self._written += len(view)
        return len(view)


class HadoopFileSystemHandler(pafs.FileSystemHandler):
    """``pyarrow.fs.FileSystemHandler`` over one Hadoop ``FileSystem`` (one scheme + authority)."""

    def __init__(self, session, root: str, hadoop_options: dict[str, str] | None = None) -> None:
        self._sc = session.sparkContext
        self._jvm = self._sc._jvm
        self.root = root.rstrip("/")  # e.g. "viewfs://cluster" or "hdfs://namenode:8020"
        conf = self._jvm.org.apache.hadoop.conf.Configuration(self._sc._jsc.hadoopConfiguration())
        for key, value in (hadoop_options or {}).items():
            conf.set(key, value)
        self._conf = conf
        with _JAVA:
            uri = self._jvm.java.net.URI(self.root + "/")
            # A private instance: the shared cache would hand back one built with other settings.
            self._fs = self._jvm.org.apache.hadoop.fs.FileSystem.newInstance(uri, conf)
        self.implementation = self._fs.getClass().getSimpleName()  # e.g. DistributedFileSystem

    # -- helpers
    def _path(self, path: str):
        self._alive()
        return self._jvm.org.apache.hadoop.fs.Path(self.root + "/" + path.lstrip("/"))

    def _alive(self) -> None:
        if self._sc._jsc is None:
            raise OSError(f"the Spark session that opened {self.root} was stopped")

    def _status(self, path: str):
        """The FileStatus of ``path`` or None (one round trip)."""
        try:
            with _JAVA:
                return self._fs.getFileStatus(self._path(path))
        except FileNotFoundError:
            return None

    def _info(self, path: str, status) -> pafs.FileInfo:
        if status is None:
            return pafs.FileInfo(path, pafs.FileType.NotFound)
        if status.isDirectory():
            return pafs.FileInfo(path, pafs.FileType.Directory, mtime_ns=status.getModificationTime() * 10**6)
        return pafs.FileInfo(
            path,
            pafs.FileType.File,
            size=status.getLen(),
            mtime_ns=status.getModificationTime() * 10**6,
        )

    def _relative(self, status) -> str:
        return str(status.getPath().toUri().getPath())

    # -- FileSystemHandler
    def get_type_name(self) -> str:
        return "hadoop"

    def equals(self, other) -> bool:
        return (
            isinstance(other, HadoopFileSystemHandler) and other.root == self.root and other._sc is self._sc
        )

    def normalize_path(self, path: str) -> str:
        return path

    def get_file_info(self, paths):
        return [self._info(p, self._status(p)) for p in paths]

    def get_file_info_selector(self, selector):
        base = self._status(selector.base_dir)
        if base is None:
            if selector.allow_not_found:
                return []
            raise FileNotFoundError(f"{self.root}{selector.base_dir} does not exist")
        if not base.isDirectory():
            raise NotADirectoryError(f"{self.root}{selector.base_dir} is not a directory")
        out, pending = [], [selector.base_dir]
        while pending:
            directory = pending.pop()
            with _JAVA:
                children = list(self._fs.listStatus(self._path(directory)))
            for status in children:
                path = self._relative(status)
                out.append(self._info(path, status))
                if selector.recursive and status.isDirectory():
                    pending.append(path)
        return out

    def create_dir(self, path: str, recursive: bool) -> None:
        with _JAVA:
            if not recursive:
                parent = self._path(path).getParent()
                if parent is not None and not self._fs.exists(parent):
                    raise FileNotFoundError(f"parent of {self.root}{path} does not exist")
            if not self._fs.mkdirs(self._path(path)):
                raise OSError(f"cannot create directory {self.root}{path}")

    def delete_dir(self, path: str) -> None:
        status = self._status(path)
        if status is None:
            raise FileNotFoundError(f"{self.root}{path} does not exist")
        if not status.isDirectory():
            raise NotADirectoryError(f"{self.root}{path} is not a directory")
        with _JAVA:
            if not self._fs.delete(self._path(path), True):
                raise OSError(f"cannot delete directory {self.root}{path}")

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        status = self._status(path)
        if status is None:
            if missing_dir_ok:
                return
            raise FileNotFoundError(f"{self.root}{path} does not exist")
        with _JAVA:
            for child in list(self._fs.listStatus(self._path(path))):
                self._fs.delete(child.getPath(), True)

    def delete_root_dir_contents(self) -> None:
        raise OSError(f"refusing to delete everything under {self.root}")

    def _file_status(self, path: str):
        """The status of a file at ``path``: FileNotFoundError / IsADirectoryError otherwise."""
        status = self._status(path)
        if status is None:
            raise FileNotFoundError(f"{self.root}{path} does not exist")
        if status.isDirectory():
            raise IsADirectoryError(f"{self.root}{path} is a directory")
        return status

    def delete_file(self, path: str) -> None:
        self._file_status(path)
        with _JAVA:
            if not self._fs.delete(self._path(path), False):
                raise OSError(f"cannot delete {self.root}{path}")

    def move(self, src: str, dest: str) -> None:
        """Hadoop rename, with pyarrow's semantics: a file replaces a file, never a directory.

        Hadoop would move ``src`` *into* an existing directory ``dest``; pyarrow (and the commit)
        expect an error there. On HDFS a rename is one namenode operation (atomic, also for
        directories); replacing an existing file is a delete then a rename.
        """
        source = self._status(src)
        if source is None:
            raise FileNotFoundError(f"{self.root}{src} does not exist")
        target = self._status(dest)
        if target is not None:
            if target.isDirectory():
                raise OSError(f"cannot move {self.root}{src} onto the existing directory {self.root}{dest}")
            if source.isDirectory():
                raise OSError(f"cannot move directory {self.root}{src} onto the file {self.root}{dest}")
            self.delete_file(dest)
        with _JAVA:
            if not self._fs.rename(self._path(src), self._path(dest)):
                raise OSError(f"Hadoop rename of {self.root}{src} to {self.root}{dest} failed")

    def copy_file(self, src: str, dest: str) -> None:
        with _JAVA:
            ok = self._jvm.org.apache.hadoop.fs.FileUtil.copy(
                self._fs, self._path(src), self._fs, self._path(dest), False, True, self._conf
            )
        if not ok:
            raise OSError(f"cannot copy {self.root}{src} to {self.root}{dest}")

    def _input(self, path: str) -> _HadoopInput:
        status = self._file_status(path)
        with _JAVA:
            return _HadoopInput(self._fs.open(self._path(path)), status.getLen())

    def open_input_stream(self, path: str):
        import pyarrow as pa

        return pa.PythonFile(self._input(path), mode="r")

    def open_input_file(self, path: str):
        import pyarrow as pa

        return pa.PythonFile(self._input(path), mode="r")

    def open_output_stream(self, path: str, metadata=None):
        import pyarrow as pa

        with _JAVA:
            stream = self._fs.create(self._path(path), True)
        return pa.PythonFile(_HadoopOutput(stream), mode="w")

    def open_append_stream(self, path: str, metadata=None):
        raise OSError(f"appending to {self.root}{path} through the Hadoop FileSystem is not supported")

    # -- beyond pyarrow's interface
    def create_new(self, path: str, data: bytes) -> bool:
        """Create ``path`` holding ``data`` unless it exists (False then). Exclusive on HDFS
        (the namenode refuses a second create), which makes the output lock a real lock there."""
        try:
            with _JAVA:
                stream = self._fs.create(self._path(path), False)
        except FileExistsError:
            return False
        out = _HadoopOutput(stream)
        out.write(data)
        out.close()
        return True


def hadoop_filesystem(session, uri: str, hadoop_options: dict[str, str] | None = None):
    """``pyarrow.fs.PyFileSystem`` for the store of ``uri`` through ``session``'s driver JVM.

    ``session`` must be a classic SparkSession (Spark Connect has no driver JVM here).
    ``hadoop_options`` (``fs.*`` keys) are set on top of the session's Hadoop configuration.

    >>> fs = hadoop_filesystem(spark, "viewfs://cluster/warehouse/events")  # doctest: +SKIP
    >>> fs.get_file_info("/warehouse/events").type  # doctest: +SKIP
    <FileType.Directory: 3>
    """
    parts = urlsplit(uri)
    handler = HadoopFileSystemHandler(session, f"{parts.scheme}://{parts.netloc}", hadoop_options)
    _close_gateway_at_exit(session.sparkContext._gateway)
    return pafs.PyFileSystem(handler)


_GATEWAYS: set[int] = set()


def _close_gateway_at_exit(gateway) -> None:
    """Close py4j's connections before the interpreter exits.

    pyarrow's I/O threads that called into the handler hold py4j connections; left open while
    Python finalizes they abort the process ("terminate called without an active exception",
    exit 134) when the program exits without stopping Spark.
    """
    if id(gateway) in _GATEWAYS:
        return
    _GATEWAYS.add(id(gateway))
    import atexit

    def close() -> None:
        try:
            gateway.close()
        except Exception:  # exiting anyway
            pass

    atexit.register(close)
