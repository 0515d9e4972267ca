"""Benchmark harness: the batchinfer job against its peers, each scenario in its own process.

    python benchmarks/run.py --rows 200000 --partitions 4            # make bench
    python benchmarks/run.py                                         # make bench-full (2M rows)
    python benchmarks/run.py --rows 50000 --scenarios floor,map_in_pandas --models fp32

For every model, the single-process floor runs first (it is the reference for the output checks
and the ratios); then each requested scenario runs as a separate process whose wall time and
process-tree peak RSS this harness measures. Results: a table on stdout,
``<out>/<timestamp>.json`` and ``<out>/<timestamp>.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SCENARIO_DIR = HERE / "scenarios"
sys.path.insert(0, str(HERE))

import batchinfer_config  # noqa: E402
import datagen  # noqa: E402
import report  # noqa: E402
import verify  # noqa: E402
from monitor import run_monitored  # noqa: E402


@dataclass
class Context:
    """What a scenario planner needs to build its command."""

    inputs: datagen.BenchInputs
    model: str
    outputs_dir: Path
    python: str = sys.executable

    @property
    def model_path(self) -> Path:
        return self.inputs.model_path(self.model)

    def out_dir(self, scenario: str) -> Path:
        return self.outputs_dir / f"{scenario}-{self.model}"


@dataclass
class Invocation:
    """One process to run and how to read what it printed."""

    argv: list[str]
    out_dir: Path
    parse: Callable[[str], dict] = field(default=lambda stdout: last_json_object(stdout))
    subset: bool = False  # the output scores a sample of the ids (per-row UDF)


class NotAvailable(Exception):
    """The scenario cannot run here (e.g. the batchinfer CLI is not installed yet)."""


def last_json_object(stdout: str) -> dict:
    """The last JSON object printed on stdout (a whole-stdout document, or the last JSON line)."""
    text = stdout.strip()
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value
    except json.JSONDecodeError:
        pass
    decoder = json.JSONDecoder()
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].lstrip().startswith("{"):
            try:
                value, _ = decoder.raw_decode("\n".join(lines[i:]).lstrip())
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("no JSON object found on stdout")


def _script(ctx: Context, name: str, *extra: str, data: Path | None = None) -> list[str]:
    return [
        ctx.python,
        str(SCENARIO_DIR / f"{name}.py"),
        "--data",
        str(data or ctx.inputs.data_dir),
        "--model",
        str(ctx.model_path),
        "--out",
        str(ctx.out_dir(name)),
        *extra,
    ]


def plan_floor(ctx: Context) -> Invocation:
    return Invocation(_script(ctx, "floor"), ctx.out_dir("floor"))


def plan_predict_batch_udf(ctx: Context) -> Invocation:
    return Invocation(_script(ctx, "predict_batch_udf"), ctx.out_dir("predict_batch_udf"))


def plan_map_in_pandas(ctx: Context) -> Invocation:
    return Invocation(_script(ctx, "map_in_pandas"), ctx.out_dir("map_in_pandas"))


def plan_per_row_udf(ctx: Context) -> Invocation:
    argv = _script(
        ctx,
        "per_row_udf",
        "--full-rows",
        str(ctx.inputs.rows),
        "--step",
        str(ctx.inputs.sample_step),
        data=ctx.inputs.sample_dir,
    )
    return Invocation(argv, ctx.out_dir("per_row_udf"), subset=True)


# Manifest timing keys taken as Spark session start; everything else counts as the job.
SESSION_TIMING_KEYS = ("spark_session", "session_start", "spark_start", "session", "spark")


def batchinfer_times(manifest: dict) -> dict:
    """Map the CLI manifest onto session_start_s / job_s. Adjust here if the manifest's stage names change."""
    timings = {k: float(v) for k, v in (manifest.get("timings") or {}).items() if isinstance(v, int | float)}
    session = next((timings[k] for k in SESSION_TIMING_KEYS if k in timings), None)
    if "total" in timings:
        job = timings["total"] - (session or 0.0)
    else:
        job = sum(v for k, v in timings.items() if k not in SESSION_TIMING_KEYS) or None
    return {
        "session_start_s": session,
        "job_s": job,
        "rows_out": manifest.get("rows_out"),
        "timings": timings,
        "manifest": manifest,
    }


def batchinfer_command(python: str = sys.executable) -> list[str]:
    """How to run the batchinfer CLI as a user would, or NotAvailable."""
    exe = Path(python).parent / "batchinfer"
    if exe.exists():
        return [str(exe)]
    probe = subprocess.run(
        [python, "-c", "from batchinfer.cli import main"], cwd=REPO, capture_output=True, text=True
    )
    if probe.returncode == 0:
        return [python, "-c", "import sys; from batchinfer.cli import main; sys.exit(main())"]
    reason = (probe.stderr.strip().splitlines() or ["?"])[-1]
    raise NotAvailable(f"not available: no {exe} and batchinfer.cli does not import ({reason})")


