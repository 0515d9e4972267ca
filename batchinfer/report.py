"""The run manifest (JSON a DAG can read), a one-screen text summary, and the HTML view of a result."""

from __future__ import annotations

import html
import platform
import time
import traceback
from importlib import metadata

MANIFEST_SCHEMA_VERSION = 1
_PACKAGES = (
    "batchinfer",
    "pyspark",
    "onnxruntime",
    "onnxruntime-gpu",
    "pyarrow",
    "pandas",
    "numpy",
    "great_expectations",
    "onnx",
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ManifestBuilder:
    """Collects what each stage reports, then renders the manifest dict once at the end."""

    def __init__(self, run_id: str, loaded, *, dry_run: bool) -> None:
        self.run_id = run_id
        self.loaded = loaded
        self.dry_run = dry_run
        self.started_at = _now()
        self.plan = None
        self.spark: dict = {}
        self.workers: dict = {}
        self.commit = None
        self.notes: list[str] = []
        self.recovered: list[str] = []
        self.checks: dict = {}
        self.extra: dict = {}
        self.attachments: dict[str, str] = {}
        self.staged: dict | None = None
        self.spark_log_offset: int | None = None  # where this run starts in the driver's Spark log

    def set_plan(self, plan) -> None:
        self.plan = plan

    def set_commit(self, commit) -> None:
        self.commit = commit

    def finish_dry_run(self, timings, staged_units: dict, stage_table) -> dict:
        import pyarrow.parquet as pq

        rows = 0
        parts = []
        for rel, files in staged_units.items():
            parts.append(dict(p.split("=", 1) for p in rel.split("/")) if rel else {})
            rows += sum(pq.read_metadata(f.path, filesystem=stage_table.root.fs).num_rows for f in files)
        self.staged = {"rows": rows, "partitions": parts, "path": stage_table.staging(self.run_id).uri}
        return self.finish("dry_run", timings)

    def finish(self, status: str, timings, *, error: BaseException | None = None) -> dict:
        cfg = self.loaded.config
        plan = self.plan
        doc: dict = {
            "schema_version": MANIFEST_SCHEMA_VERSION,
            "run_id": self.run_id,
            "job": cfg.job,
            "status": status,
            "dry_run": self.dry_run,
            "started_at": self.started_at,
            "finished_at": _now(),
            "config_digest": cfg.digest(),
            "config_sources": self.loaded.sources,
            "config": cfg.model_dump(mode="json"),
        }
        if plan is not None:
            doc["model"] = plan.model.summary()
            if plan.card is not None:
                doc["model"]["card"] = {
                    k: plan.card.get(k)
                    for k in ("method", "verification", "created_at", "reference", "parameters")
                    if k in plan.card
                }
            doc["input"] = plan.selection.summary()
            doc["rows_in"] = plan.selection.rows
        else:
            doc["rows_in"] = 0
        if self.commit is not None:
            doc["output"] = {
                "path": cfg.output.path,
                "mode": cfg.output.mode,
                "partition_by": cfg.output.partition_by,
                "partitions_written": self.commit.partitions,
                "rows_by_partition": self.commit.rows_by_partition,
                "files": self.commit.files,
                "committed": True,
            }
            doc["rows_out"] = self.commit.rows
        elif self.staged is not None:
            doc["output"] = {"path": cfg.output.path, "committed": False, "staged": self.staged}
            doc["rows_out"] = self.staged["rows"]
        else:
            doc["output"] = {"path": cfg.output.path, "committed": False}
            doc["rows_out"] = 0
        if self.checks:
            doc["checks"] = self.checks
        doc["timings"] = {**timings.values, "total": timings.total()}
        doc["spark"] = self.spark
        doc["workers"] = self.workers
        doc["sessions_created"] = sum(w.get("sessions", 0) for w in self.workers.values())
        doc["providers"] = sorted({p for w in self.workers.values() for p in w.get("providers", [])})
        warnings = [x for w in self.workers.values() for x in w.get("warnings", [])]
        doc["warnings"] = sorted(set(warnings))
        doc["versions"] = package_versions()
        doc["host"] = platform.node()
        if self.recovered:
            doc["recovered"] = self.recovered
        if self.notes:
            doc["notes"] = self.notes
        doc.update(self.extra)
        if error is not None:
            info = (
                error.to_dict()
                if hasattr(error, "to_dict")
                else {
                    "type": type(error).__name__,
                    "message": str(error),
                    "exit_code": 1,
                    "traceback": traceback.format_exception(type(error), error, error.__traceback__)[-3:],
                }
            )
            doc["error"] = info
        # The one place secrets leave the manifest: JobResult.manifest, --json, files, reports.
        from batchinfer.config import redact

        return redact(doc, getattr(self.loaded, "secrets", []))


def _fmt_rows(n: int) -> str:
    return f"{n:,}"


_CHECK_STAGES = ("checks_plan", "checks", "input_checks", "drift", "output_checks", "quarantine_commit")


def checks_share(manifest: dict) -> str | None:
    """The checks' share of the run, e.g. ``1.2 s of 20.4 s (5.9 %): 0.3 s on the driver + ...``.

    Single pass: the driver's check stages plus the time the scoring tasks spent on checks
    (summed over tasks, which run in parallel: an upper bound of their wall-clock share).
    """
    t = manifest.get("timings", {})
    checks = manifest.get("checks") or {}
    driver = sum(float(t.get(k, 0.0)) for k in _CHECK_STAGES)
    in_task = float(checks.get("in_task_seconds") or 0.0)
    total = float(t.get("total") or 0.0)
    if not checks or total <= 0:
        return None
    spent = driver + in_task
    text = f"{spent:.1f} s of {total:.1f} s ({100 * spent / total:.1f} %): {driver:.1f} s on the driver"
    if checks.get("single_pass"):
        text += f" + {in_task:.1f} s inside the scoring tasks (one pass, no extra read)"
    return text


def summary_text(manifest: dict) -> str:
    """A short human summary of a run."""
    t = manifest.get("timings", {})
    parts = manifest.get("output", {}).get("partitions_written") or manifest.get("output", {}).get(
        "staged", {}
    ).get("partitions", [])
    shown = ", ".join("/".join(f"{k}={v}" for k, v in p.items()) or "(all)" for p in parts[:6])
    if len(parts) > 6:
        shown += f", … ({len(parts)} in all)"
    lines = [
        f"job {manifest['job']} run {manifest['run_id']}: {manifest['status']}",
        f"  rows scored   {_fmt_rows(manifest.get('rows_out', 0))} of {_fmt_rows(manifest.get('rows_in', 0))} read",
        f"  partitions    {shown or '-'}",
        f"  output        {manifest.get('output', {}).get('path')}"
        + ("" if manifest.get("output", {}).get("committed") else " (not written)"),
        f"  time          {t.get('total', 0):.1f} s ("
        + ", ".join(f"{k} {v:.1f}" for k, v in t.items() if k != "total")
        + ")",
    ]
    share = checks_share(manifest)
    if share is not None:
        lines.append(f"  checks        {share}")
    if manifest.get("providers"):
        lines.append(f"  providers     {', '.join(manifest['providers'])}")
    for w in manifest.get("warnings", []):
        lines.append(f"  warning       {w}")
    if "error" in manifest:
        lines.append(f"  error         {manifest['error'].get('message')}")
    return "\n".join(lines)


def render_result_html(result) -> str:
    """HTML for Jupyter: status, counts, timings, checks table (when present)."""
    m = result.manifest
    color = {"succeeded": "#1a7f37", "dry_run": "#0969da", "gate_failed": "#cf222e", "failed": "#cf222e"}.get(
        result.status, "#57606a"
    )
    rows = [
        ("status", f'<b style="color:{color}">{html.escape(result.status)}</b>'),
        ("run id", html.escape(result.run_id)),
        ("rows in / out", f"{m.get('rows_in', 0):,} / {m.get('rows_out', 0):,}"),
        ("model", html.escape(str(m.get("model", {}).get("sha256", ""))[:16]) + "…"),
        ("output", html.escape(str(m.get("output", {}).get("path")))),
        ("time", " · ".join(f"{html.escape(k)} {v:.1f}s" for k, v in m.get("timings", {}).items())),
    ]
    body = "".join(
        f"<tr><th style='text-align:left'>{k}</th><td style='text-align:left'>{v}</td></tr>" for k, v in rows
    )
    out = f"<div><h4>batchinfer · {html.escape(m.get('job', ''))}</h4><table>{body}</table>"
    outcomes = m.get("checks", {}).get("outcomes", [])
    if outcomes:
        head = "".join(
            f"<th>{h}</th>"
            for h in ("stage", "check", "column", "observed", "unexpected %", "severity", "status")
        )
        trs = []
        for o in outcomes:
            st = o.get("status", "")
            c = {"passed": "#1a7f37", "warning": "#9a6700", "failed": "#cf222e"}.get(st, "#000")
            up = o.get("unexpected_percent")
            trs.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(v))}</td>"
                    for v in (
                        o.get("stage"),
                        o.get("check"),
                        o.get("column") or "",
                        _short(o.get("observed")),
                        "" if up is None else f"{up:.3g}",
                        o.get("severity"),
                    )
                )
                + f"<td style='color:{c}'><b>{html.escape(st)}</b></td></tr>"
            )
        out += f"<h5>checks</h5><table><tr>{head}</tr>{''.join(trs)}</table>"
    for fig in result.extras.get("figures_html", []):
        out += fig
    return out + "</div>"


def _short(value, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"
