"""Memory-aware batches (``runtime.batch_rows: auto``): rows per onnxruntime call sized to memory.

10,000 rows per call is nothing for an MLP and far too much for a model with big activations
(a transformer-style model can need megabytes per row). With ``auto`` each worker process
measures, on its first rows, how much memory one more row costs, and sizes its calls to
``runtime.worker_memory``:

1. **Probe.** Two small calls (:data:`PROBE_ROWS` rows, then a larger one chosen so it uses at
   most a quarter of the budget) run with onnxruntime's arena shrinkage on, so each call's peak
   is its own. The peak is the process's peak resident set (``VmHWM``, reset before each call
   through ``/proc/self/clear_refs``: onnxruntime's arena, numpy and everything else the call
   touched) above the RSS the worker had before the first probe (its *baseline*: Python,
   pyarrow, the session, the input batch).
2. **Choose.** bytes/row and fixed bytes come from the two probes (:func:`estimate`);
   ``rows = (HEADROOM × worker_memory − baseline − fixed) / bytes_per_row``, clamped to
   ``[min_rows, max_rows]`` (:func:`choose_rows`). The first call at that size is measured once
   more and the size only ever shrinks if that call came out larger than the estimate.
3. **Shrink and retry.** A call that fails to allocate (``MemoryError``, onnxruntime's
   "Failed to allocate memory", CUDA out of memory) is retried at half the rows
   (:func:`halve`) instead of failing the task and, on a cluster, the executor; the size never
   grows back above a size that failed. One row that does not fit raises
   :class:`WorkerMemoryError`.

The estimate is kept per worker process and model digest (:func:`worker_sizer`), so later tasks
of the same worker reuse it. What each worker chose is in the manifest (``workers.*.batch_rows``
and ``workers.*.batch_memory``). Everything but :class:`BatchSizer`'s calls into a session is a
pure function, unit-tested without a model.

>>> est = estimate((64, 20 * MiB), (256, 68 * MiB))
>>> round(est.bytes_per_row / KiB), round(est.fixed_bytes / MiB)
(256, 4)
>>> choose_rows(est, usable_bytes=1 * GiB, min_rows=1, max_rows=10_000)
4080
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from batchinfer.errors import DeviceError

KiB, MiB, GiB = 1024, 1024**2, 1024**3
#: The rows of the first probe: small enough for any model a worker can hold at all.
PROBE_ROWS = 64
#: The second probe is at most this many times the first (and uses ≤ 1/4 of the usable memory).
PROBE_GROWTH = 16
#: Share of ``worker_memory`` the chosen batches may fill (the rest: estimate error, Arrow
#: buffers, output arrays, the writer).
HEADROOM = 0.8
#: Rows per call when the memory allows anything: onnxruntime's CPU throughput drops above ~20k
#: rows per call (cache effects), and 10,000 was the fixed default.
DEFAULT_MAX_ROWS = 10_000
MIN_ROWS = 1
#: Smallest worker_memory accepted in a config.
MIN_WORKER_MEMORY = 64 * MiB
#: With no Spark executor to divide (the embedded engine), the workers share this part of the machine.
MACHINE_SHARE = 0.5

_UNITS = {"": 1, "k": KiB, "m": MiB, "g": GiB, "t": 1024**4}
_MEMORY_TEXT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
# How onnxruntime (CPU arena, CUDA, cuBLAS/cuDNN) and the C++ runtime report a failed allocation.
_ALLOCATION_FAILURE = re.compile(
    r"failed to allocate memory|bad[_ ]alloc|bad allocation|out of memory|cannot allocate memory"
    r"|CUBLAS_STATUS_ALLOC_FAILED|CUDNN_STATUS_ALLOC_FAILED|unable to allocate",
    re.IGNORECASE,
)


class WorkerMemoryError(DeviceError, MemoryError):
    """Even the smallest batch does not fit in the worker's memory."""


