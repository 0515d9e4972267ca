"""The run report: one self-contained HTML page per run, next to its manifest.

Built from what the run saved (``manifest.json``, the GX results, the drift counts and the copy
of the reference bins), so ``batchinfer report`` can regenerate it later without reading the
data again. The page has no network dependency: CSS is inline, charts are SVG data URIs
(``report_charts.py``), there is no JavaScript. The same fragment renders inline in Jupyter
(``JobResult._repr_html_``).

>>> from batchinfer.report_html import load_run, render_report  # doctest: +SKIP
>>> run = load_run("data/churn_scores")  # the latest run of that output  # doctest: +SKIP
>>> html = render_report(run.manifest, run.files)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field

from batchinfer.errors import ConfigError

log = logging.getLogger("batchinfer")

REPORT_FILE = "report.html"
DRIFT_REFERENCE_FILE = "drift_reference.json"
DRIFT_STAGES = ("drift", "prediction_drift")
#: Overlays drawn per report (worst columns first); the summary table always lists every column.
MAX_OVERLAYS = 24
_COUNTS_FILE = {"drift": "drift_input_counts.json", "prediction_drift": "drift_prediction_counts.json"}
_GX_FILE = {"input": "gx_input.json", "output": "gx_output.json"}
_STATUS_RANK = {"failed": 0, "warning": 1, "passed": 2}
# Dataset-level and side checks: in the drift table, but they have no per-column distribution.
_SIDE_CHECKS = ("null_rate_increase", "unseen_category_share", "drifted_column_share")


@dataclass
class RunRecord:
    """A run as saved: its manifest, the other files of its run directory, and where it lives."""

    manifest: dict
    files: dict[str, str] = field(default_factory=dict)
    location: str | None = None  # run directory URI


# ---------------------------------------------------------------------------------------- view
def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float)) for v in value):
            return ", ".join(_fmt(v, digits) for v in value)
        return json.dumps(value, default=str)
    if isinstance(value, dict):
        return json.dumps(value, default=str, sort_keys=True)
    return str(value)


def _short(value, limit: int = 60) -> str:
    text = _fmt(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _partition_label(part: dict | str) -> str:
    if isinstance(part, str):
        return part
    return "/".join(f"{k}={v}" for k, v in part.items()) or "(unpartitioned)"


def _partitions(manifest: dict) -> list[dict]:
    """Rows in / out / quarantined per partition.

    In: the plan's footers; out: what was committed (or staged by a dry run); quarantined: the
    quarantine files the run staged (``None`` throughout when the run had no quarantine).
    """
    inp = manifest.get("input") or {}
    out = manifest.get("output") or {}
    quarantine = (manifest.get("checks") or {}).get("quarantine")
    rows_in = {_norm(k): v for k, v in (inp.get("rows_by_partition") or {}).items()}
    rows_out = {_norm(k): v for k, v in (out.get("rows_by_partition") or {}).items()}
    by_q = (quarantine or {}).get("rows_by_partition")
    rows_q = {_norm(k): v for k, v in by_q.items()} if isinstance(by_q, dict) else None
    labels = [_partition_label(p) for p in inp.get("partitions") or []]
    labels += [k for k in [*rows_in, *rows_out, *(rows_q or {})] if k not in labels]
    return [
        {
            "partition": k,
            "rows_in": rows_in.get(k),
            "rows_out": rows_out.get(k),
            # A partition without quarantine files had no quarantined rows.
            "rows_quarantined": None if rows_q is None else rows_q.get(k, 0),
        }
        for k in labels
    ]


def _norm(label: str) -> str:
    from urllib.parse import unquote

    # Output directories are Hive-escaped (ds=a%2Fb); the input's labels are the unescaped values.
    return "(unpartitioned)" if label in ("", "(all)") else unquote(label)


def _why(manifest: dict) -> str:
    err = manifest.get("error") or {}
    if err:
        return err.get("message") or err.get("type") or ""
    status = manifest.get("status")
    if status == "dry_run":
        return "dry run: every stage but the commit; nothing was written"
    if status == "succeeded":
        gate = (manifest.get("checks") or {}).get("gate") or {}
        warnings = gate.get("warnings")
        return "every gate passed" + (f" ({warnings} warnings)" if warnings else "") + "; output committed"
    return ""


def _quality_rows(manifest: dict, files: dict[str, str], links: bool) -> list[dict]:
    rows = []
    for o in (manifest.get("checks") or {}).get("outcomes") or []:
        if o.get("stage") in DRIFT_STAGES:
            continue
        gx = _GX_FILE.get(o.get("stage"))
        up = o.get("unexpected_percent")
        rows.append(
            {
                "stage": o.get("stage"),
                "check": o.get("check"),
                "column": o.get("column") or "",
                "observed": _short(o.get("observed")),
                "unexpected": "" if up is None else f"{up:.3g} %",
                "severity": o.get("severity"),
                "status": o.get("status"),
                "message": o.get("message") or "",
                "link": gx if links and gx in files else None,
            }
        )
    return rows


def _drift_rows(manifest: dict) -> list[dict]:
    rows = []
    for o in (manifest.get("checks") or {}).get("outcomes") or []:
        if o.get("stage") not in DRIFT_STAGES:
            continue
        details = o.get("details") or {}
        # Per-column metrics carry both thresholds; side rules have one, at their own severity.
        warn, fail = details.get("warn"), details.get("fail")
        if warn is None and fail is None and o.get("threshold") is not None:
            warn, fail = (o["threshold"], None) if o.get("severity") == "warn" else (None, o["threshold"])
        rows.append(
            {
                "stage": o.get("stage"),
                "column": o.get("column") or "(dataset)",
                "metric": o.get("check"),
                "value": o.get("observed"),
                "value_text": _fmt(o.get("observed")),
                "warn": _fmt(warn),
                "fail": _fmt(fail),
                "status": o.get("status"),
                "message": o.get("message") or "",
                "side": o.get("check") in _SIDE_CHECKS,
            }
        )
    rows.sort(key=lambda r: (_STATUS_RANK.get(r["status"], 3), r["side"], r["stage"], r["column"]))
    return rows


def _profile_columns(text: str | None) -> dict:
    if not text:
        return {}
    try:
        return (json.loads(text) or {}).get("columns") or {}
    except (ValueError, AttributeError):
        return {}


def _reference_columns(manifest: dict, files: dict[str, str]) -> dict:
    """The reference bins the run saved; runs from before that fall back to the configured profile."""
    cols = _profile_columns(files.get(DRIFT_REFERENCE_FILE))
    if cols:
        return cols
    path = ((manifest.get("config") or {}).get("drift") or {}).get("reference")
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            return _profile_columns(fh.read())
    except OSError:
        return {}


def _null_share(entry: dict) -> float | None:
    nulls = int(entry.get("null_count") or 0)
    rows = nulls + int(entry.get("count") or sum(entry.get("counts") or []))
    return nulls / rows if rows else None


def _overlays(manifest: dict, files: dict[str, str], drift_rows: list[dict]) -> tuple[list[dict], int]:
    """Per-column reference-vs-current charts, worst columns first; (charts, columns left out)."""
    from batchinfer import report_charts

    reference = _reference_columns(manifest, files)
    current = {stage: _profile_columns(files.get(name)) for stage, name in _COUNTS_FILE.items()}
    if not reference:
        return [], 0
    seen, charts, skipped = set(), [], 0
    for row in drift_rows:
        stage, column = row["stage"], row["column"]
        if row["side"] or (stage, column) in seen:
            continue
        ref, cur = reference.get(column), current.get(stage, {}).get(column)
        if not ref or not cur or ref.get("type") != cur.get("type"):
            continue
        seen.add((stage, column))
        if len(charts) >= MAX_OVERLAYS:
            skipped += 1
            continue
        ref_null, cur_null = _null_share(ref), _null_share(cur)
        notes = (
            [f"null {ref_null:.1%} → {cur_null:.1%}"] if ref_null is not None and cur_null is not None else []
        )
        if ref["type"] == "numeric":
            below, above = report_charts.out_of_range(cur)
            if below >= 0.001 or above >= 0.001:
                notes.append(f"outside the reference range: {below:.1%} below, {above:.1%} above")
        title = f"{column}: {row['metric']} {row['value_text']} ({row['status']})"
        draw = (
            report_charts.numeric_overlay if ref["type"] == "numeric" else report_charts.categorical_overlay
        )
        try:
            image = draw(column, ref, cur, title=title)
        except Exception as exc:  # a chart that cannot be drawn must not lose the report
            log.debug("batchinfer: drift chart for %s not drawn: %s", column, exc)
            continue
        charts.append(
            {
                "stage": stage,
                "column": column,
                "status": row["status"],
                "image": image,
                "notes": " · ".join(notes),
            }
        )
    return charts, skipped


def _worker_table(manifest: dict) -> tuple[list[str], list[dict]]:
    """Every key any worker reported (new fields appear without changes here)."""
    workers = manifest.get("workers") or {}
    columns: list[str] = []
    for info in workers.values():
        for key in info if isinstance(info, dict) else ():
            if key not in columns:
                columns.append(key)
    rows = []
    for name, info in workers.items():
        info = info if isinstance(info, dict) else {"value": info}
        rows.append({"worker": name, "cells": [_fmt(info.get(k)) for k in columns]})
    return columns, rows


def _model(manifest: dict) -> list[tuple[str, str]]:
    model = manifest.get("model") or {}
    out = [(k, _fmt(v)) for k, v in model.items() if k != "card"]
    for k, v in (model.get("card") or {}).items():
        out.append((f"card {k}", _fmt(v)))
    return out


def _engine(manifest: dict) -> list[tuple[str, str]]:
    out = [(k, _fmt(v)) for k, v in (manifest.get("spark") or {}).items()]
    for key in ("engine", "reader", "writer", "batching"):
        if manifest.get(key):
            out.append((key, _fmt(manifest[key])))
    if manifest.get("providers"):
        out.append(("providers", ", ".join(manifest["providers"])))
    return out


def build_view(manifest: dict, files: dict[str, str] | None = None, *, links: bool = True) -> dict:
    """Everything the template shows, as plain values (no HTML)."""
    from batchinfer import report_charts

    files = files or {}
    checks = manifest.get("checks") or {}
    quarantine = checks.get("quarantine") or {}
    drift_rows = _drift_rows(manifest)
    overlays, skipped = _overlays(manifest, files, drift_rows)
    columns, workers = _worker_table(manifest)
    timings = manifest.get("timings") or {}
    err = manifest.get("error") or {}
    return {
        "job": manifest.get("job", ""),
        "run_id": manifest.get("run_id", ""),
        "status": manifest.get("status", ""),
        "why": _why(manifest),
        "hint": err.get("hint") or "",
        "started_at": manifest.get("started_at", ""),
        "finished_at": manifest.get("finished_at", ""),
        "host": manifest.get("host", ""),
        "model": _model(manifest),
        "engine": _engine(manifest),
        "rows_in": manifest.get("rows_in", 0),
        "rows_out": manifest.get("rows_out", 0),
        "rows_quarantined": quarantine.get("rows_quarantined"),
        "output": (manifest.get("output") or {}).get("path", ""),
        "committed": bool((manifest.get("output") or {}).get("committed")),
        "partitions": _partitions(manifest),
        "timings": [(k, v) for k, v in timings.items() if k != "total"],
        "total_seconds": timings.get("total"),
        "timing_bars": report_charts.timing_bars(timings),
        "gate": checks.get("gate"),
        "quality": _quality_rows(manifest, files, links),
        "drift": drift_rows,
        "drift_chart": report_charts.drift_values_chart([r for r in drift_rows if not r["side"]]),
        "overlays": overlays,
        "overlays_skipped": skipped,
        "drift_files": [n for n in (*_COUNTS_FILE.values(), DRIFT_REFERENCE_FILE) if links and n in files],
        "worker_columns": columns,
        "workers": workers,
        "warnings": manifest.get("warnings") or [],
        "notes": manifest.get("notes") or [],
        "links": links,
    }


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("batchinfer", "resources"),
        autoescape=True,  # every value from a manifest is escaped
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["fmt"] = _fmt
    return env


def render_report(manifest: dict, files: dict[str, str] | None = None, *, standalone: bool = True) -> str:
    """The report page (``standalone``) or the fragment Jupyter shows inline (no links to files)."""
    view = build_view(manifest, files, links=standalone)
    fragment = _environment().get_template("report.html.j2").render(r=view)
    if not standalone:
        return fragment
    return _environment().get_template("page.html.j2").render(title=_title(view), body=fragment)


def _title(view: dict) -> str:
    return f"batchinfer · {view['job']} · {view['run_id']} · {view['status']}"


def write_report(table, run_id: str, manifest: dict, files: dict[str, str]) -> str | None:
    """Write ``report.html`` into the run directory; a report that fails never fails the run."""
    try:
        page = render_report(manifest, files)
        return table.write_run_file(run_id, REPORT_FILE, page)
    except Exception as exc:
        log.warning("batchinfer: run report not written: %s", exc)
        return None


# ---------------------------------------------------------------------------------------- runs
def load_run(path: str, run_id: str | None = None) -> RunRecord:
    """A run from a run directory, a manifest file, or an output path (its latest run by default)."""
    from batchinfer.io.filesystem import exists, is_dir, resolve

    loc = resolve(str(path))
    if not exists(loc):
        raise ConfigError(
            f"report: {path} does not exist",
            hint="give a run directory, its manifest.json, or the job's output path",
        )
    if not is_dir(loc):  # a manifest file
        return _read_run(_parent(loc), manifest_loc=loc)
    if exists(loc.join("manifest.json")) and run_id is None:
        return _read_run(loc)
    runs = loc.join("_batchinfer", "runs")
    if not is_dir(runs):
        raise ConfigError(
            f"report: no batchinfer runs under {path} (expected {runs.uri} or a manifest.json)",
            hint="give a run directory, its manifest.json, or the job's output path",
        )
    available = _run_ids(runs)
    if run_id is None:
        if not available:
            raise ConfigError(
                f"report: no run with a manifest under {runs.uri}",
                hint="run the job first; a run writes its manifest there (after planning)",
            )
        run_id = _last_run(loc, available)
    elif run_id not in available:
        shown = ", ".join(available[-5:]) or "none"
        raise ConfigError(
            f"report: run {run_id} not found under {runs.uri} (latest: {shown})",
            hint="omit --run for the latest run, or pick one of the ids listed",
        )
    return _read_run(runs.join(run_id))


def _parent(loc):
    from batchinfer.io.filesystem import Location

    path, _, _ = loc.path.rpartition("/")
    uri, _, _ = loc.uri.rpartition("/")
    return Location(loc.fs, path, uri, loc.is_local)


def _last_run(loc, available: list[str]) -> str:
    """The run the output's ``_batchinfer/last_run.json`` names (the last manifest written), else
    the id that sorts last. Ids start with their UTC start second, so two runs started in the same
    second sort by their random suffix: the name alone cannot say which came last."""
    import json

    from batchinfer.io.filesystem import exists

    pointer = loc.join("_batchinfer", "last_run.json")
    try:
        named = json.loads(_read_text(pointer)).get("run_id") if exists(pointer) else None
    except (OSError, ValueError, AttributeError):
        named = None
    return named if named in available else available[-1]


def _run_ids(runs) -> list[str]:
    from pyarrow import fs as pafs

    out = []
    for info in runs.fs.get_file_info(pafs.FileSelector(runs.path)):
        if info.type == pafs.FileType.Directory:
            manifest = runs.join(info.base_name, "manifest.json")
            if runs.fs.get_file_info(manifest.path).type == pafs.FileType.File:
                out.append(info.base_name)
    return sorted(out)


def _read_text(loc) -> str:
    with loc.fs.open_input_stream(loc.path) as fh:
        return fh.read().decode("utf-8")


def _read_run(run_dir, manifest_loc=None) -> RunRecord:
    from pyarrow import fs as pafs

    manifest_loc = manifest_loc or run_dir.join("manifest.json")
    try:
        manifest = json.loads(_read_text(manifest_loc))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"report: cannot read the run manifest {manifest_loc.uri}: {exc}",
            hint="give a manifest.json written by batchinfer run",
        ) from exc
    if not isinstance(manifest, dict) or "run_id" not in manifest:
        raise ConfigError(
            f"report: {manifest_loc.uri} is not a batchinfer run manifest (no run_id)",
            hint="give a manifest.json written by batchinfer run",
        )
    files = {}
    for info in run_dir.fs.get_file_info(pafs.FileSelector(run_dir.path)):
        if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
            if info.path != manifest_loc.path:
                files[info.base_name] = _read_text(run_dir.join(info.base_name))
    return RunRecord(manifest, files, run_dir.uri)


# ------------------------------------------------------------------------------------- compare
def compare_view(a: RunRecord, b: RunRecord) -> dict:
    """Two runs side by side: rows, timings per stage, drift values per column."""

    def drift_values(m: dict) -> dict:
        return {
            (o["stage"], o.get("column") or "(dataset)", o["check"]): o
            for o in (m.get("checks") or {}).get("outcomes") or []
            if o.get("stage") in DRIFT_STAGES
        }

    ma, mb = a.manifest, b.manifest
    ta, tb = ma.get("timings") or {}, mb.get("timings") or {}
    stages = [*ta, *[k for k in tb if k not in ta]]
    da, db = drift_values(ma), drift_values(mb)
    keys = [*da, *[k for k in db if k not in da]]
    return {
        "a": {"run_id": ma.get("run_id"), "job": ma.get("job"), "status": ma.get("status")},
        "b": {"run_id": mb.get("run_id"), "job": mb.get("job"), "status": mb.get("status")},
        "rows": [
            (label, ma.get(key), mb.get(key))
            for label, key in (("rows in", "rows_in"), ("rows out", "rows_out"))
        ]
        + [
            (
                "quarantined",
                ((ma.get("checks") or {}).get("quarantine") or {}).get("rows_quarantined"),
                ((mb.get("checks") or {}).get("quarantine") or {}).get("rows_quarantined"),
            ),
            (
                "model",
                str((ma.get("model") or {}).get("sha256", ""))[:16],
                str((mb.get("model") or {}).get("sha256", ""))[:16],
            ),
        ],
        "timings": [(s, ta.get(s), tb.get(s)) for s in stages],
        "drift": [
            {
                "stage": k[0],
                "column": k[1],
                "metric": k[2],
                "a": (da.get(k) or {}).get("observed"),
                "a_status": (da.get(k) or {}).get("status", ""),
                "b": (db.get(k) or {}).get("observed"),
                "b_status": (db.get(k) or {}).get("status", ""),
            }
            for k in keys
        ],
    }


def render_compare(a: RunRecord, b: RunRecord) -> str:
    view = compare_view(a, b)
    env = _environment()
    body = env.get_template("compare.html.j2").render(c=view)
    title = f"batchinfer · compare {view['a']['run_id']} ↔ {view['b']['run_id']}"
    return env.get_template("page.html.j2").render(title=title, body=body)


# ----------------------------------------------------------------------------------------- CLI
def register(sub) -> None:
    """``batchinfer report``: regenerate a run's page, or compare two runs (no Spark)."""
    p = sub.add_parser(
        "report",
        help="write the HTML report of a run (the latest by default), or compare two runs",
        description="RUN is a run directory, its manifest.json, or the job's output path (its latest "
        "run, or --run ID). With --compare RUN_A RUN_B, a side-by-side page of two runs.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directory, manifest.json or output path")
    p.add_argument("--run", metavar="ID", help="run id under an output path (default: the latest)")
    p.add_argument("--compare", action="store_true", help="compare two runs: RUN_A RUN_B")
    p.add_argument(
        "--out", metavar="FILE", help="where to write the page (default: report.html in the run dir)"
    )
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.set_defaults(handler=cmd_report)


