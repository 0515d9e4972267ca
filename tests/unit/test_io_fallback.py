"""The decision to fall back to Spark's reader/writer where pyarrow cannot reach a store.

The pure function alone; the job that uses it (planning and the commit through the Spark
driver's Hadoop FileSystem) is tested in tests/integration/test_hadoop_store.py.
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


def test_a_scheme_pyarrow_has_no_filesystem_for_names_it():
    d = spark_fallback(
        {"input": "viewfs://cluster/events", "output": "viewfs://cluster/scores"},
        "auto",
        "auto",
        {"input": False, "output": False},
    )
    assert (d.reader, d.writer, d.blocked) == ("spark", "spark", None)
    assert d.notes[0] == (
        "storage: input viewfs://cluster/events is not reachable with pyarrow (pyarrow has no viewfs:// "
        "filesystem); Spark's reader (Hadoop filesystem) is used instead"
    )
