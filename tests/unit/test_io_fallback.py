"""The decision to fall back to Spark's reader/writer where pyarrow cannot reach a store.

Pure-function test only: no HDFS or hadoop-aws here, and the job does not call it yet
(planning and the commit need pyarrow; docs/storage.md).
"""

from batchinfer.io.storage import spark_fallback


def test_unreachable_input_falls_back_to_sparks_reader_and_says_so():
    d = spark_fallback(
        {"input": "hdfs://nn:8020/events", "output": "s3a://b/o"},
        "auto",
        "auto",
        {"input": False, "output": True},
    )
    assert (d.reader, d.writer, d.blocked) == ("spark", "pyarrow", None)
    assert d.notes == (
        "storage: input hdfs://nn:8020/events is not reachable with pyarrow (hdfs:// without its native "
        "client); Spark's reader (Hadoop filesystem) is used instead",
    )


def test_reachable_stores_keep_the_configured_choice_and_pyarrow_forced_is_blocked():
    both = {"input": True, "output": True}
    d = spark_fallback({"input": "s3a://b/i", "output": "s3a://b/o"}, "auto", "spark", both)
    assert (d.reader, d.writer, d.notes, d.blocked) == ("pyarrow", "spark", (), None)
    d = spark_fallback(
        {"input": "/i", "output": "hdfs://nn/o"}, "auto", "pyarrow", {"input": True, "output": False}
    )
    assert d.writer == "pyarrow" and d.blocked.startswith("output hdfs://nn/o") and not d.notes
    d = spark_fallback(
        {"input": "/i", "output": "hdfs://nn/o"}, "auto", "auto", {"input": True, "output": False}
    )
    assert d.writer == "spark" and "Spark's writer" in d.notes[0]
