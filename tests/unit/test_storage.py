"""Hadoop storage URIs map to pyarrow filesystems with the job's spark.hadoop.fs.* settings."""

from __future__ import annotations

import pytest
from pyarrow import fs as pafs

from batchinfer.config import load_config_full
from batchinfer.errors import InputDataError, OutputError
from batchinfer.io import storage
from batchinfer.io.filesystem import resolve
from batchinfer.io.storage import StorageOptions, credential_source, s3_arguments, storage_error
from batchinfer.redaction import REDACTOR


@pytest.fixture(autouse=True)
def _reset_storage():
    yield
    storage.configure(None)


def opts(conf=None, environ=None):
    return StorageOptions.from_spark_conf(conf or {}, environ=environ or {})


def test_s3a_maps_to_s3_filesystem_with_the_s3a_settings():
    storage.configure(
        opts(
            {
                "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
                "spark.hadoop.fs.s3a.path.style.access": "true",
                "spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLE",
                "spark.hadoop.fs.s3a.secret.key": "s3a-secret-value",
                "spark.executor.memory": "1g",
            }
        )
    )
    for uri in ("s3a://bucket/x/y", "s3n://bucket/x/y", "s3://bucket/x/y"):
        loc = resolve(uri)
        assert isinstance(loc.fs, pafs.S3FileSystem) and loc.path == "bucket/x/y" and loc.uri == uri
        assert loc.fs.region == "us-east-1" and not loc.is_local
    args = s3_arguments("bucket")
    assert args["endpoint_override"] == "127.0.0.1:9000" and args["scheme"] == "http"
    assert args["access_key"] == "AKIAEXAMPLE" and args["secret_key"] == "s3a-secret-value"
    assert "force_virtual_addressing" not in args
    assert "s3a-secret-value" not in repr(storage.active()) and "***" in repr(storage.active())
    assert REDACTOR.text("key s3a-secret-value") == "key ***"


def test_per_bucket_settings_and_providers_and_environment():
    o = opts(
        {
            "spark.hadoop.fs.s3a.endpoint": "minio:9000",
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
            "spark.hadoop.fs.s3a.bucket.public.aws.credentials.provider": (
                "org.apache.hadoop.fs.s3a.AnonymousAWSCredentialsProvider"
            ),
            "spark.hadoop.fs.s3a.bucket.eu.endpoint.region": "eu-west-1",
            "spark.hadoop.fs.s3a.path.style.access": "false",
        },
        {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env-secret-value", "HOME": "/x"},
    )
    assert s3_arguments("public", o)["anonymous"] is True
    assert "access_key" not in s3_arguments("public", o)
    assert s3_arguments("eu", o)["region"] == "eu-west-1"
    base = s3_arguments("data", o)
    assert base["endpoint_override"] == "minio:9000" and base["scheme"] == "http"
    assert base["access_key"] == "AKIAENV" and base["force_virtual_addressing"] is True
    assert credential_source("s3a://data/x", o) == "environment AWS_ACCESS_KEY_ID"
    assert credential_source("s3a://public/x", o).startswith("anonymous")
    assert dict(o.env).keys() == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert REDACTOR.text("env-secret-value") == "***"
    assert credential_source("s3a://x/y", opts()).startswith("AWS default chain")
    instance = opts(
        {
            "spark.hadoop.fs.s3a.aws.credentials.provider": "com.amazonaws.auth.InstanceProfileCredentialsProvider"
        }
    )
    assert credential_source("s3a://x/y", instance).startswith("InstanceProfileCredentialsProvider")
    assert "access_key" not in s3_arguments("x", instance)
    assert credential_source("gs://b/x", opts()) == "Google application default credentials"


def test_gs_and_abfs_map_to_their_filesystems():
    loc = resolve("gs://bucket/a/b")
    assert isinstance(loc.fs, pafs.GcsFileSystem) and loc.path == "bucket/a/b"
    key = "YWNjb3VudC1rZXktdmFsdWU="
    storage.configure(opts({"spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net": key}))
    loc = resolve("abfss://container@acct.dfs.core.windows.net/a/b")
    assert isinstance(loc.fs, pafs.AzureFileSystem) and loc.path == "container/a/b"
    assert credential_source("abfss://container@acct.dfs.core.windows.net/a") == (
        "spark.hadoop.fs.azure.account.key.acct.dfs.core.windows.net"
    )
    assert REDACTOR.text(key) == "***"
    with pytest.raises(InputDataError, match="names no storage account"):
        resolve("abfss://container/a")


def test_hdfs_without_libhdfs_is_one_line_with_the_fix(monkeypatch):
    monkeypatch.setenv("ARROW_LIBHDFS_DIR", "/nonexistent")
    with pytest.raises(OutputError) as info:
        resolve("hdfs://namenode:8020/warehouse/scores", error=OutputError)
    text = str(info.value)
    assert "hdfs://namenode:8020/warehouse/scores" in text and "libhdfs" in text
    assert "\n" not in text and "CLASSPATH" in text and info.value.exit_code == 6


def test_unknown_scheme_is_refused():
    with pytest.raises(InputDataError, match=r"unsupported storage scheme ftp:// .*use s3a://"):
        resolve("ftp://host/x")


def test_store_error_line_names_uri_reason_and_credential_source_without_sdk_text():
    o = opts({"spark.hadoop.fs.s3a.access.key": "AKIA1", "spark.hadoop.fs.s3a.secret.key": "sk-9876543"})
    exc = OSError(
        "When listing objects under key '' in bucket 'b': AWS Error ACCESS_DENIED during ListObjectsV2 "
        "operation: sk-9876543 Access Denied (Request ID: 123)\nmore SDK text"
    )
    err = storage_error("s3a://b/in", exc, InputDataError, o, action="list input")
    assert str(err.message) == (
        "cannot list input s3a://b/in: access denied (credentials: spark.hadoop.fs.s3a.access.key)"
    )
    assert err.exit_code == 3
    missing = storage_error(
        "s3a://b/in", OSError("Bucket 'b' not found. To create buckets..."), OutputError, o
    )
    assert "bucket not found" in missing.message and missing.exit_code == 6


def test_clear_text_store_secrets_in_spark_conf_are_redacted_like_env_secrets():
    loaded = load_config_full(
        {
            "job": "j",
            "input": {"path": "s3a://lake/events"},
            "model": {
                "path": "m.onnx",
                "inputs": {"input": {"columns": ["f0"]}},
                "outputs": {"probabilities": {"column": "score"}},
            },
            "output": {"path": "s3a://scores/x"},
            "spark": {"conf": {"spark.hadoop.fs.s3a.secret.key": "clear-secret-42"}},
        }
    )
    assert "clear-secret-42" in loaded.secrets


def test_plain_parquet_warning_only_for_object_stores(tmp_path):
    assert storage.plain_parquet_warning(str(tmp_path)) is None
    assert storage.plain_parquet_warning("hdfs://nn/x") is None  # HDFS renames are atomic
    for uri in ("s3a://b/x", "gs://b/x", "abfss://c@a.dfs.core.windows.net/x"):
        assert "only a table format" in storage.plain_parquet_warning(uri)