def plan_batchinfer(ctx: Context, extra_config: dict | None = None, tag: str = "batchinfer") -> Invocation:
    """``batchinfer run <config.yaml> --json`` on the same data; extra_config is merged into the YAML."""
    command = batchinfer_command(ctx.python)
    out = ctx.out_dir(tag)
    config = batchinfer_config.write_job_config(
        ctx.outputs_dir / f"{tag}-{ctx.model}.yaml",
        data_dir=ctx.inputs.data_dir,
        model_path=ctx.model_path,
        out_dir=out,
        extra=extra_config,
    )
    return Invocation(
        [*command, "run", str(config), "--json"], out, parse=lambda s: batchinfer_times(last_json_object(s))
    )


def plan_checks_overhead(ctx: Context) -> Invocation:
    """Hook (lead): cost of the data-quality and drift checks.

    Intended shape: ``plan_batchinfer(ctx, extra_config={"checks": {...}}, tag="batchinfer_checks")``
    with the input/output GX suites and a drift reference enabled, reported as the job_s
    difference from the plain ``batchinfer`` row (same model, same data). The checks section's
    schema belongs to the config module, so it is left to whoever lands it.
    """
    raise NotImplementedError("checks_overhead: hook only, see plan_checks_overhead in benchmarks/run.py")


def plan_worker_rss(ctx: Context) -> Invocation:
    """Hook (lead): Python worker RSS over a many-partition run.

    Intended shape: regenerate inputs with many files (``datagen.prepare(..., partitions=64)``),
    run ``plan_batchinfer`` (or ``plan_map_in_pandas``) and read the monitor's
    ``peak_single_python_worker_rss``, ``max_python_workers`` and ``timeline`` (per-poll RSS of
    the workers; ``--keep-timeline`` stores it) to see whether worker memory grows per task.
    """
    raise NotImplementedError("worker_rss: hook only, see plan_worker_rss in benchmarks/run.py")


SCENARIOS: dict[str, Callable[[Context], Invocation]] = {
    "floor": plan_floor,
    "batchinfer": plan_batchinfer,
    "predict_batch_udf": plan_predict_batch_udf,
    "map_in_pandas": plan_map_in_pandas,
    "per_row_udf": plan_per_row_udf,
    "checks_overhead": plan_checks_overhead,
    "worker_rss": plan_worker_rss,
}
DEFAULT_SCENARIOS = ("batchinfer", "predict_batch_udf", "map_in_pandas", "per_row_udf")


def child_env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    # Spark's Python workers import scenarios/ortcache.py by name.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCENARIO_DIR), env.get("PYTHONPATH")]))
    return env


def run_scenario(name: str, ctx: Context, log_dir: Path, timeout_s: float, keep_timeline: bool) -> dict:
    row: dict = {"scenario": name, "model": ctx.model, "rows": ctx.inputs.rows}
    try:
        inv = SCENARIOS[name](ctx)
    except NotAvailable as exc:
        return {**row, "status": str(exc)}
    except NotImplementedError as exc:
        return {**row, "status": "not implemented", "detail": str(exc)}
    shutil.rmtree(inv.out_dir, ignore_errors=True)
    log = log_dir / f"{name}-{ctx.model}.log"
    load_before = os.getloadavg()
    proc = run_monitored(inv.argv, env=child_env(), cwd=REPO, log_path=log, timeout_s=timeout_s)
    row.update(
        argv=inv.argv,
        log=str(log),
        wall_s=proc.wall_s,
        peak_rss=proc.peak_rss,
        peak_jvm_rss=proc.peak_jvm_rss,
        peak_python_workers_rss=proc.peak_python_workers_rss,
        peak_single_python_worker_rss=proc.peak_single_python_worker_rss,
        max_python_workers=proc.max_python_workers,
        loadavg_before=load_before,
        loadavg_after=os.getloadavg(),
    )
    if keep_timeline:
        row["timeline"] = proc.timeline
    if proc.timed_out or proc.returncode != 0:
        status = "timed out" if proc.timed_out else f"failed (exit {proc.returncode}), see {log}"
        return {**row, "status": status}
    try:
        result = inv.parse(proc.stdout)
    except ValueError as exc:
        return {**row, "status": f"failed: {exc}, see {log}"}
    row.update(status="ok", result=result)
    row["session_start_s"] = result.get("session_start_s")
    row["job_s"] = result.get("job_s")
    if result.get("extrapolated"):
        # Whole-process time at full size: what ran, minus the sample jobs, plus the extrapolated job.
        row["extrapolated"] = True
        row["measured_wall_s"] = proc.wall_s
        row["wall_s"] = proc.wall_s - result["measured_job_s"] + result["job_s"]
    return row