def cmd_report(args) -> int:
    if args.compare:
        if len(args.runs) != 2:
            raise ConfigError(
                f"report --compare takes two runs, got {len(args.runs)}",
                hint="batchinfer report --compare RUN_A RUN_B",
            )
        a, b = (load_run(r, args.run) for r in args.runs)
        page = render_compare(a, b)
        location, default = None, f"compare-{a.manifest['run_id']}-{b.manifest['run_id']}.html"
    else:
        if len(args.runs) != 1:
            raise ConfigError(
                f"report takes one run, got {len(args.runs)}",
                hint="use --compare RUN_A RUN_B to compare two runs",
            )
        run = load_run(args.runs[0], args.run)
        page = render_report(run.manifest, run.files)
        location, default = run.location, None
    target = _write_page(page, args.out, location, default)
    print(target)
    if args.open:
        import sys
        import webbrowser

        from batchinfer.io.filesystem import resolve

        loc = resolve(target)
        url = _file_url(loc.path) if loc.is_local else target
        # webbrowser honours $BROWSER; False when no browser could be started (a headless server).
        if not webbrowser.open(url):
            print(f"report: no browser could be started to open {url}; open it yourself", file=sys.stderr)
    return 0


def _file_url(path: str) -> str:
    from pathlib import Path

    return Path(path).resolve().as_uri()


def _write_page(page: str, out: str | None, run_location: str | None, default_name: str | None) -> str:
    import os

    from batchinfer.io.filesystem import resolve

    if out is None and run_location is not None:
        loc = resolve(run_location).join(REPORT_FILE)
    else:
        loc = resolve(out or default_name or REPORT_FILE)
    try:
        if loc.is_local:
            os.makedirs(os.path.dirname(loc.path) or ".", exist_ok=True)
        with loc.fs.open_output_stream(loc.path) as fh:
            fh.write(page.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"report: cannot write {loc.uri}: {exc}",
            hint="choose a writable --out FILE",
        ) from exc
    return loc.uri


def report_location(result) -> str | None:
    """Where a finished run's ``report.html`` is (next to its manifest), if it was written."""
    from batchinfer.io.filesystem import exists, resolve

    if not result.manifest_path:
        return None
    uri = result.manifest_path.rsplit("/", 1)[0] + "/" + REPORT_FILE
    try:
        return uri if exists(resolve(uri)) else None
    except Exception:
        return None
