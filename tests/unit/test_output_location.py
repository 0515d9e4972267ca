"""Output vs input: the same directory reached by a second path is still the same directory.

``check_output_location`` compares where paths really point (symlinks, ``..``, bind mounts,
object-store spellings), not how they are written; it runs at plan time, before anything else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batchinfer.config import validate_data
from batchinfer.errors import OutputError
from batchinfer.io.filesystem import overlap, storage_key
from batchinfer.plan import check_output_location
from tests.support.data import job_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path):
    data = tmp_path / "data" / "events"
    (data / "ds=2026-11-28").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path, data


def _check(data, out, **sections):
    cfg = validate_data(job_config(data, "m.onnx", out, features=["f0"], **sections))
    check_output_location(cfg)


def test_symlink_to_the_input_root_is_the_input(tree):
    tmp, data = tree
    link = tmp / "scores"
    link.symlink_to(data)
    assert overlap(str(data), str(link)) == "same"
    with pytest.raises(OutputError, match=r"overlaps input.path .*: both name the same directory") as info:
        _check(data, link)
    assert info.value.exit_code == 6 and "outside the input" in info.value.hint


def test_output_inside_and_containing_the_input_through_symlinks(tree):
    tmp, data = tree
    (tmp / "to_data").symlink_to(data)
    (tmp / "to_parent").symlink_to(data.parent)
    assert overlap(str(data), str(tmp / "to_data" / "scores")) == "inside"  # not yet created
    assert overlap(str(data), str(tmp / "to_parent")) == "contains"
    with pytest.raises(OutputError, match="it sits inside it"):
        _check(data, tmp / "to_data" / "scores")
    with pytest.raises(OutputError, match="it contains it"):
        _check(data, tmp / "to_parent")
    # The input given through a symlink, the output by its real path.
    with pytest.raises(OutputError, match="both name the same directory"):
        _check(tmp / "to_data", data)


def test_dot_dot_through_a_symlink_resolves_like_the_filesystem(tree):
    tmp, data = tree
    # <tmp>/part -> <data>/ds=2026-11-28, so <tmp>/part/.. is <data> (abspath would say <tmp>).
    (tmp / "part").symlink_to(data / "ds=2026-11-28")
    sneaky = f"{tmp}/part/.."
    assert os.path.abspath(sneaky) == str(tmp)
    with pytest.raises(OutputError, match="both name the same directory"):
        _check(data, sneaky)
    with pytest.raises(OutputError, match="both name the same directory"):
        _check(data, f"{data}/./ds=2026-11-28/../")
    with pytest.raises(OutputError, match="both name the same directory"):
        _check(data, f"file://{data}")


def test_separate_directories_are_fine(tree):
    tmp, data = tree
    (tmp / "to_elsewhere").symlink_to(tmp / "elsewhere")
    for out in (
        tmp / "elsewhere",
        tmp / "to_elsewhere" / "scores",
        data.parent / "events2",
        tmp / "new" / "x",
    ):
        assert overlap(str(data), str(out)) is None
        _check(data, out)


def test_quarantine_path_may_not_reach_the_input_either(tree):
    tmp, data = tree
    (tmp / "q").symlink_to(data)
    with pytest.raises(OutputError, match=r"quarantine.path .* overlaps input.path"):
        _check(data, tmp / "elsewhere", quarantine={"enabled": True, "path": str(tmp / "q")})


@pytest.mark.parametrize(
    "a, b, want",
    [
        ("s3://bucket/events", "s3a://bucket/events/", "same"),
        ("s3://bucket/events", "s3://bucket//events/./", "same"),
        ("s3://bucket/events", "s3://BUCKET/events", "same"),
        ("s3://bucket/events", "s3n://bucket/x/../events/scores", "inside"),
        ("gs://b/data/events", "gcs://b/data", "contains"),
        ("abfss://c@acct.dfs.core.windows.net/ev", "abfs://c@acct.dfs.core.windows.net/ev/out", "inside"),
        ("s3://bucket/events", "s3://bucket/events2", None),
        ("s3://bucket/events", "s3://other/events", None),
        ("s3://bucket/events", "gs://bucket/events", None),
    ],
)
def test_object_store_prefixes_are_normalised(a, b, want):
    assert overlap(a, b) == want


def test_storage_key_spells_one_location_one_way():
    assert storage_key("s3a://Bucket/a//b/../c/") == ("s3", "bucket/a/c")
    assert storage_key("s3://bucket") == ("s3", "bucket")


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) for a private bind mount")
def test_bind_mount_of_the_input_is_refused_by_validate_and_run(tree):
    """A second path to the input that no string comparison can see: a bind mount."""
    tmp, data = tree
    mnt = tmp / "mnt"
    mnt.mkdir()
    config = tmp / "job.yaml"
    config.write_text(json.dumps(job_config(data, tmp / "m.onnx", mnt / "scores", features=["f0"])))
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare -rm is not permitted here: {probe.stderr.decode().strip()}")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    outs = {}
    for command in ("validate", "run"):
        script = (
            f"mount --bind {data} {mnt} && "
            f"{sys.executable} -m batchinfer.cli {command} {config}; echo rc=$?; ls {mnt}"
        )
        proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, env=env)
        outs[command] = proc
        assert "ds=2026-11-28" in proc.stdout, proc.stderr  # the mount was in place
        assert "rc=6" in proc.stdout, proc.stdout + proc.stderr
        assert "output.path" in proc.stderr and "sits inside it" in proc.stderr
    assert sorted(p.name for p in data.iterdir()) == ["ds=2026-11-28"]
    assert not (data / "scores").exists()