def check_outputs(rows: list[dict], ctx_by_model: dict[str, Context], invocations_subset: set[str]) -> None:
    floors: dict[str, verify.Scored] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        ctx = ctx_by_model[row["model"]]
        if row["model"] not in floors:
            floors[row["model"]] = verify.load_scored(ctx.out_dir("floor"))
        if row["scenario"] == "floor":
            row["check"] = {"ok": True, "summary": "reference"}
            continue
        try:
            out = verify.load_scored(ctx.out_dir(row["scenario"]))
        except Exception as exc:  # a missing/odd output is a failed check, not a crashed harness
            row["check"] = {"ok": False, "summary": f"FAIL cannot read output: {exc}"}
            continue
        subset = row["scenario"] in invocations_subset
        row["check"] = verify.check_against_floor(out, floors[row["model"]], row["model"], subset).to_dict()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--scenarios",
        default=",".join(DEFAULT_SCENARIOS),
        help=f"comma list from {', '.join(SCENARIOS)} (the floor always runs)",
    )
    ap.add_argument("--models", default="fp32,int8", help=f"comma list from {', '.join(datagen.MODEL_KINDS)}")
    ap.add_argument("--out", type=Path, default=HERE / "results", help="results directory")
    ap.add_argument("--workdir", type=Path, default=None, help="data, models, outputs, logs")
    ap.add_argument("--sample-rows", type=int, default=40_000, help="per-row UDF sample size")
    ap.add_argument("--per-row-all-models", action="store_true", help="per-row UDF for every model")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per scenario process")
    ap.add_argument("--keep-timeline", action="store_true", help="store per-poll RSS in the JSON")
    args = ap.parse_args(argv)

    scenarios = [s for s in args.scenarios.split(",") if s and s != "floor"]
    models = [m for m in args.models.split(",") if m]
    unknown = [s for s in scenarios if s not in SCENARIOS] + [
        m for m in models if m not in datagen.MODEL_KINDS
    ]
    if unknown:
        ap.error(f"unknown scenario/model: {', '.join(unknown)}")

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir or HERE / ".data" / f"r{args.rows}_p{args.partitions}_s{args.seed}"
    inputs = datagen.prepare(
        workdir, args.rows, args.partitions, args.seed, args.sample_rows, models=tuple(models)
    )
    log_dir = workdir / "logs" / stamp
    outputs_dir = workdir / "outputs"
    outputs_dir.mkdir(parents=True, exist_ok=True)

    rows: list[dict] = []
    ctx_by_model = {m: Context(inputs, m, outputs_dir) for m in models}
    for i, model in enumerate(models):
        for name in ["floor", *scenarios]:
            if name == "per_row_udf" and i > 0 and not args.per_row_all_models:
                continue
            print(f"[{dt.datetime.now():%H:%M:%S}] {name} [{model}] ...", flush=True)
            row = run_scenario(name, ctx_by_model[model], log_dir, args.timeout, args.keep_timeline)
            print(
                f"    {row['status']}" + (f"  wall {row['wall_s']:.1f} s" if "wall_s" in row else ""),
                flush=True,
            )
            rows.append(row)
    check_outputs(rows, ctx_by_model, {"per_row_udf"})

    import numpy
    import onnxruntime
    import pyarrow
    import pyspark

    payload = {
        "timestamp": stamp,
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": args.rows,
        "partitions": args.partitions,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_end": os.getloadavg(),
        },
        "versions": {
            "pyspark": pyspark.__version__,
            "onnxruntime": onnxruntime.__version__,
            "pyarrow": pyarrow.__version__,
            "numpy": numpy.__version__,
        },
        "check_rules": {
            "fp32/int8s": f"same ids, max|dscore| <= {verify.FP32_MAX_ABS_DIFF}, labels equal",
            "int8 (dynamic)": f"same ids, label agreement >= {verify.INT8_MIN_LABEL_AGREEMENT:.0%}, "
            f"mean|dscore| <= {verify.INT8_MAX_MEAN_ABS_DIFF}",
        },
        "runs": rows,
    }
    title = report.chart_title(payload)
    json_path = report.write_json(args.out / f"{stamp}.json", payload)
    png_path = report.write_chart(args.out / f"{stamp}.png", rows, title)
    print()
    print(title)
    print(report.format_table(rows))
    print(f"\nresults: {json_path}" + (f"\nchart:   {png_path}" if png_path else ""))
    failed = [r for r in rows if r.get("status") == "ok" and not r.get("check", {}).get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
