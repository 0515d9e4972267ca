"""The commit protocol on a real filesystem (no Spark needed: staged files are written directly)."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchinfer.errors import OutputError, OutputLockedError
from batchinfer.io.sink import OutputTable
from tests.support.data import snapshot


def stage(table: OutputTable, run_id: str, parts: dict[str, list[int]]) -> None:
    for rel, ids in parts.items():
        d = table.staging(run_id).join(rel) if rel else table.staging(run_id)
        os.makedirs(d.path, exist_ok=True)
        pq.write_table(pa.table({"id": ids}), f"{d.path}/part-{run_id}.parquet")


def ids(root, rel) -> list[int]:
    return sorted(pq.read_table(os.path.join(root, rel)).column("id").to_pylist())


class Crash(Exception):
    pass


def test_overwrite_replaces_only_written_partitions(tmp_path):
    t = OutputTable(str(tmp_path / "out"))
    stage(t, "r1", {"ds=a": [1, 2], "ds=b": [3]})
    res = t.commit("r1", mode="overwrite_partitions", partition_by=["ds"])
    assert res.rows == 3 and res.partitions == [{"ds": "a"}, {"ds": "b"}]
    before_b = snapshot(tmp_path / "out" / "ds=b")
    stage(t, "r2", {"ds=a": [7]})
    t.commit("r2", mode="overwrite_partitions", partition_by=["ds"])
    assert ids(tmp_path / "out", "ds=a") == [7]
    assert snapshot(tmp_path / "out" / "ds=b") == before_b
    assert (tmp_path / "out" / "ds=a" / "_SUCCESS").read_text().strip() == "r2"
    assert not (tmp_path / "out" / "_batchinfer" / "staging" / "r2").exists()


def test_append_and_error_if_exists(tmp_path):
    t = OutputTable(str(tmp_path / "out"))
    stage(t, "r1", {"ds=a": [1]})
    t.commit("r1", mode="append", partition_by=["ds"])
    stage(t, "r2", {"ds=a": [2]})
    t.commit("r2", mode="append", partition_by=["ds"])
    assert ids(tmp_path / "out", "ds=a") == [1, 2]
    stage(t, "r3", {"ds=a": [3]})
    with pytest.raises(OutputError, match="error_if_exists but .* already has ds=a"):
        t.commit("r3", mode="error_if_exists", partition_by=["ds"])
    assert ids(tmp_path / "out", "ds=a") == [1, 2]


def test_unpartitioned_output_swaps_files(tmp_path):
    t = OutputTable(str(tmp_path / "out"))
    stage(t, "r1", {"": [1, 2]})
    t.commit("r1", mode="overwrite_partitions", partition_by=[])
    stage(t, "r2", {"": [5]})
    t.commit("r2", mode="overwrite_partitions", partition_by=[])
    assert sorted(
        pq.read_table(
            tmp_path / "out",
        )
        .column("id")
        .to_pylist()
    ) == [5]


@pytest.mark.parametrize("step", ["journal_written", "moved_previous", "partition_committed"])
def test_interrupted_commit_is_rolled_back_byte_identical(tmp_path, step):
    t = OutputTable(str(tmp_path / "out"))
    stage(t, "r1", {"ds=a": [1], "ds=b": [2]})
    t.commit("r1", mode="overwrite_partitions", partition_by=["ds"])
    before = snapshot(tmp_path / "out")

    def pause(s):
        if s == step:
            raise Crash(s)

    stage(t, "r2", {"ds=a": [9], "ds=b": [8], "ds=c": [7]})
    with pytest.raises(Crash):
        t.commit("r2", mode="overwrite_partitions", partition_by=["ds"], pause=pause)
    actions = t.recover(current_run="r3")
    assert any("rolled back" in a for a in actions)
    assert snapshot(tmp_path / "out") == before
    assert not (tmp_path / "out" / "ds=c").exists()
    assert list((tmp_path / "out" / "_batchinfer").glob("staging/*")) == []


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    t = OutputTable(str(tmp_path / "out"))
    t.acquire_lock("run-A", "job")
    with pytest.raises(OutputLockedError, match="locked by run run-A .*batchinfer unlock"):
        OutputTable(str(tmp_path / "out")).acquire_lock("run-B", "job")
    t.release_lock("run-A")
    OutputTable(str(tmp_path / "out")).acquire_lock("run-B", "job")


def test_stale_lock_of_a_dead_process_is_broken(tmp_path):
    t = OutputTable(str(tmp_path / "out"))
    # A child process takes the lock and dies without releasing it.
    code = (
        "import sys; sys.path.insert(0, {!r})\n"
        "from batchinfer.io.sink import OutputTable\n"
        "OutputTable({!r}).acquire_lock('dead-run', 'job')\n"
    ).format(os.getcwd(), str(tmp_path / "out"))
    subprocess.run([sys.executable, "-c", code], check=True)
    assert t.lock_holder()["run_id"] == "dead-run"
    t.acquire_lock("next-run", "job")
    assert t.lock_holder()["run_id"] == "next-run"
    assert t.force_unlock()["run_id"] == "next-run"
    assert t.lock_holder() is None
