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
    compare: bool = True  # False: its output is not on the benchmark data's ids (worker_rss)


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
SESSION_TIMING_KEYS = ("spark_session", "session_start", "spark_start", "engine_start", "session", "spark")


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


def plan_batchinfer_local(ctx: Context) -> Invocation:
    """batchinfer on the embedded engine (runtime.engine: local): worker processes, no JVM."""
    return plan_batchinfer(ctx, {"runtime": {"engine": "local"}}, tag="batchinfer_local")


def plan_batchinfer_spark(ctx: Context) -> Invocation:
    """batchinfer forced onto Spark's Parquet reader (features cross JVM → Python as Arrow)."""
    return plan_batchinfer(ctx, {"runtime": {"reader": "spark"}}, tag="batchinfer_spark")


def plan_batchinfer_connect(ctx: Context) -> Invocation:
    """batchinfer on Spark Connect (``spark.remote: local[*]``: pyspark's local Connect server).

    The same tasks as ``batchinfer``; the model goes as a session artifact instead of a broadcast,
    the task results come back through Connect's Arrow stream. Compare with the ``batchinfer`` row.
    """
    return plan_batchinfer(ctx, {"spark": {"remote": "local[*]"}}, tag="batchinfer_connect")


# About ten expectations, as a team would write for this table, plus drift on every feature and
# the score against a reference profile of the same data.
CHECKS = {
    "input": [
        {"expect": "row_count_between", "min": 1},
        {"expect": "not_null", "column": "id"},
        {"expect": "not_null", "column": "f0"},
        {"expect": "not_null", "column": "f1"},
        {"expect": "between", "column": "f0", "min": -10, "max": 10},
        {"expect": "between", "column": "f1", "min": -10, "max": 10},
        {"expect": "between", "column": "f2", "min": -10, "max": 10, "severity": "warn"},
    ],
    "output": [
        {"expect": "not_null", "column": "score"},
        {"expect": "between", "column": "score", "min": 0, "max": 1},
        {"expect": "in_set", "column": "label", "values": [0, 1]},
    ],
}


def _reference_profile(ctx: Context) -> Path:
    """Profile the benchmark data once per model (setup, not timed): ``batchinfer profile``."""
    path = ctx.inputs.workdir / f"profile-{ctx.model}.json"
    if path.exists():
        return path
    config = batchinfer_config.write_job_config(
        ctx.outputs_dir / f"profile-{ctx.model}.yaml",
        data_dir=ctx.inputs.data_dir,
        model_path=ctx.model_path,
        out_dir=ctx.out_dir("profile"),
    )
    command = batchinfer_command(ctx.python)
    subprocess.run(
        [*command, "-q", "profile", str(config), "--reference", str(ctx.inputs.data_dir), "--out", str(path)],
        check=True,
        cwd=REPO,
        env=child_env(),
        capture_output=True,
    )
    return path


def plan_checks_overhead(ctx: Context) -> Invocation:
    """batchinfer with ~10 GX expectations and drift on all 64 features + the score.

    Compare its ``job_s`` with the plain ``batchinfer`` row of the same model: the difference is
    what the checks cost. They are computed inside the scoring tasks (the single pass,
    ``batchinfer/checks/single_pass.py``): the manifest's ``checks.in_task_seconds`` is the time
    the tasks spent on them, ``timings.checks_plan`` / ``timings.checks`` the driver's share.
    """
    profile = _reference_profile(ctx)
    extra = {"checks": CHECKS, "drift": {"reference": str(profile)}}
    return plan_batchinfer(ctx, extra, tag="checks_overhead")


def plan_checks_overhead_local(ctx: Context) -> Invocation:
    """The same checks as ``checks_overhead`` on the embedded engine: compare with ``batchinfer_local``."""
    profile = _reference_profile(ctx)
    extra = {"checks": CHECKS, "drift": {"reference": str(profile)}, "runtime": {"engine": "local"}}
    return plan_batchinfer(ctx, extra, tag="checks_overhead_local")


