"""delta-rs gets the table URI and storage options from the same spark.hadoop.fs.* settings."""

from __future__ import annotations

from batchinfer.io.delta import _predicate, delta_storage_options, delta_uri
from batchinfer.io.storage import StorageOptions


def test_delta_uri_spells_hadoop_schemes_as_delta_rs_does(tmp_path):
    assert delta_uri("s3a://b/t") == "s3://b/t" and delta_uri("s3n://b/t") == "s3://b/t"
    assert delta_uri("abfss://c@a.dfs.core.windows.net/t") == "abfss://c@a.dfs.core.windows.net/t"
    assert delta_uri(f"file://{tmp_path}") == str(tmp_path)


def test_delta_storage_options_follow_the_s3a_settings():
    opts = StorageOptions.from_spark_conf(
        {
            "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
            "spark.hadoop.fs.s3a.access.key": "AKIA1",
            "spark.hadoop.fs.s3a.secret.key": "sk-delta-1",
        },
        environ={},
    )
    out = delta_storage_options("s3a://b/t", opts)
    assert out["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000" and out["AWS_ALLOW_HTTP"] == "true"
    assert out["AWS_ACCESS_KEY_ID"] == "AKIA1" and out["AWS_SECRET_ACCESS_KEY"] == "sk-delta-1"
    assert delta_storage_options("/local/path", opts) == {}


def test_partition_predicate_quotes_values():
    assert _predicate([{"ds": "2026-11-28"}, {"ds": "o'k"}]) == "(ds = '2026-11-28') OR (ds = 'o''k')"