# ------------------------------------------------------------------------------ memory values
def parse_memory(value, *, bare_unit: int = 1) -> int:
    """Bytes from ``"1g"``, ``"512m"``, ``"1.5GiB"``, ``"2048 MB"`` (binary multiples, as the JVM).

    A bare number is ``bare_unit`` bytes each: 1 for ``runtime.worker_memory``, MiB for Spark's
    memory settings (``spark.executor.memory: 4096`` means 4096 MiB).

    >>> parse_memory("1g"), parse_memory("512m"), parse_memory("1.5GiB"), parse_memory(2**30)
    (1073741824, 536870912, 1610612736, 1073741824)
    >>> parse_memory("4096", bare_unit=MiB) == 4 * GiB
    True
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a memory size such as 4g or 512m, got {value!r}")
    if isinstance(value, int):
        number, unit = float(value), ""
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"expected a memory size such as 4g or 512m, got {value!r}")
        number, unit = value, ""
    elif isinstance(value, str):
        match = _MEMORY_TEXT.match(value)
        if not match:
            raise ValueError(f"expected a memory size such as 4g or 512m, got {value!r}")
        number, unit = float(match.group(1)), match.group(2).lower()
    else:
        raise ValueError(f"expected a memory size such as 4g or 512m, got {value!r}")
    scale = _UNITS[unit] if unit else bare_unit
    return int(number * scale)


def format_memory(n: float) -> str:
    """``1.5 GiB``, ``512 MiB``, ``12 KiB`` (for messages and the manifest).

    >>> format_memory(1.5 * GiB), format_memory(512 * MiB), format_memory(100)
    ('1.5 GiB', '512 MiB', '100 B')
    """
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def _local_cores(master: str, cpu_count: int) -> int | None:
    """Task slots of ``local``, ``local[4]``, ``local[*]``, ``local[4,2]`` (retries); None otherwise."""
    match = re.fullmatch(r"local(?:\[(\*|\d+)(?:,\s*\d+)?\])?", master.strip())
    if not match:
        return None
    cores = match.group(1)
    if cores is None:
        return 1
    return cpu_count if cores == "*" else max(1, int(cores))


def default_worker_memory(
    conf: dict,
    master: str | None,
    *,
    engine: str = "spark",
    cpu_count: int | None = None,
    total_memory: int | None = None,
) -> tuple[int, str]:
    """``runtime.worker_memory`` when the config does not set it: (bytes, where it comes from).

    One scoring worker runs per task slot, so an executor's memory is divided by its slots:

    - ``spark.executor.pyspark.memory`` (Spark's own limit on Python workers) when set;
    - else ``local[N]``: ``spark.driver.memory`` (default 1g) / N cores;
    - else ``local-cluster[n,c,m]`` and clusters: ``spark.executor.memory`` (default 1g) /
      (``spark.executor.cores`` / ``spark.task.cpus``);
    - ``engine="local"`` (no Spark: the embedded engine's worker pool): :data:`MACHINE_SHARE` of
      the machine's memory / its cores.

    >>> default_worker_memory({"spark.driver.memory": "2g"}, "local[2]")
    (1073741824, 'spark.driver.memory 2g / 2 task slots, local[2]')
    >>> default_worker_memory({"spark.executor.memory": "8g", "spark.executor.cores": "4"}, "yarn")
    (2147483648, 'spark.executor.memory 8g / 4 task slots, per executor')
    """
    cpu_count = cpu_count or os.cpu_count() or 1
    conf = {k: str(v) for k, v in (conf or {}).items() if v is not None}
    master = (master or conf.get("spark.master") or "").strip() if engine != "local" else ""
    task_cpus = max(1, int(float(conf.get("spark.task.cpus", "1"))))
    local = _local_cores(master, cpu_count) if master else None
    cluster = re.fullmatch(r"local-cluster\[\s*\d+\s*,\s*(\d+)\s*,\s*\d+\s*\]", master)
    if local is not None:
        slots, where = max(1, local // task_cpus), master
    elif cluster:
        slots, where = max(1, int(cluster.group(1)) // task_cpus), "per executor"
    elif engine != "local":  # a cluster (or spark-submit's master, not known before Spark starts)
        cores = int(float(conf.get("spark.executor.cores", "1")))
        slots, where = max(1, cores // task_cpus), "per executor"
    else:
        total = total_memory or _machine_memory()
        share = int(total * MACHINE_SHARE / cpu_count)
        return share, f"{MACHINE_SHARE:.0%} of this machine's {format_memory(total)} / {cpu_count} cores"
    if conf.get("spark.executor.pyspark.memory"):
        key = "spark.executor.pyspark.memory"
    elif local is not None:
        key = "spark.driver.memory"
    else:
        key = "spark.executor.memory"
    text = conf.get(key, "1g")
    total = parse_memory(text, bare_unit=MiB)
    return total // slots, f"{key} {text} / {slots} task slot{'s' if slots != 1 else ''}, {where}"


def _machine_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 4 * GiB


SPARK_MEMORY_KEYS = (
    "spark.master",
    "spark.driver.memory",
    "spark.executor.memory",
    "spark.executor.cores",
    "spark.executor.pyspark.memory",
    "spark.task.cpus",
)


def session_conf(session) -> dict:
    """The memory settings a running SparkSession (classic or Connect) really has."""
    out = {}
    for key in SPARK_MEMORY_KEYS:
        try:
            value = session.conf.get(key, None)
        except Exception:  # a key the server refuses to show: keep the config's value
            value = None
        if value is not None:
            out[key] = value
    return out


@dataclass(frozen=True)
class BatchPolicy:
    """What a run does about batch sizes: the driver's decision, carried to every worker."""

    auto: bool
    max_rows: int
    worker_memory: int | None = None  # bytes; None: fixed batches
    source: str = ""  # where worker_memory comes from

    def describe(self) -> str:
        """One line for ``batchinfer validate`` and the manifest."""
        if not self.auto:
            return f"batches of {self.max_rows:,} rows (runtime.batch_rows)"
        return (
            f"batch_rows auto: each worker measures its model's memory per row on its first rows and "
            f"sizes batches (at most {self.max_rows:,} rows) to {format_memory(self.worker_memory or 0)} "
            f"per worker ({self.source})"
        )

    def to_dict(self) -> dict:
        return {
            "mode": "auto" if self.auto else "fixed",
            "max_rows": self.max_rows,
            "worker_memory_bytes": self.worker_memory,
            "worker_memory_source": self.source or None,
        }


def batch_policy(runtime, spark_conf: dict, master: str | None, *, engine: str = "spark") -> BatchPolicy:
    """The run's :class:`BatchPolicy` from ``runtime`` (a RuntimeConfig) and the Spark settings."""
    if runtime.batch_rows != "auto":
        return BatchPolicy(auto=False, max_rows=int(runtime.batch_rows))
    if runtime.worker_memory not in (None, "auto"):
        budget, source = parse_memory(runtime.worker_memory), "runtime.worker_memory"
    else:
        budget, source = default_worker_memory(spark_conf, master, engine=engine)
    return BatchPolicy(auto=True, max_rows=DEFAULT_MAX_ROWS, worker_memory=budget, source=source)


def policy_for_session(plan, session, *, engine: str = "spark") -> BatchPolicy:
    """Driver, once the engine runs: the policy from its real memory settings (the plan only saw
    the config's); ``plan.spec`` is updated so the workers get it. ``session`` is the SparkSession
    (classic or Connect), None for the embedded engine. Returns the policy."""
    from dataclasses import replace

    if not plan.spec.batch_auto:  # a fixed size, or one a model card pinned
        return plan.batch_policy
    if session is None or engine == "local":
        policy = batch_policy(plan.config.runtime, {}, None, engine="local")
    else:
        conf = session_conf(session)
        policy = batch_policy(plan.config.runtime, conf, conf.get("spark.master"))
    plan.spec = replace(plan.spec, batch_rows=policy.max_rows, worker_memory=policy.worker_memory)
    plan.batching = policy
    return policy


def effective_budget(policy_bytes: int, environ=None) -> tuple[int, str | None]:
    """The worker's budget: the policy's, or Spark's own limit on this Python worker when lower.

    With ``spark.executor.pyspark.memory`` set, Spark gives each Python worker
    ``PYSPARK_EXECUTOR_MEMORY_MB`` and enforces it as an address-space limit.

    >>> effective_budget(2 * GiB, {"PYSPARK_EXECUTOR_MEMORY_MB": "512"})
    (536870912, 'PYSPARK_EXECUTOR_MEMORY_MB')
    >>> effective_budget(2 * GiB, {})
    (2147483648, None)
    """
    environ = os.environ if environ is None else environ
    limit = environ.get("PYSPARK_EXECUTOR_MEMORY_MB")
    try:
        limit_bytes = int(limit) * MiB if limit else None
    except ValueError:
        limit_bytes = None
    if limit_bytes is not None and 0 < limit_bytes < policy_bytes:
        return limit_bytes, "PYSPARK_EXECUTOR_MEMORY_MB"
    return policy_bytes, None


# ------------------------------------------------------------------------------- the arithmetic
@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of one call ≈ ``fixed_bytes + rows × bytes_per_row`` (above the baseline)."""

    bytes_per_row: float
    fixed_bytes: float

    def peak(self, rows: int) -> float:
        return self.fixed_bytes + rows * self.bytes_per_row


def estimate(small: tuple[int, int], large: tuple[int, int]) -> MemoryEstimate:
    """The line through two probes ``(rows, peak bytes above the baseline)``.

    A flat or falling line (the model's memory does not grow measurably with rows, or page
    granularity noise) gives ``bytes_per_row = 0``: any batch size fits.

    >>> estimate((64, 1 * MiB), (1024, 1 * MiB))
    MemoryEstimate(bytes_per_row=0.0, fixed_bytes=1048576.0)
    """
    (n1, p1), (n2, p2) = sorted([small, large])
    if n1 <= 0 or n2 <= n1:
        raise ValueError(f"probes need two different positive row counts, got {n1} and {n2}")
    slope = max(0.0, (p2 - p1) / (n2 - n1))
    fixed = max(0.0, p1 - slope * n1)
    return MemoryEstimate(bytes_per_row=slope, fixed_bytes=fixed)


def choose_rows(est: MemoryEstimate, *, usable_bytes: float, min_rows: int, max_rows: int) -> int:
    """Most rows whose estimated peak fits ``usable_bytes``, clamped to ``[min_rows, max_rows]``.

    >>> choose_rows(MemoryEstimate(256 * KiB, 0), usable_bytes=GiB, min_rows=1, max_rows=10_000)
    4096
    >>> choose_rows(MemoryEstimate(0, 0), usable_bytes=GiB, min_rows=1, max_rows=10_000)
    10000
    >>> choose_rows(MemoryEstimate(GiB, 0), usable_bytes=GiB / 2, min_rows=1, max_rows=10_000)
    1
    """
    if min_rows < 1 or max_rows < min_rows:
        raise ValueError(f"need 1 <= min_rows <= max_rows, got {min_rows} and {max_rows}")
    if est.bytes_per_row <= 0:
        return max_rows
    rows = math.floor((usable_bytes - est.fixed_bytes) / est.bytes_per_row)
    return max(min_rows, min(max_rows, rows))


def second_probe_rows(first_rows: int, first_peak: float, *, usable_bytes: float, max_rows: int) -> int:
    """The second probe: larger than the first, but using at most a quarter of the usable memory.

    The first probe's peak per row (fixed bytes included) over-estimates the cost of a row, so
    the second probe stays safe even for a model that needs megabytes per row.

    >>> second_probe_rows(64, 64 * MiB, usable_bytes=GiB, max_rows=10_000)  # 1 MiB/row
    256
    >>> second_probe_rows(64, 64 * KiB, usable_bytes=GiB, max_rows=10_000)  # cheap rows
    1024
    >>> second_probe_rows(64, 64 * MiB, usable_bytes=100 * MiB, max_rows=10_000)  # tight: go down
    16
    """
    per_row = max(first_peak, 1.0) / max(first_rows, 1)
    quarter = int(usable_bytes / 4 / per_row)
    rows = min(quarter, PROBE_GROWTH * first_rows, max_rows)
    if rows >= 2 * first_rows:
        return rows
    return max(1, first_rows // 4)  # no room to grow: the second probe is the smaller one


def halve(rows: int, min_rows: int = MIN_ROWS) -> int | None:
    """The next size after a failed allocation of ``rows``; None when ``rows`` is the smallest.

    >>> halve(1000), halve(3), halve(1)
    (500, 1, None)
    """
    if rows <= min_rows:
        return None
    return max(min_rows, rows // 2)


def is_allocation_failure(exc: BaseException) -> bool:
    """A failed allocation (retry smaller), as opposed to any other error (raise it)."""
    if isinstance(exc, MemoryError):
        return True
    return bool(_ALLOCATION_FAILURE.search(str(exc)))


# ------------------------------------------------------------------------------- measuring
class MemoryMeter:
    """Resident memory of this process: current RSS and the peak since the last reset (Linux)."""

    def __init__(self, proc: str = "/proc/self") -> None:
        self.proc = proc
        self.resettable = self._can_reset()

    def _status(self, key: str) -> int | None:
        try:
            with open(f"{self.proc}/status") as fh:
                for line in fh:
                    if line.startswith(key + ":"):
                        return int(line.split()[1]) * KiB
        except OSError:
            return None
        return None

    def _can_reset(self) -> bool:
        try:
            with open(f"{self.proc}/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM (the peak RSS) to the current RSS; Linux >= 4.0
            return self._status("VmHWM") is not None
        except OSError:
            return False

    def rss(self) -> int:
        value = self._status("VmRSS")
        if value is not None:
            return value
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB  # pragma: no cover

    def reset_peak(self) -> None:
        if self.resettable:
            with open(f"{self.proc}/clear_refs", "w") as fh:
                fh.write("5")

    def peak(self) -> int:
        value = self._status("VmHWM")
        if value is not None:
            return value
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KiB  # pragma: no cover


def _shrink_options():
    """onnxruntime RunOptions that hand the CPU arena's free memory back after the call."""
    try:
        import onnxruntime as ort

        options = ort.RunOptions()
        options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        return options
    except Exception:  # pragma: no cover - an onnxruntime without arena shrinkage
        return None


@dataclass
class BatchSizer:
    """One worker's batch size for one model: probes, chooses, shrinks (see the module docstring).

    ``budget`` None: no measuring (e.g. on a GPU, whose memory is not this process's RSS); the
    size starts at ``max_rows`` and only the shrink-and-retry applies.
    """

    budget: int | None
    max_rows: int = DEFAULT_MAX_ROWS
    min_rows: int = MIN_ROWS
    meter: MemoryMeter | None = None
    budget_source: str | None = None
    baseline: int | None = None
    samples: list[tuple[int, int]] = field(default_factory=list)  # (rows, peak above baseline)
    rows: int | None = None  # the chosen size, once known
    verified: bool = False
    retries: int = 0
    failed_rows: int | None = None  # smallest size that failed to allocate
    warning: str | None = None

    def __post_init__(self) -> None:
        if self.budget is not None and self.meter is None:
            self.meter = MemoryMeter()
        if self.budget is not None and not self.meter.resettable:
            # Without a resettable peak (not Linux, no /proc) a probe cannot be measured alone.
            self.warning = (
                "batch_rows auto: this worker cannot measure a call's peak memory (no "
                "/proc/self/clear_refs); batches start at the maximum and shrink only on failures"
            )
            self.budget = None
        if self.budget is None:
            self.rows = self.max_rows

    # -- the size of the next call
    def _cap(self) -> int:
        cap = self.max_rows
        if self.failed_rows is not None:
            cap = min(cap, max(self.min_rows, self.failed_rows - 1))
        return cap

    def usable(self) -> float:
        return HEADROOM * (self.budget or 0) - (self.baseline or 0)

    def next_rows(self) -> int:
        if self.rows is not None:
            return min(self.rows, self._cap())
        if not self.samples:
            return min(PROBE_ROWS, self._cap())
        rows, peak = self.samples[0]
        return min(
            second_probe_rows(rows, peak, usable_bytes=self.usable(), max_rows=self._cap()), self._cap()
        )

    @property
    def measuring(self) -> bool:
        return self.budget is not None and (self.rows is None or not self.verified)

    def record(self, rows: int, peak_above_baseline: int) -> None:
        """A measured call: update the estimate, and choose (or confirm) the size."""
        self.samples.append((rows, max(0, peak_above_baseline)))
        distinct = sorted({n for n, _ in self.samples})
        if self.rows is None:
            spread = len(distinct) >= 2 and distinct[-1] >= 2 * distinct[0]
            if not spread and len(self.samples) < 4:
                return  # short batches so far: probe again on the next call
            self.rows = self._choose()
            if self.rows <= max(n for n, _ in self.samples):
                self.verified = True  # the probes already ran at this size or larger
            return
        if rows >= self.rows:  # the first call at the chosen size: shrink if it came out larger
            self.verified = True
            if peak_above_baseline > self.usable() > 0:
                self.rows = min(self.rows, self._choose())

    def _choose(self) -> int:
        # The line through the smallest and the largest call measured so far.
        by_rows: dict[int, int] = {}
        for n, p in self.samples:
            by_rows[n] = max(by_rows.get(n, 0), p)
        lo, hi = min(by_rows), max(by_rows)
        if lo == hi:  # one size only (tiny batches): all of its peak counted per row, conservatively
            est = MemoryEstimate(bytes_per_row=by_rows[hi] / hi, fixed_bytes=0.0)
        else:
            est = estimate((lo, by_rows[lo]), (hi, by_rows[hi]))
        usable = self.usable()
        if usable <= est.peak(self.min_rows):
            self.warning = (
                f"runtime.worker_memory {format_memory(self.budget or 0)} leaves no room for batches "
                f"on this worker (it holds {format_memory(self.baseline or 0)} before scoring): scoring "
                f"{self.min_rows} row(s) per call; raise runtime.worker_memory"
            )
        return choose_rows(est, usable_bytes=usable, min_rows=self.min_rows, max_rows=self._cap())

    def failed(self, rows: int) -> int:
        """A call of ``rows`` failed to allocate: the size to retry with (or raise)."""
        smaller = halve(rows, self.min_rows)
        if smaller is None:
            raise WorkerMemoryError(
                f"scoring {rows} row(s) ran out of memory on this worker "
                f"(runtime.worker_memory {format_memory(self.budget or 0)})",
                hint="give the workers more memory (runtime.worker_memory, spark.executor.memory, "
                "spark.executor.pyspark.memory) or run fewer tasks per executor",
            )
        self.retries += 1
        self.failed_rows = rows if self.failed_rows is None else min(self.failed_rows, rows)
        self.rows = smaller
        self.verified = True  # a size found by failing is not grown again
        return smaller

    # -- scoring
    def run(self, call: Callable[[dict, bool], list], feeds: dict, n: int) -> list:
        """Score ``n`` rows of ``feeds`` in calls of the current size; ``call(feeds, clean)``.

        ``clean`` asks the call to release onnxruntime's arena afterwards (probes and retries).
        Returns the outputs concatenated along the first axis, as one call would.
        """
        import numpy as np

        parts: list[list] = []
        start = 0
        while start < n:
            rows = min(self.next_rows(), n - start)
            chunk = (
                feeds
                if (start == 0 and rows == n)
                else {k: v[start : start + rows] for k, v in feeds.items()}
            )
            measuring = self.measuring
            if measuring:
                if self.baseline is None:
                    self.baseline = self.meter.rss()
                self.meter.reset_peak()
            try:
                out = call(chunk, measuring or self.retries > 0)
            except Exception as exc:
                if not is_allocation_failure(exc):
                    raise
                self.failed(rows)
                continue
            if measuring:
                self.record(rows, self.meter.peak() - self.baseline)
            parts.append([np.asarray(o) for o in out])
            start += rows
        if len(parts) == 1:
            return parts[0]
        return [np.concatenate([p[i] for p in parts], axis=0) for i in range(len(parts[0]))]

    def bind(self, session, output_names) -> Callable[[dict], list]:
        """A ``run(feeds)`` over an onnxruntime session (what ``score_batch`` calls)."""
        shrink = _shrink_options() if self.budget is not None else None

        def call(chunk: dict, clean: bool) -> list:
            if clean and shrink is not None:
                try:
                    return session.run(output_names, chunk, shrink)
                except TypeError:  # a session-like object without run options (tests' fakes)
                    pass
            return session.run(output_names, chunk)

        def run(feeds: dict) -> list:
            n = len(next(iter(feeds.values()))) if feeds else 0
            return self.run(call, feeds, n)

        return run

    def summary(self) -> dict:
        """What the manifest keeps (``workers.*.batch_memory``)."""
        out: dict = {"rows": self.rows, "retries": self.retries}
        if self.budget is not None:
            est = None
            by_rows = {n: p for n, p in self.samples}
            if len(by_rows) >= 2:
                lo, hi = min(by_rows), max(by_rows)
                est = estimate((lo, by_rows[lo]), (hi, by_rows[hi]))
            out.update(
                {
                    "worker_memory_bytes": self.budget,
                    "baseline_rss_bytes": self.baseline,
                    "probes": [list(s) for s in self.samples],
                    "bytes_per_row": None if est is None else round(est.bytes_per_row),
                    "fixed_bytes": None if est is None else round(est.fixed_bytes),
                    "peak_reset": bool(self.meter and self.meter.resettable),
                }
            )
            if self.budget_source:
                out["worker_memory_source"] = self.budget_source
        if self.warning:
            out["warning"] = self.warning
        return out


_SIZERS: dict[tuple, BatchSizer] = {}


def worker_sizer(digest: str, budget: int | None, max_rows: int) -> BatchSizer:
    """This worker process's sizer for one model and budget (later tasks reuse its estimate)."""
    source = None
    if budget is not None:
        budget, source = effective_budget(budget)
    key = (digest, budget, max_rows)
    sizer = _SIZERS.get(key)
    if sizer is None:
        sizer = _SIZERS[key] = BatchSizer(budget=budget, max_rows=max_rows, budget_source=source)
    return sizer
