"""``--manifest-out`` on a fresh worker: parents created, a failed write never turns into exit 1."""

from __future__ import annotations

import json

import pytest

from batchinfer import cli
from batchinfer.errors import EXIT_MANIFEST_NOT_WRITTEN
from tests.support.data import job_yaml

pytestmark = pytest.mark.spark

GATE = "checks: {output: [{expect: between, column: score, min: 0, max: 0.01}]}\n"


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("handoff")
    config, _, _ = job_yaml(tmp, "handoff", files_per_day=1, rows_per_file=40)
    gate = tmp / "gate.yaml"
    gate.write_text(config.read_text() + GATE)
    return tmp, config, gate


def _run(spark, config, *args) -> int:
    # spark: the session fixture is active, so the CLI reuses it (and leaves it running).
    return cli.main(["-q", "run", str(config), "--set", "input.partitions.ds=2026-11-28", *args])


def test_manifest_out_parents_are_created_and_the_attempt_is_recorded(spark, job, tmp_path, capsys):
    tmp, config, _ = job
    target = tmp_path / "manifests" / "dag" / "2026-11-28" / "1.json"
    assert _run(spark, config, "--manifest-out", str(target), "--attempt", "dag/run-1/1") == 0
    doc = json.loads(target.read_text())
    assert doc["status"] == "succeeded" and doc["attempt"] == "dag/run-1/1" and doc["run_id"]
    # The run's own record carries the attempt too (what a caller falls back to).
    record = tmp / "out" / "_batchinfer" / "runs" / doc["run_id"] / "manifest.json"
    assert json.loads(record.read_text())["attempt"] == "dag/run-1/1"
    assert not list(target.parent.glob("*.tmp-*"))  # written atomically
    assert "warning" not in capsys.readouterr().err


def test_unwritable_manifest_out_after_commit_is_a_warning_with_exit_8(spark, job, tmp_path, capsys):
    tmp, config, _ = job
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    target = blocker / "1.json"  # its parent is a file: cannot be created
    rc = _run(spark, config, "--manifest-out", str(target), "--attempt", "a-2")
    err = capsys.readouterr().err
    assert rc == EXIT_MANIFEST_NOT_WRITTEN == 8
    assert "Traceback" not in err and "unexpected error" not in err
    line = next(x for x in err.splitlines() if x.startswith("batchinfer: warning:"))
    assert "the run succeeded and its output is committed" in line
    assert f"--manifest-out {target} could not be written" in line
    record = line.rsplit("the manifest is at ", 1)[1]
    assert json.loads(open(record).read())["attempt"] == "a-2"


def test_gate_failure_keeps_exit_5_when_the_manifest_cannot_be_written(spark, job, tmp_path, capsys):
    _, _, gate = job
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    assert _run(spark, gate, "--manifest-out", str(blocker / "1.json")) == 5
    err = capsys.readouterr().err
    assert "batchinfer: gate error: check gate failed" in err
    assert "the run ended with status gate_failed, but --manifest-out" in err
    assert "unexpected error" not in err
    # Written where it can be: the gate failure's manifest with its exit code.
    target = tmp_path / "fresh" / "1.json"
    assert _run(spark, gate, "--manifest-out", str(target), "--attempt", "g-1") == 5
    doc = json.loads(target.read_text())
    assert doc["status"] == "gate_failed" and doc["error"]["exit_code"] == 5 and doc["attempt"] == "g-1"


def test_dry_run_staging_is_removed_unless_kept(spark, job, tmp_path, monkeypatch):
    import tempfile

    _, config, _ = job
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert _run(spark, config, "--dry-run") == 0
    assert list(scratch.iterdir()) == []
    assert _run(spark, config, "--dry-run", "--keep-staging") == 0
    kept = [p.name for p in scratch.iterdir()]
    assert len(kept) == 1 and kept[0].startswith("batchinfer-dryrun-")