def plan_worker_rss(ctx: Context) -> Invocation:
    """batchinfer over the same rows split into many small files (64 row groups / tasks).

    With ``--keep-timeline`` the per-poll Python-worker RSS is stored; the report compares the
    workers' RSS early and late in the run: it should stay flat (bounded Arrow batches, one
    cached session per worker), not grow with the number of tasks.
    """
    many = datagen.prepare(
        ctx.inputs.workdir.parent / f"{ctx.inputs.workdir.name}_many",
        ctx.inputs.rows,
        64,
        ctx.inputs.seed,
        1000,
        models=(),
    )
    out = ctx.out_dir("worker_rss")
    config = batchinfer_config.write_job_config(
        ctx.outputs_dir / f"worker_rss-{ctx.model}.yaml",
        data_dir=many.data_dir,
        model_path=ctx.model_path,
        out_dir=out,
        extra={"spark": {"conf": {"spark.sql.files.maxPartitionBytes": "4m"}}},
    )
    return Invocation(
        [*batchinfer_command(ctx.python), "run", str(config), "--json"],
        out,
        parse=lambda s: batchinfer_times(last_json_object(s)),
        compare=False,
    )


SCENARIOS: dict[str, Callable[[Context], Invocation]] = {
    "floor": plan_floor,
    "batchinfer": plan_batchinfer,
    "predict_batch_udf": plan_predict_batch_udf,
    "map_in_pandas": plan_map_in_pandas,
    "per_row_udf": plan_per_row_udf,
    "batchinfer_spark": plan_batchinfer_spark,
    "batchinfer_local": plan_batchinfer_local,
    "batchinfer_connect": plan_batchinfer_connect,
    "checks_overhead": plan_checks_overhead,
    "checks_overhead_local": plan_checks_overhead_local,
    "worker_rss": plan_worker_rss,
}
DEFAULT_SCENARIOS = (
    "batchinfer",
    "batchinfer_spark",
    "batchinfer_local",
    "batchinfer_connect",
    "predict_batch_udf",
    "map_in_pandas",
    "per_row_udf",
    "checks_overhead",
    "checks_overhead_local",
    "worker_rss",
)


def child_env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYSPARK_PYTHON"] = sys.executable
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    # Spark's Python workers import scenarios/ortcache.py by name.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SCENARIO_DIR), env.get("PYTHONPATH")]))
    return env


