"""The commit protocol on a real filesystem (no Spark needed: staged files are written directly)."""

from __future__ import annotations

import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from batchinfer.errors import ForeignFilesError, OutputError, OutputLockedError
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


# --------------------------------------------------------------------------- files the run did not write
def _foreign_partition(root, rel="ds=a", names=("part-0.parquet", "part-1.parquet")):
    """A partition as any other tool writes it: data files, no batchinfer marker."""
    d = root / rel
    d.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        pq.write_table(pa.table({"id": [100 + i]}), d / name)


def test_commit_refuses_to_replace_a_partition_no_batchinfer_run_wrote(tmp_path):
    """The data-loss case: output.path turned out to be the input; its files must never move."""
    out = tmp_path / "out"
    _foreign_partition(out)
    before = snapshot(out)
    t = OutputTable(str(out))
    stage(t, "r1", {"ds=a": [1], "ds=b": [2]})
    with pytest.raises(ForeignFilesError) as info:
        t.commit("r1", mode="overwrite_partitions", partition_by=["ds"])
    err = info.value
    assert err.exit_code == 6
    assert "holds files that no batchinfer run wrote" in err.message
    assert "(ds=a: part-0.parquet, part-1.parquet (no _SUCCESS naming a batchinfer run))" in err.message
    assert "nothing was changed" in err.message and "output.mode: overwrite_partitions_force" in err.hint
    assert snapshot(out) == before  # not even ds=b was published
    assert not (out / "_batchinfer" / "journal").exists() and not (out / "_batchinfer" / "trash").exists()


def test_an_empty_success_file_as_other_writers_leave_it_is_not_a_batchinfer_marker(tmp_path):
    out = tmp_path / "out"
    _foreign_partition(out, names=("part-00000-5d2a9c1e-0f3b-4c55-9e1a-2b7c8d9e0f1a-c000.snappy.parquet",))
    (out / "ds=a" / "_SUCCESS").write_text("")  # what Spark's and Hadoop's committers write
    t = OutputTable(str(out))
    stage(t, "r1", {"ds=a": [1]})
    with pytest.raises(ForeignFilesError, match=r"c000.snappy.parquet \(its _SUCCESS names no run\)"):
        t.commit("r1", mode="overwrite_partitions", partition_by=["ds"])


def test_commit_refuses_a_file_added_to_a_batchinfer_partition_unless_forced(tmp_path):
    out = tmp_path / "out"
    t = OutputTable(str(out))
    stage(t, "r1", {"ds=a": [1]})
    t.commit("r1", mode="overwrite_partitions", partition_by=["ds"])
    (out / "ds=a" / "notes.txt").write_text("mine")
    (out / "ds=a" / "sub").mkdir()
    stage(t, "r2", {"ds=a": [2]})
    with pytest.raises(ForeignFilesError, match=r"\(ds=a: notes.txt, sub/\); nothing was changed"):
        t.commit("r2", mode="overwrite_partitions", partition_by=["ds"])
    assert (out / "ds=a" / "notes.txt").read_text() == "mine"
    assert pq.read_table(out / "ds=a" / "part-r1.parquet").column("id").to_pylist() == [1]
    # Only the explicit mode deletes them.
    t.commit("r2", mode="overwrite_partitions_force", partition_by=["ds"])
    assert ids(out, "ds=a") == [2] and not (out / "ds=a" / "notes.txt").exists()
    assert (out / "ds=a" / "_SUCCESS").read_text().strip() == "r2"


def test_commit_refuses_foreign_files_at_an_unpartitioned_root(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"id": [7]}), out / "data.parquet")
    t = OutputTable(str(out))
    stage(t, "r1", {"": [1]})
    with pytest.raises(
        ForeignFilesError, match=r"\(root\): data.parquet \(no _SUCCESS naming a batchinfer run\)"
    ):
        t.commit("r1", mode="overwrite_partitions", partition_by=[])
    assert (out / "data.parquet").exists()
    (out / "data.parquet").unlink()
    t.commit("r1", mode="overwrite_partitions", partition_by=[])  # empty root: nothing to protect
    stage(t, "r2", {"": [2]})
    t.commit("r2", mode="overwrite_partitions", partition_by=[])  # its own files: replaced
    assert pq.read_table(out).column("id").to_pylist() == [2]


def test_appended_partition_carries_a_marker_and_can_be_overwritten_later(tmp_path):
    out = tmp_path / "out"
    t = OutputTable(str(out))
    stage(t, "r1", {"ds=a": [1]})
    t.commit("r1", mode="append", partition_by=["ds"])
    stage(t, "r2", {"ds=a": [2]})
    t.commit("r2", mode="append", partition_by=["ds"])
    assert ids(out, "ds=a") == [1, 2] and (out / "ds=a" / "_SUCCESS").read_text().strip() == "r1"
    stage(t, "r3", {"ds=a": [3]})
    t.commit("r3", mode="overwrite_partitions", partition_by=["ds"])
    assert ids(out, "ds=a") == [3]


def test_interrupted_append_of_a_new_partition_is_rolled_back(tmp_path):
    out = tmp_path / "out"
    t = OutputTable(str(out))
    stage(t, "r1", {"ds=a": [1]})
    t.commit("r1", mode="append", partition_by=["ds"])
    before = snapshot(out)

    def pause(s):
        if s == "partition_committed":
            raise Crash(s)

    stage(t, "r2", {"ds=a": [2], "ds=b": [3]})
    with pytest.raises(Crash):
        t.commit("r2", mode="append", partition_by=["ds"], pause=pause)
    t.recover(current_run="r3")
    assert snapshot(out) == before and not (out / "ds=b").exists()
