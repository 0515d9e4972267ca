"""Storage URIs as Spark users write them, mapped to pyarrow filesystems with the same settings.

One config serves both readers: the ``spark.hadoop.fs.s3a.*`` / ``fs.azure.*`` / ``fs.gs.*``
properties in ``spark.conf`` that Spark's reader uses are read here too, so the pyarrow path
(planning, the direct reader and writer, the commit) reaches the same endpoint with the same
credentials. Without them the standard environment applies (``AWS_ACCESS_KEY_ID``,
``AWS_ENDPOINT_URL``, ``AZURE_STORAGE_ACCOUNT_KEY``, ``GOOGLE_APPLICATION_CREDENTIALS``, then the
SDK's default chain: profile, instance profile / workload identity).

=================  ===========================  =========================================
URI                pyarrow filesystem           settings carried across
=================  ===========================  =========================================
``s3a://`` ``s3n://`` ``s3://``  ``S3FileSystem``  ``fs.s3a.endpoint``, ``fs.s3a.path.style.access``,
                                                ``fs.s3a.connection.ssl.enabled``, ``fs.s3a.access.key``,
                                                ``fs.s3a.secret.key``, ``fs.s3a.session.token``,
                                                ``fs.s3a.endpoint.region``, ``fs.s3a.aws.credentials.provider``
                                                (per bucket: ``fs.s3a.bucket.<bucket>.<key>``)
``gs://`` ``gcs://``  ``GcsFileSystem``        ``fs.gs.storage.root.url`` (endpoint)
``abfs://`` ``abfss://``  ``AzureFileSystem``  ``fs.azure.account.key.<account>.dfs.core.windows.net``
``hdfs://``        ``HadoopFileSystem``         needs libhdfs, libjvm and a Hadoop ``CLASSPATH``
``file://``, path  ``LocalFileSystem``          --
other (``viewfs://`` ...)  --                  --
=================  ===========================  =========================================

Where pyarrow cannot open a store (``hdfs://`` without libhdfs, ``viewfs://``, other Hadoop
schemes) and a classic SparkSession is registered with :func:`use_hadoop`, the driver opens it
through that session's Hadoop ``FileSystem`` (:mod:`batchinfer.io.hadoop_fs`); the job then
reads and writes it with Spark's reader and writer (:func:`spark_fallback`).

Secrets (secret keys, session tokens, account keys) are registered with the process-wide
redactor as soon as they are read, and :class:`StorageOptions` never shows them in its ``repr``.
The driver calls :func:`configure`; the Spark tasks get the same :class:`StorageOptions` in the
function they run (pickled with it, not logged) and call :func:`configure` before they open files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from batchinfer.errors import BatchInferError, InputDataError

# Hadoop property names without the ``spark.hadoop.`` prefix, as S3A names them.
_S3A_KEYS = (
    "endpoint",
    "endpoint.region",
    "region",
    "path.style.access",
    "connection.ssl.enabled",
    "access.key",
    "secret.key",
    "session.token",
    "aws.credentials.provider",
)
_SECRET_WORDS = ("secret", "token", "account.key", "password")
_ANONYMOUS_PROVIDER = "AnonymousAWSCredentialsProvider"


def _is_secret(key: str) -> bool:
    return any(w in key for w in _SECRET_WORDS)


@dataclass(frozen=True)
class StorageOptions:
    """The Hadoop filesystem properties of a job (``fs.s3a.endpoint`` ...) and the environment.

    ``hadoop`` holds the properties without the ``spark.hadoop.`` prefix; ``env`` the standard
    credential variables seen on the driver (so tasks on other hosts use the same ones).
    """

    hadoop: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        shown = {k: ("***" if _is_secret(k) else v) for k, v in self.hadoop}
        return f"StorageOptions(hadoop={shown}, env={sorted(k for k, _ in self.env)})"

    @classmethod
    def from_spark_conf(
        cls, conf: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
    ) -> StorageOptions:
        """Pick the filesystem properties out of ``spark.conf`` (``spark.hadoop.fs.*``) and the env.

        >>> StorageOptions.from_spark_conf({"spark.hadoop.fs.s3a.endpoint": "http://minio:9000"},
        ...     environ={}).get("fs.s3a.endpoint")
        'http://minio:9000'
        """
        from batchinfer.redaction import REDACTOR

        hadoop = {}
        for key, value in (conf or {}).items():
            if key.startswith("spark.hadoop.fs."):
                hadoop[key[len("spark.hadoop.") :]] = str(value)
        environ = os.environ if environ is None else environ
        env = {k: v for k, v in environ.items() if k in _ENV_KEYS and v}
        REDACTOR.remember([v for k, v in hadoop.items() if _is_secret(k)])
        REDACTOR.remember([v for k, v in env.items() if _is_secret(k.lower().replace("_", "."))])
        return cls(tuple(sorted(hadoop.items())), tuple(sorted(env.items())))

    def get(self, key: str, default: str | None = None) -> str | None:
        return dict(self.hadoop).get(key, default)

    def environ(self, key: str) -> str | None:
        return dict(self.env).get(key)

    def s3(self, bucket: str, key: str) -> str | None:
        """An S3A property for ``bucket``: ``fs.s3a.bucket.<bucket>.<key>`` beats ``fs.s3a.<key>``."""
        value = self.get(f"fs.s3a.bucket.{bucket}.{key}")
        return value if value is not None else self.get(f"fs.s3a.{key}")


def secret_values(conf) -> list[str]:
    """The values of secret filesystem properties in a ``spark.conf`` mapping (keys, tokens)."""
    if not isinstance(conf, Mapping):
        return []
    return [
        str(v)
        for k, v in conf.items()
        if isinstance(k, str) and k.startswith("spark.hadoop.fs.") and _is_secret(k) and v not in (None, "")
    ]


_ENV_KEYS = frozenset(
    {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_PROFILE",
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "GOOGLE_APPLICATION_CREDENTIALS",
    }
)

_ACTIVE = StorageOptions()
_CACHE: dict[tuple, object] = {}


def configure(options: StorageOptions | None) -> None:
    """Make ``options`` the settings every :func:`~batchinfer.io.filesystem.resolve` uses."""
    global _ACTIVE
    options = options or StorageOptions()
    if options != _ACTIVE:
        _ACTIVE = options
        _CACHE.clear()


def active() -> StorageOptions:
    return _ACTIVE


# --------------------------------------------------------------- stores only Hadoop reaches
_HADOOP_SESSION = None  # the classic SparkSession whose driver JVM opens them (use_hadoop)
_HADOOP_CACHE: dict[tuple, object] = {}
_NATIVE_HDFS: dict[tuple, str | None] = {}  # (netloc, options) -> why pyarrow cannot open it


def use_hadoop(session) -> None:
    """Open stores pyarrow cannot reach through ``session``'s driver JVM (None: stop doing so).

    ``session`` must be a classic SparkSession: Spark Connect has no driver JVM in this process.
    """
    global _HADOOP_SESSION
    if session is not _HADOOP_SESSION:
        _HADOOP_CACHE.clear()
    _HADOOP_SESSION = session


def hadoop_session():
    """The session registered by :func:`use_hadoop`, while its SparkContext is alive; else None."""
    session = _HADOOP_SESSION
    if session is None or getattr(session.sparkContext, "_jsc", None) is None:
        return None
    return session


def pyarrow_problem(uri: str, options: StorageOptions | None = None) -> str | None:
    """Why pyarrow cannot open the store of ``uri`` (e.g. ``"viewfs:// has no pyarrow
    filesystem"``), or None when it can. Never raises; ``hdfs://`` is tried once per namenode
    (pyarrow loads libhdfs then)."""
    if "://" not in str(uri):
        return None
    options = options or _ACTIVE
    parts = urlsplit(uri)
    store = canonical_scheme(parts.scheme)
    if store in ("file", "s3", "gs", "abfs") or len(store) == 1:  # a Windows drive letter
        return None
    if store != "hdfs":
        return f"{parts.scheme}:// has no pyarrow filesystem"
    key = (parts.netloc, options)
    if key not in _NATIVE_HDFS:
        try:
            filesystem_for(uri, options, native_only=True)
            _NATIVE_HDFS[key] = None
        except BatchInferError:
            _NATIVE_HDFS[key] = "hdfs:// without libhdfs"
    return _NATIVE_HDFS[key]


def needs_hadoop(uri: str, options: StorageOptions | None = None) -> bool:
    """True when only a Hadoop FileSystem (Spark's) can open ``uri``."""
    return pyarrow_problem(uri, options) is not None


def hadoop_served(uri: str) -> str | None:
    """The Hadoop FileSystem class serving ``uri`` on the driver (``ViewFileSystem``...), or None."""
    if not needs_hadoop(uri) or hadoop_session() is None:
        return None
    try:
        fs, _ = filesystem_for(uri)
    except BatchInferError:
        return None
    return getattr(getattr(fs, "handler", None), "implementation", None)


def _hadoop_filesystem(session, parts, options: StorageOptions, error):
    key = (id(session), parts.scheme.lower(), parts.netloc, options)
    filesystem = _HADOOP_CACHE.get(key)
    if filesystem is None:
        from batchinfer.io.hadoop_fs import hadoop_filesystem

        try:
            filesystem = hadoop_filesystem(session, parts.geturl(), dict(options.hadoop))
        except OSError as exc:
            raise error(
                f"cannot open {parts.geturl()} through the Spark driver's Hadoop FileSystem: {exc}",
                hint=f"check the URI; Spark needs a Hadoop FileSystem for {parts.scheme}:// on its "
                f"classpath (fs.{parts.scheme}.impl) and its settings (HADOOP_CONF_DIR, spark.hadoop.*)",
            ) from None
        _HADOOP_CACHE[key] = filesystem
    return filesystem


# Hadoop and Spark spellings of one store (the same table decides overlaps, see filesystem.py).
def canonical_scheme(scheme: str) -> str:
    from batchinfer.io.filesystem import _SAME_STORE

    scheme = scheme.lower()
    return _SAME_STORE.get(scheme, scheme)


def is_object_store(uri: str) -> bool:
    """True for stores where rename is a copy then a delete (S3, GCS, ABFS)."""
    if "://" not in uri:
        return False
    return canonical_scheme(urlsplit(uri).scheme) in ("s3", "gs", "abfs", "wasb")


def credential_source(uri: str, options: StorageOptions | None = None) -> str:
    """Where the credentials for ``uri`` come from, in words (for error lines and the manifest)."""
    options = options or _ACTIVE
    parts = urlsplit(uri)
    store = canonical_scheme(parts.scheme)
    if store == "s3":
        bucket = parts.netloc
        provider = options.s3(bucket, "aws.credentials.provider") or ""
        if _ANONYMOUS_PROVIDER in provider:
            return "anonymous (fs.s3a.aws.credentials.provider)"
        if options.s3(bucket, "access.key"):
            which = "bucket." + bucket + "." if options.get(f"fs.s3a.bucket.{bucket}.access.key") else ""
            return f"spark.hadoop.fs.s3a.{which}access.key"
        if options.environ("AWS_ACCESS_KEY_ID"):
            return "environment AWS_ACCESS_KEY_ID"
        if provider:  # e.g. InstanceProfileCredentialsProvider: pyarrow's SDK chain finds the same
            return f"{provider.rsplit('.', 1)[-1]} (fs.s3a.aws.credentials.provider; AWS default chain)"
        if options.environ("AWS_PROFILE"):
            return f"AWS profile {options.environ('AWS_PROFILE')}"
        return "AWS default chain (~/.aws, instance profile / web identity)"
    if store == "abfs":
        account = parts.netloc.partition("@")[2].split(".")[0]
        if options.get(f"fs.azure.account.key.{account}.dfs.core.windows.net"):
            return f"spark.hadoop.fs.azure.account.key.{account}.dfs.core.windows.net"
        if options.environ("AZURE_STORAGE_ACCOUNT_KEY"):
            return "environment AZURE_STORAGE_ACCOUNT_KEY"
        return "Azure default credential (managed identity, az login)"
    if store == "gs":
        if options.environ("GOOGLE_APPLICATION_CREDENTIALS"):
            return "environment GOOGLE_APPLICATION_CREDENTIALS"
        return "Google application default credentials"
    if store in ("file", "") or len(store) == 1:
        return "local filesystem"
    return "Hadoop configuration (HADOOP_CONF_DIR, spark.hadoop.*, Kerberos ticket cache)"


def filesystem_for(
    uri: str, options: StorageOptions | None = None, *, error=InputDataError, native_only: bool = False
):
    """``(pyarrow filesystem, path on it)`` for a URI; ``error`` is the class raised when it fails.

    A store pyarrow cannot open goes through the Hadoop FileSystem of the session registered
    with :func:`use_hadoop` (unless ``native_only``); without one, the error says what to do.
    """
    options = options or _ACTIVE
    parts = urlsplit(uri)
    store = canonical_scheme(parts.scheme)
    path = parts.path.lstrip("/")
    if not native_only and store not in ("s3", "gs", "abfs") and needs_hadoop(uri, options):
        session = hadoop_session()
        if session is not None:
            return _hadoop_filesystem(session, parts, options, error), "/" + path
    if store in ("s3", "gs"):
        fs_path = f"{parts.netloc}/{path}".rstrip("/")
        key = (store, parts.netloc, options)
    elif store == "abfs":
        container, _, host = parts.netloc.partition("@")
        fs_path = f"{container}/{path}".rstrip("/")
        key = (store, host, options)
    elif store == "hdfs":
        fs_path = "/" + path
        key = (store, parts.netloc, options)
    else:
        raise error(
            f"unsupported storage scheme {parts.scheme}:// in {uri} (pyarrow has no filesystem for it)",
            hint="use s3a://, s3://, gs://, abfs(s)://, hdfs://, file:// or a local path; a store "
            "Hadoop has a FileSystem for (viewfs://...) needs runtime.engine: spark (classic), whose "
            "driver opens it",
        )
    filesystem = _CACHE.get(key)
    if filesystem is None:
        try:
            filesystem = _build(store, parts, options, error)
        except BatchInferError:
            raise
        except (OSError, ValueError, ImportError) as exc:
            raise storage_error(uri, exc, error, options, action="open") from None
        _CACHE[key] = filesystem
    return filesystem, fs_path


def _truthy(value: str | None) -> bool | None:
    if value is None:
        return None
    return value.strip().lower() in ("true", "1", "yes")


def _build(store: str, parts, options: StorageOptions, error=InputDataError):
    from pyarrow import fs as pafs

    if store == "s3":
        return pafs.S3FileSystem(**s3_arguments(parts.netloc, options))
    if store == "gs":
        kwargs = {}
        root = options.get("fs.gs.storage.root.url")
        if root:
            split = urlsplit(root)
            kwargs.update(endpoint_override=split.netloc or root, scheme=split.scheme or "https")
        return pafs.GcsFileSystem(**kwargs)
    if store == "abfs":
        account = parts.netloc.partition("@")[2].split(".")[0]
        if not account:
            raise error(
                f"abfs URI {parts.geturl()} names no storage account",
                hint="write abfss://<container>@<account>.dfs.core.windows.net/<path>",
            )
        kwargs = {"account_name": account}
        account_key = options.get(f"fs.azure.account.key.{account}.dfs.core.windows.net") or options.environ(
            "AZURE_STORAGE_ACCOUNT_KEY"
        )
        if account_key:
            kwargs["account_key"] = account_key
        return pafs.AzureFileSystem(**kwargs)
    # hdfs: pyarrow loads libhdfs through the JVM at construction time.
    host, _, port = parts.netloc.partition(":")
    try:
        return pafs.HadoopFileSystem(host or "default", int(port) if port else 8020)
    except (OSError, RuntimeError) as exc:
        raise error(
            f"hdfs:// needs libhdfs, which this Python cannot load ({str(exc).splitlines()[0][:160]}) "
            f"for {parts.geturl()}",
            hint="run on classic Spark (runtime.engine: spark), whose driver opens it through Hadoop, "
            "or install a Hadoop client and set JAVA_HOME, HADOOP_HOME, ARROW_LIBHDFS_DIR and "
            "CLASSPATH=$(hadoop classpath --glob) (a pip-installed pyspark does not provide them)",
        ) from None


def s3_arguments(bucket: str, options: StorageOptions | None = None) -> dict:
    """The ``pyarrow.fs.S3FileSystem`` arguments the S3A settings and environment give."""
    options = options or _ACTIVE
    kwargs: dict = {}
    endpoint = (
        options.s3(bucket, "endpoint")
        or options.environ("AWS_ENDPOINT_URL_S3")
        or options.environ("AWS_ENDPOINT_URL")
    )
    ssl = _truthy(options.s3(bucket, "connection.ssl.enabled"))
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        kwargs["endpoint_override"] = split.netloc or endpoint
        scheme = split.scheme or ("http" if ssl is False else "https")
        kwargs["scheme"] = scheme
    elif ssl is False:
        kwargs["scheme"] = "http"
    region = (
        options.s3(bucket, "endpoint.region")
        or options.s3(bucket, "region")
        or options.environ("AWS_REGION")
        or options.environ("AWS_DEFAULT_REGION")
    )
    if region:
        kwargs["region"] = region
    elif endpoint:
        kwargs["region"] = "us-east-1"  # S3-compatible servers ignore it; skips a region lookup
    path_style = _truthy(options.s3(bucket, "path.style.access"))
    if path_style is False:
        kwargs["force_virtual_addressing"] = True
    provider = options.s3(bucket, "aws.credentials.provider") or ""
    if _ANONYMOUS_PROVIDER in provider:
        kwargs["anonymous"] = True
        return kwargs
    access = options.s3(bucket, "access.key")
    secret = options.s3(bucket, "secret.key")
    token = options.s3(bucket, "session.token")
    if not access and options.environ("AWS_ACCESS_KEY_ID"):
        access = options.environ("AWS_ACCESS_KEY_ID")
        secret = options.environ("AWS_SECRET_ACCESS_KEY")
        token = options.environ("AWS_SESSION_TOKEN")
    if access:
        kwargs.update(access_key=access, secret_key=secret or "")
        if token:
            kwargs["session_token"] = token
    return kwargs


def _reason(exc: BaseException) -> str:
    text = str(exc)
    upper = text.upper()
    if any(
        s in upper
        for s in (
            "ACCESS_DENIED",
            "INVALID_ACCESS_KEY_ID",
            "INVALIDACCESSKEYID",
            "SIGNATURE_DOES_NOT_MATCH",
            "SIGNATUREDOESNOTMATCH",
            "403",
        )
    ):
        return "access denied"
    if any(s in upper for s in ("NO_SUCH_BUCKET", "NOSUCHBUCKET", "BUCKET DOES NOT EXIST")) or (
        "bucket" in text.lower() and "not found" in text.lower()
    ):
        return "bucket not found"
    if any(s in upper for s in ("NETWORK_CONNECTION", "CURLCODE", "COULDN'T CONNECT", "CONNECTION REFUSED")):
        return "store unreachable"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first[:200]


def storage_error(
    uri: str,
    exc: BaseException,
    error=InputDataError,
    options: StorageOptions | None = None,
    *,
    action: str = "read",
) -> BatchInferError:
    """One line for a failed store access: the URI, what went wrong, the credential source tried."""
    from batchinfer.redaction import REDACTOR

    reason = _reason(exc)
    source = credential_source(uri, options)
    hints = {
        "access denied": "check the credentials and the bucket policy (they must allow list, get, put "
        "and delete under this prefix)",
        "bucket not found": "check the bucket name in the URI; batchinfer does not create buckets",
        "store unreachable": "check the endpoint (spark.hadoop.fs.s3a.endpoint / AWS_ENDPOINT_URL) "
        "and the network",
    }
    return error(
        REDACTOR.text(f"cannot {action} {uri}: {reason} (credentials: {source})"),
        hint=hints.get(reason, "check the URI, the endpoint and the credentials"),
    )


def is_store_failure(exc: BaseException) -> bool:
    """An OSError from a remote store (not a local file problem a caller reports itself)."""
    return isinstance(exc, OSError) and not isinstance(exc, (FileNotFoundError, IsADirectoryError))


def plain_parquet_warning(output_uri: str) -> str | None:
    """The warning for plain Parquet output on an object store (no atomic partition replacement)."""
    if not is_object_store(output_uri):
        return None
    return (
        f"output {output_uri} is on an object store, where a directory rename is a copy and a delete "
        "per object: while a run commits, readers listing a partition it replaces can see it missing "
        "or partly written (the journal still lets the next run or `batchinfer recover` restore the "
        "previous files); only a table format (Delta, Iceberg) gives atomic replacement there"
    )


def storage_notes(uris: dict[str, str]) -> list[str]:
    """Manifest notes: which filesystem and credential source each remote location used."""
    notes = []
    for role, uri in uris.items():
        if "://" not in str(uri) or str(uri).startswith("file://"):
            continue
        served = hadoop_served(str(uri))
        if served is not None:
            notes.append(
                f"storage: {role} {uri} planned, committed and recorded through the Hadoop FileSystem "
                f"via the Spark driver ({served}; credentials: {credential_source(uri)})"
            )
            continue
        scheme = urlsplit(uri).scheme
        kind = {
            "s3": "S3FileSystem",
            "gs": "GcsFileSystem",
            "abfs": "AzureFileSystem",
            "hdfs": "HadoopFileSystem",
        }
        name = kind.get(canonical_scheme(scheme), scheme)
        notes.append(
            f"storage: {role} {uri} read/written by pyarrow {name} (credentials: {credential_source(uri)})"
        )
    return notes


@dataclass(frozen=True)
class IoDecision:
    """Who reads the input and who writes the output, and the manifest note that says why."""

    reader: str  # "pyarrow" | "spark"
    writer: str  # "pyarrow" | "spark"
    notes: tuple[str, ...] = ()
    blocked: str | None = None  # a location neither can serve (planning, the commit need pyarrow)


def spark_fallback(
    uris: Mapping[str, str], reader: str, writer: str, pyarrow_can_open: Mapping[str, bool]
) -> IoDecision:
    """Decide the fallback to Spark's reader and writer where pyarrow cannot reach a store.

    ``uris`` maps "input" / "output" to their URIs; ``reader``/``writer`` are the configured
    ``runtime.reader`` / ``output.writer`` (auto, pyarrow, spark); ``pyarrow_can_open`` says per
    role whether a pyarrow filesystem could be built (e.g. False for ``hdfs://`` without libhdfs).
    The job calls it while planning (``Job.plan``): planning, the commit and the run records
    then go through the driver's Hadoop FileSystem (:mod:`batchinfer.io.hadoop_fs`), the tasks
    through Spark's reader and writer.

    >>> spark_fallback({"input": "hdfs://nn/x", "output": "/tmp/o"}, "auto", "auto",
    ...                {"input": False, "output": True}).reader
    'spark'
    """
    notes: list[str] = []
    chosen = {"input": reader, "output": writer}
    blocked = None
    for role in ("input", "output"):
        uri, wanted = uris.get(role, ""), chosen[role]
        if pyarrow_can_open.get(role, True):
            chosen[role] = "pyarrow" if wanted == "auto" else wanted
            continue
        what = "reader" if role == "input" else "writer"
        if wanted == "pyarrow":
            blocked = (
                blocked or f"{role} {uri}: runtime.reader/output.writer is pyarrow, which cannot open it"
            )
            continue
        chosen[role] = "spark"
        scheme = urlsplit(uri).scheme
        why = (
            "hdfs:// without its native client"
            if canonical_scheme(scheme) == "hdfs"
            else f"pyarrow has no {scheme}:// filesystem"
        )
        notes.append(
            f"storage: {role} {uri} is not reachable with pyarrow ({why}); Spark's {what} "
            "(Hadoop filesystem) is used instead"
        )
    return IoDecision(chosen["input"], chosen["output"], tuple(notes), blocked)
