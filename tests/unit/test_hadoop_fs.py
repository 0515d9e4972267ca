"""The pyarrow filesystem over the Spark driver's Hadoop FileSystem, on a real SparkSession.

The store is Hadoop's ``ViewFileSystem`` (``viewfs://``, in pip pyspark's Hadoop client) with a
mount table onto a temporary directory: pyarrow has no client for it, Hadoop does.
"""

from __future__ import annotations

import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from batchinfer.errors import InputDataError, OutputLockedError
from batchinfer.io import storage
from batchinfer.io.filesystem import resolve
from batchinfer.io.hadoop_fs import hadoop_filesystem


@pytest.fixture(scope="module")
def mount(spark, tmp_path_factory):
    base = tmp_path_factory.mktemp("mount")
    (base / "a").mkdir()
    (base / "b").mkdir()
    table = "u" + uuid.uuid4().hex[:8]
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    keys = {f"fs.viewfs.mounttable.{table}.link./{m}": (base / m).as_uri() for m in ("a", "b")}
    for key, value in keys.items():
        hadoop.set(key, value)
    yield {"root": f"viewfs://{table}", "base": base, "fs": hadoop_filesystem(spark, f"viewfs://{table}/")}
    for key in keys:
        hadoop.unset(key)


def test_lists_and_describes_files_and_directories(mount):
    fs, base = mount["fs"], mount["base"]
    (base / "a" / "d" / "e").mkdir(parents=True)
    (base / "a" / "d" / "x.bin").write_bytes(b"12345")
    (base / "a" / "d" / "e" / "y.bin").write_bytes(b"")
    info = {i.path: i for i in fs.get_file_info(["/a/d", "/a/d/x.bin", "/a/none"])}
    assert info["/a/d"].type == pafs.FileType.Directory
    assert (info["/a/d/x.bin"].type, info["/a/d/x.bin"].size) == (pafs.FileType.File, 5)
    assert info["/a/none"].type == pafs.FileType.NotFound
    flat = sorted(i.path for i in fs.get_file_info(pafs.FileSelector("/a/d")))
    assert flat == ["/a/d/e", "/a/d/x.bin"]
    deep = sorted(i.path for i in fs.get_file_info(pafs.FileSelector("/a/d", recursive=True)))
    assert deep == ["/a/d/e", "/a/d/e/y.bin", "/a/d/x.bin"]
    assert fs.get_file_info(pafs.FileSelector("/a/none", allow_not_found=True)) == []
    with pytest.raises(FileNotFoundError):
        fs.get_file_info(pafs.FileSelector("/a/none"))


def test_reads_parquet_footers_row_groups_and_byte_ranges(mount):
    fs, base = mount["fs"], mount["base"]
    table = pa.table({"x": list(range(1000)), "s": [str(i) for i in range(1000)]})
    pq.write_table(table, base / "a" / "t.parquet", row_group_size=300)
    md = pq.read_metadata("/a/t.parquet", filesystem=fs)
    assert (md.num_rows, md.num_row_groups) == (1000, 4)
    group = pq.ParquetFile("/a/t.parquet", filesystem=fs).read_row_group(2)
    assert group.column("x").to_pylist() == list(range(600, 900))
    raw = (base / "a" / "t.parquet").read_bytes()
    with fs.open_input_file("/a/t.parquet") as fh:
        assert fh.size() == len(raw)
        fh.seek(len(raw) - 8)
        assert fh.read() == raw[-8:] and fh.tell() == len(raw)
        assert fh.read_at(10, 100) == raw[100:110]
    with fs.open_input_stream("/a/t.parquet") as fh:
        assert fh.read() == raw
    with pytest.raises(FileNotFoundError):
        fs.open_input_stream("/a/missing")


def test_writes_moves_copies_and_deletes_with_pyarrows_semantics(mount):
    fs, base = mount["fs"], mount["base"]
    with fs.open_output_stream("/b/w/one.txt") as fh:  # parents are created
        fh.write(b"one")
    with fs.open_output_stream("/b/w/two.txt") as fh:
        fh.write(b"two" * 100_000)
    assert (base / "b" / "w" / "two.txt").read_bytes() == b"two" * 100_000
    fs.move("/b/w/two.txt", "/b/w/one.txt")  # a file replaces a file
    assert (base / "b" / "w" / "one.txt").read_bytes() == b"two" * 100_000
    assert not (base / "b" / "w" / "two.txt").exists()
    fs.copy_file("/b/w/one.txt", "/b/w/copy.txt")
    assert (base / "b" / "w" / "copy.txt").read_bytes() == b"two" * 100_000
    fs.create_dir("/b/d1/sub", recursive=True)
    fs.create_dir("/b/d2", recursive=False)
    with pytest.raises(OSError, match="existing directory"):  # Hadoop would move d1 *into* d2
        fs.move("/b/d1", "/b/d2")
    fs.delete_dir("/b/d2")
    fs.move("/b/d1", "/b/d2")  # one rename, the directory whole
    assert (base / "b" / "d2" / "sub").is_dir() and not (base / "b" / "d1").exists()
    with pytest.raises(OSError, match="Renames across Mount points"):
        fs.move("/b/w/copy.txt", "/a/copy.txt")
    with pytest.raises(IsADirectoryError):
        fs.delete_file("/b/d2")
    with pytest.raises(FileNotFoundError):
        fs.delete_dir("/b/nothing")
    fs.delete_dir_contents("/b/w")
    assert list((base / "b" / "w").iterdir()) == [] or all(
        p.name.startswith(".") for p in (base / "b" / "w").iterdir()
    )
    fs.delete_dir_contents("/b/nothing", missing_dir_ok=True)


def test_exclusive_create_makes_the_output_lock_a_real_lock(spark, mount):
    handler = mount["fs"].handler
    assert handler.create_new("/b/lockfile", b"first")
    assert not handler.create_new("/b/lockfile", b"second")
    assert (mount["base"] / "b" / "lockfile").read_bytes() == b"first"

    from batchinfer.io.sink import OutputTable

    storage.use_hadoop(spark)
    try:
        table = OutputTable(f"{mount['root']}/b/table")
        table.acquire_lock("run-1", "job")
        with pytest.raises(OutputLockedError, match="locked by run run-1"):
            OutputTable(f"{mount['root']}/b/table").acquire_lock("run-2", "job")
        table.release_lock("run-1")
        assert table.lock_holder() is None
    finally:
        storage.use_hadoop(None)


def test_resolve_uses_the_registered_session_only_while_it_is_registered(spark, mount):
    uri = f"{mount['root']}/a"
    assert storage.pyarrow_problem(uri) == "viewfs:// has no pyarrow filesystem"
    assert storage.pyarrow_problem("s3a://bucket/x") is None and storage.pyarrow_problem("/tmp/x") is None
    with pytest.raises(InputDataError, match=r"unsupported storage scheme viewfs://.*runtime.engine: spark"):
        resolve(uri)
    storage.use_hadoop(spark)
    try:
        loc = resolve(uri)
        assert (loc.path, loc.uri, loc.is_local, loc.atomic_rename) == ("/a", uri, False, True)
        assert loc.fs.get_file_info("/a").type == pafs.FileType.Directory
        assert storage.hadoop_served(uri) == "ViewFileSystem"
        assert storage.credential_source(uri).startswith("Hadoop configuration")
    finally:
        storage.use_hadoop(None)
    assert storage.hadoop_served(uri) is None