def cpu_times() -> list[int] | None:
    """The machine's CPU counters (``/proc/stat`` line ``cpu``, in jiffies), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            return [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None


def steal_fraction(before: list[int] | None, after: list[int] | None) -> float | None:
    """Share of the CPU time the hypervisor gave to other guests while a scenario ran (``steal``,
    the 8th counter). On a shared VM this, not the load average, is what makes runs slow."""
    if not before or not after or len(before) < 8 or len(after) < 8:
        return None
    total = sum(after[:8]) - sum(before[:8])
    return round((after[7] - before[7]) / total, 3) if total > 0 else None


def busy_cpu_s(before: list[int] | None, after: list[int] | None) -> float | None:
    """CPU seconds the machine spent busy while a scenario ran (user, nice, system, irq, softirq;
    all processes: on an otherwise idle machine, the scenario's own). Steadier than wall time for
    telling what a feature costs: it does not depend on how the work was spread over the cores."""
    if not before or not after or len(before) < 7 or len(after) < 7:
        return None
    ticks = sum(after[i] - before[i] for i in (0, 1, 2, 5, 6))
    return round(ticks / os.sysconf("SC_CLK_TCK"), 2)


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
    cpu_before = cpu_times()
    proc = run_monitored(inv.argv, env=child_env(), cwd=REPO, log_path=log, timeout_s=timeout_s)
    cpu_after = cpu_times()
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
        steal=steal_fraction(cpu_before, cpu_after),
        cpu_s=busy_cpu_s(cpu_before, cpu_after),
    )
    if keep_timeline:
        row["timeline"] = proc.timeline
    if name == "worker_rss":
        row.update(worker_rss_trend(proc.timeline))
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


def worker_rss_trend(timeline: list) -> dict:
    """Python-worker RSS (sum over workers) in the second quarter vs the last quarter of the run
    where workers were alive: flat memory means no growth per task."""
    alive = [(t, w) for t, _total, w, n in timeline if n > 0]
    if len(alive) < 8:
        return {}
    q = len(alive) // 4
    early = max(w for _, w in alive[q : 2 * q])
    late = max(w for _, w in alive[-q:])
    return {"worker_rss_q2_mb": round(early / 2**20), "worker_rss_q4_mb": round(late / 2**20)}


def targets_summary(rows: list[dict]) -> list[dict]:
    """The issue's targets, per model, from the rows of this run (None where a row is missing)."""
    out = []
    ok = {(r["scenario"], r["model"]): r for r in rows if r.get("status") == "ok"}
    for model in dict.fromkeys(r["model"] for r in rows):
        bi, pbu, floor = (ok.get((n, model)) for n in ("batchinfer", "predict_batch_udf", "floor"))
        chk, rss = ok.get(("checks_overhead", model)), ok.get(("worker_rss", model))
        local = ok.get(("batchinfer_local", model))
        chk_local = ok.get(("checks_overhead_local", model))

        def share(checked, plain):
            if checked and plain and plain.get("job_s"):
                return round((checked["job_s"] - plain["job_s"]) / plain["job_s"], 3)
            return None

        def ratio(a, b, key):
            return round(a[key] / b[key], 2) if a and b and a.get(key) and b.get(key) else None

        out.append(
            {
                "model": model,
                "wall_vs_predict_batch_udf": ratio(bi, pbu, "wall_s"),
                "wall_vs_predict_batch_udf_target": 0.6,
                "job_vs_floor_job": ratio(bi, floor, "job_s"),
                "job_vs_floor_job_target": 2.0,
                "local_wall_vs_floor_wall": ratio(local, floor, "wall_s"),
                "local_wall_vs_floor_wall_target": 1.3,
                "checks_overhead_share": share(chk, bi),
                "checks_overhead_local_share": share(chk_local, local),
                "checks_overhead_target": 0.1,
                "checks_extra_cpu_s": (
                    round(chk["cpu_s"] - bi["cpu_s"], 2)
                    if chk and bi and chk.get("cpu_s") and bi.get("cpu_s")
                    else None
                ),
                "peak_rss_mb": round(bi["peak_rss"] / 2**20) if bi else None,
                "peak_rss_target_mb": 3072,
                "worker_rss_q2_mb": rss.get("worker_rss_q2_mb") if rss else None,
                "worker_rss_q4_mb": rss.get("worker_rss_q4_mb") if rss else None,
            }
        )
    return out


def format_targets(summary: list[dict]) -> str:
    lines = ["targets (measured in this run):"]
    for t in summary:
        lines.append(
            f"  [{t['model']}] wall/predict_batch_udf {t['wall_vs_predict_batch_udf']} (target <= 0.6); "
            f"job/floor job {t['job_vs_floor_job']} (target <= 2); "
            f"local wall/floor wall {t['local_wall_vs_floor_wall']} (target <= 1.3); "
            f"checks overhead spark {t['checks_overhead_share']} / local {t['checks_overhead_local_share']} "
            f"(target <= 0.1; {t['checks_extra_cpu_s']} CPU s more); "
            f"peak RSS {t['peak_rss_mb']} MB (target <= 3072); "
            f"worker RSS q2 {t['worker_rss_q2_mb']} MB -> q4 {t['worker_rss_q4_mb']} MB"
        )
    return "\n".join(lines)


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
        if row["scenario"] == "worker_rss":
            row["check"] = {"ok": True, "summary": "not compared (same size, different files)"}
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
        "targets": targets_summary(rows),
    }
    title = report.chart_title(payload)
    json_path = report.write_json(args.out / f"{stamp}.json", payload)
    png_path = report.write_chart(args.out / f"{stamp}.png", rows, title)
    print()
    print(title)
    print(report.format_table(rows))
    print(format_targets(payload["targets"]))
    print(f"\nresults: {json_path}" + (f"\nchart:   {png_path}" if png_path else ""))
    failed = [r for r in rows if r.get("status") == "ok" and not r.get("check", {}).get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
