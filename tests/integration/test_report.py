"""The run report: written with every run, regenerated and compared by `batchinfer report`.

One module fixture runs two real jobs on local Spark (a clean day that passes, a day with a
planted shift whose drift gate fails); every test here reads their saved run directories.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from batchinfer.checks.reference import build_reference_profile, reference_overrides
from batchinfer.cli import main
from batchinfer.errors import GateFailedError
from batchinfer.job import Job
from tests.support import models
from tests.support.data import job_config, write_partitioned

pytestmark = pytest.mark.spark
FEATURES = ["f0", "f1", "f2", "f3"]


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    data = write_partitioned(root / "ev", days=("2026-11-27",), rows_per_file=3000, seed=1)
    write_partitioned(
        root / "ev",
        days=("2026-11-28",),
        rows_per_file=3000,
        seed=2,
        extra=lambda n, rng: {"f2": (rng.normal(size=n) + 1.5).astype(np.float32)},
    )
    model, _ = models.linear_classifier(root / "m.onnx", 4)
    out = root / "out"
    checks = {
        "input": [
            {"expect": "not_null", "column": "f0"},
            {"expect": "between", "column": "f1", "min": -1, "max": 1, "severity": "warn"},
        ],
        "output": [{"expect": "between", "column": "score", "min": 0, "max": 1}],
    }
    base = job_config(data, model, out, features=FEATURES, passthrough=["id", "cat", "ds"], checks=checks)
    profile = root / "profile.json"
    build_reference_profile(
        Job.from_config(base, overrides=reference_overrides("ds=2026-11-27")), spark=spark
    ).save(profile)
    cfg = {**base, "drift": {"reference": str(profile)}}
    ok = Job.from_config(cfg, overrides=["input.partitions.ds=2026-11-27"]).run(spark=spark)
    with pytest.raises(GateFailedError) as info:
        Job.from_config(cfg, overrides=["input.partitions.ds=2026-11-28"]).run(spark=spark)
    failed = info.value.result
    runs_dir = out / "_batchinfer" / "runs"
    return {
        "data": data,
        "model": model,
        "out": out,
        "ok": ok,
        "failed": failed,
        "ok_dir": runs_dir / ok.run_id,
        "failed_dir": runs_dir / failed.run_id,
    }


def _table(html: str, table_id: str) -> list[list[str]]:
    """The cells of one table of the page, tags stripped."""
    body = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)]
        for r in rows
    ]


def test_every_run_writes_a_self_contained_report(runs):
    for key in ("ok_dir", "failed_dir"):
        page = (runs[key] / "report.html").read_text()
        assert page.startswith("<!doctype html>")
        # Offline: nothing fetched, no script; every image is inline.
        assert "<script" not in page and "<link" not in page
        assert not re.search(r'(src|href)="(https?:)?//', page)
        assert re.findall(r'<img [^>]*src="([^"]+)"', page) and all(
            s.startswith("data:image/svg+xml;base64,") for s in re.findall(r'<img [^>]*src="([^"]+)"', page)
        )


def test_gate_failed_report_shows_why_drift_first_and_links_gx(runs):
    page = (runs["failed_dir"] / "report.html").read_text()
    manifest = json.loads((runs["failed_dir"] / "manifest.json").read_text())
    assert manifest["status"] == "gate_failed"
    assert "gate_failed" in page and "drift:psi[f2]" in page  # status and why
    assert manifest["model"]["sha256"] in page and manifest["spark"]["application_id"] in page
    drift = _table(page, "bi-drift")
    assert drift[0][:3] == ["stage", "column", "metric"]
    assert drift[1][1:3] == ["f2", "psi"] and drift[1][6] == "failed"  # worst first
    assert drift[1][4:6] == ["0.1", "0.25"]  # warn and fail thresholds
    statuses = [row[6] for row in drift[1:]]
    assert statuses == sorted(statuses, key=["failed", "warning", "passed"].index)
    # One overlay per feature and per prediction column, drawn from the run's saved counts.
    assert len(re.findall(r'<figure class="bi-overlay">', page)) == 5 + 2
    assert (runs["failed_dir"] / "drift_reference.json").exists()
    quality = _table(page, "bi-quality")
    f1 = next(r for r in quality if r[2] == "f1")
    assert f1[5:8] == ["warn", "warning", "gx_input.json"]
    assert 'href="gx_input.json"' in page and 'href="gx_output.json"' in page  # GX's own results
    parts = _table(page, "bi-partitions")
    assert parts[1] == ["ds=2026-11-28", "6,000", ""]
    workers = _table(page, "bi-workers")
    assert {"sessions", "providers", "rows"} <= set(workers[0])
    assert "CPUExecutionProvider" in page


def test_succeeded_report_has_rows_per_partition_and_timings(runs):
    page = (runs["ok_dir"] / "report.html").read_text()
    assert "every gate passed" in page
    assert _table(page, "bi-partitions")[1] == ["ds=2026-11-27", "6,000", "6,000"]
    assert 'aria-label="seconds per stage"' in page
    assert 'href="gx_output.json"' in page


def test_cli_report_regenerates_the_latest_run_or_a_chosen_one(runs, tmp_path, capsys):
    failed_page = runs["failed_dir"] / "report.html"
    failed_page.unlink()
    assert main(["report", str(runs["out"])]) == 0  # the latest run: the gate-failed one
    assert capsys.readouterr().out.strip() == str(failed_page)
    assert "drift:psi[f2]" in failed_page.read_text()
    target = tmp_path / "ok.html"
    assert main(["report", str(runs["out"]), "--run", runs["ok"].run_id, "--out", str(target)]) == 0
    assert runs["ok"].run_id in target.read_text() and "gate_failed" not in target.read_text()
    via_manifest = tmp_path / "m.html"
    assert main(["report", str(runs["ok_dir"] / "manifest.json"), "--out", str(via_manifest)]) == 0
    assert _table(via_manifest.read_text(), "bi-drift") == _table(target.read_text(), "bi-drift")


def test_cli_compare_puts_two_runs_side_by_side(runs, tmp_path):
    target = tmp_path / "cmp.html"
    assert (
        main(["report", "--compare", str(runs["ok_dir"]), str(runs["failed_dir"]), "--out", str(target)]) == 0
    )
    page = target.read_text()
    assert runs["ok"].run_id in page and runs["failed"].run_id in page
    f2 = next(r for r in _table(page, "bi-compare-drift") if r[1] == "f2" and r[2] == "psi")
    ok_value = next(
        o for o in runs["ok"].manifest["checks"]["outcomes"] if o["column"] == "f2" and o["check"] == "psi"
    )
    assert float(f2[3]) == pytest.approx(ok_value["observed"], rel=1e-3) and float(f2[4]) >= 0.25
    stages = [r[0] for r in _table(page, "bi-compare-timings")[1:]]
    assert "score_and_stage" in stages and "plan" in stages


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "{tmp}/nowhere"], "report: {tmp}/nowhere does not exist"),
        (["report", "{tmp}"], "no batchinfer runs under {tmp}"),
        (
            ["report", "{out}", "--run", "20200101T000000Z-deadbeef"],
            "run 20200101T000000Z-deadbeef not found",
        ),
        (["report", "--compare", "{out}"], "report --compare takes two runs, got 1"),
        (["report", "{out}", "{out}"], "report takes one run, got 2"),
    ],
)
def test_cli_report_bad_arguments(runs, tmp_path, capsys, argv, message):
    fill = {"tmp": str(tmp_path), "out": str(runs["out"])}
    assert main([a.format(**fill) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message.format(**fill) in err and "fix:" in err and "Traceback" not in err


def test_cli_report_rejects_a_json_that_is_not_a_manifest(tmp_path, capsys):
    bogus = tmp_path / "manifest.json"
    bogus.write_text('{"hello": 1}')
    assert main(["report", str(bogus)]) == 2
    assert "is not a batchinfer run manifest (no run_id)" in capsys.readouterr().err


def test_job_result_renders_the_report_inline(runs):
    html = runs["failed"]._repr_html_()
    assert html.startswith('<div class="bi-report">') and "<html" not in html
    assert 'id="bi-drift"' in html and html.count('<figure class="bi-overlay">') == 7
    assert "href=" not in html  # no links to run files in a notebook


# --------------------------------------------------------------------------- in a real browser
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str:
    """The Debian chromium; installed here (root + apt-get) when missing, else the test is skipped."""
    import os
    import shutil
    import subprocess

    path = "/usr/bin/chromium"
    if not os.path.exists(path) and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
        for steps in ([install], [["apt-get", "update", "-q"], install]):  # a stale package list: update once
            for cmd in steps:
                subprocess.run(cmd, env=env, capture_output=True, timeout=900, check=False)
            if os.path.exists(path):
                break
    if not os.path.exists(path):
        pytest.skip(
            "no /usr/bin/chromium and it could not be installed (needs root and apt-get: apt-get install chromium)"
        )
    return path


def test_report_loads_offline_in_headless_chromium(runs, tmp_path):
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    page_file = runs["failed_dir"] / "report.html"
    requests, problems = [], []
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=executable, headless=True, args=CHROMIUM_FLAGS
        )
        try:

            def only_local(route):
                url = route.request.url
                if url.startswith(("file://", "data:")):
                    route.continue_()
                else:  # the report must not need the network: any such request fails the test
                    requests.append(url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(page_file.as_uri(), wait_until="load")
            assert page.title().endswith("gate_failed")
            assert page.locator("#bi-drift").is_visible()
            assert page.locator("#bi-drift tr").count() > 5
            assert page.locator("#bi-quality").is_visible()
            charts = page.locator("img.bi-chart")
            assert charts.count() >= 1 + 7  # drift values, one overlay per column
            bars = page.locator("#bi-timings .bi-bar")  # the stage timings: CSS bars, drawn
            assert bars.count() >= 3
            widths = [bars.nth(i).bounding_box()["width"] for i in range(bars.count())]
            assert max(widths) > 100 and min(widths) >= 1
            overlay = page.locator("figure.bi-overlay img").first
            overlay.scroll_into_view_if_needed()
            box = overlay.bounding_box()
            assert box and box["width"] > 50 and box["height"] > 50
            decoded = page.evaluate(
                "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
            )
            assert decoded, "an image of the report did not decode"
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        finally:
            context.close()
    assert requests == [] and problems == []
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_a_run_failing_in_its_tasks_still_writes_its_report(spark, runs, tmp_path):
    from batchinfer.errors import ConfigError

    cfg = job_config(runs["data"], runs["model"], tmp_path / "out", features=FEATURES)
    cfg["model"]["postprocess"] = "tests.support.hooks:returns_none"  # fails inside every scoring task
    cfg["runtime"]["allow_custom_code"] = True
    with pytest.raises(ConfigError) as info:
        Job.from_config(cfg, overrides=["input.partitions.ds=2026-11-27"]).run(spark=spark)
    result = info.value.result
    page = (tmp_path / "out" / "_batchinfer" / "runs" / result.run_id / "report.html").read_text()
    assert result.status == "failed" and ">failed</span>" in page
    assert "returned NoneType, expected a pyarrow.RecordBatch" in page


def test_cli_run_summary_points_at_the_report(spark, runs, tmp_path, capsys):
    config = tmp_path / "job.json"
    config.write_text(
        json.dumps(job_config(runs["data"], runs["model"], tmp_path / "out", features=FEATURES))
    )
    assert main(["run", str(config), "--set", "input.partitions.ds=2026-11-27"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("  report "))
    page = line.split()[-1]
    assert page.endswith("/report.html") and "succeeded" in open(page).read()
    assert len(out.splitlines()) <= 24  # the end-of-run summary fits one screen


# ------------------------------------------------------------------- quarantine per partition
@pytest.mark.parametrize("writer", ["pyarrow", "spark"])  # single pass in the task | Spark's split
def test_report_shows_rows_in_out_and_quarantined_per_partition(spark, tmp_path, writer):
    def bad_rows(count):
        def extra(n, rng):
            f1 = rng.normal(size=n).astype(np.float32)
            f1[:count] = np.nan
            return {"f1": f1}

        return extra

    data = tmp_path / "ev"
    write_partitioned(data, days=("2026-11-27",), files_per_day=1, rows_per_file=400, extra=bad_rows(3))
    write_partitioned(data, days=("2026-11-28",), files_per_day=1, rows_per_file=300, extra=bad_rows(0))
    write_partitioned(data, days=("2026-11-29",), files_per_day=1, rows_per_file=200, extra=bad_rows(5))
    model, _ = models.linear_classifier(tmp_path / "m.onnx", 4)
    cfg = job_config(
        data,
        model,
        tmp_path / "out",
        features=FEATURES,
        quarantine={"enabled": True, "path": str(tmp_path / "q"), "max_fraction": 0.05},
        input={"invalid_features": "quarantine"},
        output={"writer": writer},
    )
    result = Job.from_config(cfg).run(spark=spark)
    q = result.manifest["checks"]["quarantine"]
    assert q["rows_by_partition"] == {"ds=2026-11-27": 3, "ds=2026-11-29": 5}  # no file: none quarantined
    assert sum(q["rows_by_partition"].values()) == q["rows_quarantined"] == 8
    page = (tmp_path / "out" / "_batchinfer" / "runs" / result.run_id / "report.html").read_text()
    assert _table(page, "bi-partitions") == [
        ["partition", "rows in", "rows out", "quarantined"],
        ["ds=2026-11-27", "400", "397", "3"],
        ["ds=2026-11-28", "300", "300", "0"],
        ["ds=2026-11-29", "200", "195", "5"],
    ]


def test_report_without_quarantine_has_no_quarantined_column(runs):
    page = (runs["ok_dir"] / "report.html").read_text()
    assert _table(page, "bi-partitions")[0] == ["partition", "rows in", "rows out"]


# ------------------------------------------------------------------------------ report --open
def _cli(*args, env):
    """The installed `batchinfer` command in a child process (webbrowser reads $BROWSER there)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "batchinfer"
    cmd = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from batchinfer.cli import main; sys.exit(main())"]
    )
    return subprocess.run(
        [*cmd, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=120, check=False
    )


def test_cli_report_open_hands_the_written_page_to_the_browser(runs, tmp_path):
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{opened}"\n')
    browser.chmod(0o755)
    target = tmp_path / "pages" / "ok.html"
    proc = _cli(
        "report",
        str(runs["out"]),
        "--run",
        runs["ok"].run_id,
        "--out",
        str(target),
        "--open",
        env={"BROWSER": str(browser)},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(target)
    assert opened.read_text().splitlines() == [target.as_uri()]  # the page just written, once
    assert runs["ok"].run_id in target.read_text()
    # No browser to start (the command fails): the page is still written, and the user is told.
    failing = tmp_path / "no-browser.sh"
    failing.write_text("#!/bin/sh\nexit 3\n")
    failing.chmod(0o755)
    proc = _cli("report", str(runs["ok_dir"]), "--open", env={"BROWSER": str(failing)})
    assert proc.returncode == 0, proc.stderr
    assert "no browser could be started to open file://" in proc.stderr
    assert (runs["ok_dir"] / "report.html").exists() and "Traceback" not in proc.stderr
