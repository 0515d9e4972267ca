"""Iceberg table locations and FileIO properties from the job's spark.hadoop.fs.* settings."""

from batchinfer.io import storage
from batchinfer.io.iceberg import catalog_properties, fileio_properties, table_location


def test_locations_as_iceberg_fileios_spell_them(tmp_path):
    assert table_location("s3a://b/t/") == "s3://b/t"
    assert table_location("abfss://c@acct.dfs.core.windows.net/t") == "abfss://c@acct.dfs.core.windows.net/t"
    assert table_location(str(tmp_path / "t")) == f"file://{tmp_path}/t"


def test_s3a_settings_reach_the_fileio_and_secrets_are_redacted():
    from batchinfer.redaction import REDACTOR

    opts = storage.StorageOptions.from_spark_conf(
        {
            "spark.hadoop.fs.s3a.endpoint": "http://127.0.0.1:9000",
            "spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLE",
            "spark.hadoop.fs.s3a.secret.key": "s3cr3t-value-1",
        },
        environ={},
    )
    props = fileio_properties("s3a://b/t", opts)
    assert props == {
        "s3.endpoint": "http://127.0.0.1:9000",
        "s3.region": "us-east-1",
        "s3.access-key-id": "AKIAEXAMPLE",
        "s3.secret-access-key": "s3cr3t-value-1",
    }
    storage.configure(opts)
    try:
        merged = catalog_properties(
            "s3a://b/t", {"type": "rest", "credential": "client:sec-xyz-42", "s3.region": "eu"}
        )
    finally:
        storage.configure(None)
    assert merged["s3.region"] == "eu" and merged["type"] == "rest"  # the config's properties win
    assert "sec-xyz-42" not in REDACTOR.text("credential client:sec-xyz-42")
