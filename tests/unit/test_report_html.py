"""The run report page from a manifest alone (no Spark): generic worker fields, escaping, fallbacks."""

from __future__ import annotations

import json
import re

from batchinfer import report_html
from batchinfer.report_html import render_report


def _numeric(counts, edges=(-1.0, 0.0, 1.0)) -> dict:
    return {
        "type": "numeric",
        "edges": list(edges),
        "counts": list(counts),
        "fine_edges": [],
        "fine_counts": [],
        "null_count": 0,
        "count": sum(counts),
        "sum": 0.0,
        "sumsq": 0.0,
        "min": -1.0,
        "max": 1.0,
    }


def _profile(columns: dict) -> str:
    return json.dumps(
        {"schema_version": 1, "kind": "batchinfer.reference_profile", "row_count": 100, "columns": columns}
    )


def _manifest(columns, **extra) -> dict:
    outcomes = [
        {
            "stage": "drift",
            "check": "psi",
            "column": c,
            "passed": i < len(columns) - 1,
            "severity": "warn" if i < len(columns) - 1 else "fail",
            "observed": 0.5 / (i + 1),
            "threshold": 0.25,
            "details": {"warn": 0.1, "fail": 0.25},
            "status": "passed" if i < len(columns) - 1 else "failed",
            "message": "",
        }
        for i, c in enumerate(columns)
    ]
    return {
        "run_id": "20261201T000000Z-abcdef12",
        "job": "unit",
        "status": "gate_failed",
        "error": {"message": "check gate failed", "hint": "look"},
        "checks": {"outcomes": outcomes},
        "timings": {"plan": 0.1, "total": 0.1},
        **extra,
    }


def test_worker_fields_render_generically_and_values_are_escaped():
    workers = {
        "host-a:1": {
            "sessions": 1,
            "providers": ["CPUExecutionProvider"],
            "canary": {"passed": True, "max_abs": 0.0},
        },
        "host-b:2": {"sessions": 2, "gpu": "<script>alert(1)</script>"},
    }
    page = render_report(_manifest(["x"]), {}, standalone=True)
    assert "no worker scored rows" in page
    page = render_report({**_manifest(["<b>x</b>"]), "workers": workers})
    head = page[page.index('<table id="bi-workers">') :]
    assert "<th>canary</th>" in head and "<th>gpu</th>" in head and "max_abs" in head
    assert "<script>" not in page and "&lt;script&gt;" in page and "&lt;b&gt;x&lt;/b&gt;" in page


def test_overlays_fall_back_to_the_configured_profile_and_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(report_html, "MAX_OVERLAYS", 2)
    cols = ["a", "b", "c"]
    profile = tmp_path / "ref.json"
    profile.write_text(_profile({c: _numeric([0, 50, 50, 0]) for c in cols}))
    current = {"drift_input_counts.json": _profile({c: _numeric([5, 20, 70, 5]) for c in cols})}
    manifest = _manifest(cols, config={"drift": {"reference": str(profile)}})
    page = render_report(manifest, current)
    assert page.count('<figure class="bi-overlay">') == 2 and "1 more columns not drawn" in page
    # The failed column (listed last by the run) comes first; the cap leaves out the last passed one.
    assert page.index('alt="c: reference vs current"') < page.index('alt="a: reference vs current"')
    assert 'alt="b: reference vs current"' not in page
    profile.unlink()  # neither a saved copy nor the profile: the tables stay, the overlays go
    page = render_report(manifest, current)
    assert 'id="bi-drift"' in page and '<figure class="bi-overlay">' not in page


def test_stage_timings_are_css_bars_and_a_report_never_imports_matplotlib():
    """The time-per-stage chart is HTML (one row per stage, widths relative to the longest), the
    drift charts SVG: a report costs no matplotlib import (checked in a fresh interpreter; the drift
    charts' own test, tests/unit/test_report_charts.py, checks them the same way)."""
    import json
    import subprocess
    import sys

    manifest = {
        "job": "j",
        "run_id": "r",
        "status": "succeeded",
        "timings": {"plan": 0.5, "score_and_stage": 2.0, "commit": 0.01, "total": 2.6},
    }
    page = render_report(manifest)
    rows = re.findall(
        r'<tr><th>([a-z_]+)</th><td><span class="bi-bar" style="width:(\d+)px"></span>'
        r'<span class="num">([0-9.]+) s</span>',
        page,
    )
    assert [r[0] for r in rows] == ["plan", "score_and_stage", "commit"]  # in run order, no total
    widths = [int(r[1]) for r in rows]
    assert widths[1] == max(widths) and widths[0] == round(widths[1] / 4) and widths[2] >= 1
    assert [r[2] for r in rows] == ["0.50", "2.00", "0.01"]
    code = (
        "import json, sys; from batchinfer.report_html import render_report; "
        f"render_report(json.loads({json.dumps(json.dumps(manifest))})); "
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_latest_run_is_the_last_written_even_within_one_second(tmp_path):
    """Run ids start with their start second: two runs in one second sort by their random suffix,
    so `batchinfer report <output>` follows _batchinfer/last_run.json, the last manifest written."""
    runs = tmp_path / "out" / "_batchinfer" / "runs"
    first, second = "20261202T162349Z-f0000000", "20261202T162349Z-a0000000"  # second sorts first
    for run_id in (first, second):
        (runs / run_id).mkdir(parents=True)
        text = json.dumps({**_manifest(["x"]), "run_id": run_id})
        (runs / run_id / "manifest.json").write_text(text)
        (tmp_path / "out" / "_batchinfer" / "last_run.json").write_text(text)
    assert report_html.load_run(str(tmp_path / "out")).manifest["run_id"] == second
    (tmp_path / "out" / "_batchinfer" / "last_run.json").unlink()  # no pointer: the id sorting last
    assert report_html.load_run(str(tmp_path / "out")).manifest["run_id"] == first
    (tmp_path / "out" / "_batchinfer" / "last_run.json").write_text("not json")
    assert report_html.load_run(str(tmp_path / "out")).manifest["run_id"] == first
