"""``batchinfer package``: what a cluster needs to run a job, and the spark-submit lines that use it.

Builds into ``--out`` (default ``dist/``):

- ``batchinfer-<version>-py3-none-any.whl`` — the project wheel (``pip wheel --no-deps .``);
- ``env.tar.gz`` — a relocatable virtual environment (venv-pack) holding the wheel and every runtime
  dependency, shipped with ``--archives env.tar.gz#environment`` and used as the executors' Python
  via ``spark.pyspark.python=./environment/bin/python``.

venv-pack refuses environments with editable installs (``pip install -e .``, what ``make env``
does), so unless the current environment holds a regular install of batchinfer, the environment
is assembled in a staging venv: the runtime dependency closure of batchinfer is copied (hard-linked
where possible) from the current environment, which is fast and needs no network, and the wheel is
installed on top. Development tools (pytest, ruff, Jupyter, scikit-learn, ...) stay out.

The packed interpreter is a symlink to the Python the venv was made from, so every node needs the
same Python at the same path (see docs/deploy.md).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

from batchinfer.errors import BatchInferError, ConfigError

log = logging.getLogger("batchinfer")

ARCHIVE_NAME = "env.tar.gz"
ALIAS = "environment"


class PackagingError(BatchInferError, RuntimeError):
    """Building the wheel or the environment archive failed (exit code 1: an environment problem)."""


@dataclass
class PackageResult:
    wheel: Path
    archive: Path
    python_version: str
    interpreter: str  # the real interpreter the packed venv links to: nodes need it at this path
    distributions: list[str] = field(default_factory=list)
    seconds: float = 0.0


# --------------------------------------------------------------------------- wheel


def _project_root() -> Path:
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").exists():
        raise PackagingError(
            f"no pyproject.toml next to the batchinfer package ({root})",
            hint="run `batchinfer package` from a source checkout",
        )
    return root


def build_wheel(out: Path, *, project: Path | None = None) -> Path:
    """``pip wheel --no-deps`` the project into ``out`` and return the wheel's path."""
    project = project or _project_root()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("batchinfer-*.whl"):
        old.unlink()
    base = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out)]
    # Without build isolation pip needs no network (setuptools is in the venv); fall back otherwise.
    for extra in (["--no-build-isolation"], []):
        proc = subprocess.run([*base, *extra, str(project)], capture_output=True, text=True)
        if proc.returncode == 0:
            break
    else:
        raise PackagingError(f"pip wheel failed: {proc.stderr.strip()[-2000:]}")
    # setuptools leaves build/ behind in the source tree; it is ignored by git and harmless.
    wheels = sorted(out.glob("batchinfer-*.whl"))
    if not wheels:
        raise PackagingError(f"pip wheel produced no batchinfer wheel in {out}")
    return wheels[-1]


# --------------------------------------------------------------------------- environment


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(root: str = "batchinfer", *, extras: tuple[str, ...] = ()) -> list:
    """The installed distributions ``root`` needs at run time (its requirements, recursively)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    installed = {_normalize(d.metadata["Name"]): d for d in metadata.distributions()}
    seen: dict[str, object] = {}
    todo: list[tuple[str, tuple[str, ...]]] = [(root, extras)]
    while todo:
        name, wanted_extras = todo.pop()
        key = _normalize(name)
        dist = installed.get(key)
        if dist is None:
            raise PackagingError(
                f"{name} is required but not installed in {sys.prefix}",
                hint="install the project's dependencies first (make env)",
            )
        if key in seen and not wanted_extras:
            continue
        seen[key] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            envs = [{"extra": e} for e in wanted_extras] or [{"extra": ""}]
            if req.marker is not None and not any(req.marker.evaluate(e) for e in envs):
                continue
            if _normalize(req.name) not in seen or req.extras:
                todo.append((req.name, tuple(sorted(req.extras))))
    return [seen[k] for k in sorted(seen)]


def _is_editable(dist) -> bool:
    return (
        any(str(f).endswith(".pth") and "__editable__" in str(f) for f in dist.files or [])
        or (dist.read_text("direct_url.json") or "").find('"editable": true') >= 0
    )


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _site_packages(prefix: Path) -> Path:
    return prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"


def stage_environment(env_dir: Path, wheel: Path, *, exclude: tuple[str, ...] = ()) -> list[str]:
    """Make a venv at ``env_dir`` holding the wheel plus batchinfer's runtime closure, offline."""
    if env_dir.exists():
        shutil.rmtree(env_dir)
    base_python = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base_python, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    target = _site_packages(env_dir)
    source = Path(sysconfig.get_paths()["purelib"]).resolve()
    names = []
    skip = {_normalize(x) for x in ("batchinfer", *exclude)}
    # onnxruntime comes from an extra (pyproject: [cpu] or [gpu]): pack the build installed here.
    from batchinfer.scoring.device import installed_runtimes

    runtime_extra = "gpu" if "onnxruntime-gpu" in installed_runtimes() else "cpu"
    for dist in runtime_closure(extras=(runtime_extra,)):
        name = _normalize(dist.metadata["Name"])
        if name in skip:
            continue
        names.append(f"{dist.metadata['Name']}=={dist.version}")
        for rel in dist.files or []:
            src = Path(dist.locate_file(rel)).resolve()
            try:
                inside = src.relative_to(source)
            except ValueError:
                continue  # console scripts in bin/ and the like: not needed by executors
            if "__pycache__" in inside.parts or not src.is_file():
                continue
            _link_or_copy(src, target / inside)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(env_dir / "bin" / "python"),
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-compile",
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise PackagingError(f"installing {wheel.name} into the staging venv failed: {proc.stderr[-2000:]}")
    names.append(wheel.name)
    return names


def _apply_umask(path: Path) -> None:
    """venv-pack writes the archive 0600; give it the mode any new file gets here (the umask's)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def pack_environment(prefix: Path, archive: Path, *, compress_level: int = 4) -> Path:
    try:
        import venv_pack
    except ImportError as exc:
        raise PackagingError(
            "venv-pack is not installed", hint="pip install 'batchinfer[package]' (or venv-pack)"
        ) from exc
    try:
        venv_pack.pack(prefix=str(prefix), output=str(archive), force=True, compress_level=compress_level)
    except venv_pack.VenvPackException as exc:
        raise PackagingError(f"venv-pack failed: {exc}") from exc
    _apply_umask(archive)
    return archive


def current_env_packable() -> bool:
    """The running venv holds a regular (non-editable) batchinfer: pack it as it is."""
    from importlib import metadata

    if sys.prefix == sys.base_prefix:
        return False
    try:
        return not _is_editable(metadata.distribution("batchinfer"))
    except metadata.PackageNotFoundError:
        return False


def build_package(
    out: str | os.PathLike = "dist",
    *,
    compress_level: int = 4,
    exclude: tuple[str, ...] = (),
    include_pyspark: bool = False,
    reuse_current: bool = True,
) -> PackageResult:
    """Build the wheel and the environment archive into ``out``.

    pyspark (~490 MB) stays out unless ``include_pyspark``: a cluster's Spark puts its own
    ``pyspark.zip`` on the Python workers' path, and it must match the cluster's Spark anyway.
    """
    if not include_pyspark and "pyspark" not in exclude:
        exclude = (*exclude, "pyspark")
    if not 0 <= compress_level <= 9:
        raise ConfigError(
            "--compress-level must be between 0 and 9", problems=[("--compress-level", str(compress_level))]
        )
    t0 = time.perf_counter()
    out = Path(out).resolve()
    wheel = build_wheel(out)
    log.info("package: built %s", wheel.name)
    archive = out / ARCHIVE_NAME
    if reuse_current and not exclude and current_env_packable():
        log.info("package: packing the current environment %s", sys.prefix)
        pack_environment(Path(sys.prefix), archive, compress_level=compress_level)
        names = [f"(current environment {sys.prefix})"]
    else:
        staging = out / "build" / "env"
        log.info("package: staging a venv with batchinfer's runtime dependencies in %s", staging)
        names = stage_environment(staging, wheel, exclude=exclude)
        log.info("package: packing %d distributions into %s", len(names), archive)
        try:
            pack_environment(staging, archive, compress_level=compress_level)
        finally:
            shutil.rmtree(out / "build", ignore_errors=True)
    return PackageResult(
        wheel=wheel,
        archive=archive,
        python_version=f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
        interpreter=os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable),
        distributions=names,
        seconds=round(time.perf_counter() - t0, 1),
    )


# --------------------------------------------------------------------------- spark-submit lines


def submit_commands(
    archive: str,
    *,
    config: str = "conf/job.yaml",
    driver_python: str | None = None,
    extra_args: str = "--set input.partitions.ds=2026-11-28",
) -> dict[str, str]:
    """The spark-submit command lines for standalone (client mode), YARN and Kubernetes (cluster mode).

    Every path is absolute, so the lines run from any directory; the primary resource is
    ``batchinfer/submit.py`` of this installation (it ships in the wheel).
    """
    from batchinfer.airflow import submit_application

    driver_python = driver_python or sys.executable
    config = config if "://" in config else os.path.abspath(config)
    cfg_name = os.path.basename(config)
    entry = submit_application()
    py = f"./{ALIAS}/bin/python"
    standalone = (
        "spark-submit --master spark://MASTER:7077 --deploy-mode client \\\n"
        f"  --archives {archive}#{ALIAS} \\\n"
        f"  --conf spark.pyspark.driver.python={driver_python} \\\n"
        f"  --conf spark.pyspark.python={py} \\\n"
        f"  {entry} --config {config} {extra_args}"
    )
    yarn = (
        "spark-submit --master yarn --deploy-mode cluster \\\n"
        f"  --archives {archive}#{ALIAS} \\\n"
        f"  --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON={py} \\\n"
        f"  --conf spark.pyspark.python={py} \\\n"
        f"  --files {config} \\\n"
        f"  {entry} --config {cfg_name} {extra_args}"
    )
    k8s = (
        "spark-submit --master k8s://https://KUBE_API:6443 --deploy-mode cluster \\\n"
        "  --conf spark.kubernetes.container.image=IMAGE_WITH_SPARK_AND_PYTHON \\\n"
        "  --conf spark.kubernetes.file.upload.path=s3a://BUCKET/spark-uploads \\\n"
        f"  --archives {archive}#{ALIAS} \\\n"
        f"  --conf spark.kubernetes.driverEnv.PYSPARK_PYTHON={py} \\\n"
        f"  --conf spark.executorEnv.PYSPARK_PYTHON={py} \\\n"
        f"  --conf spark.pyspark.python={py} \\\n"
        f"  --files {config} \\\n"
        f"  {entry} --config {cfg_name} {extra_args}"
    )
    return {"standalone": standalone, "yarn": yarn, "kubernetes": k8s}


# --------------------------------------------------------------------------- CLI


def cmd_package(args) -> int:
    import json

    result = build_package(
        args.out,
        compress_level=args.compress_level,
        exclude=tuple(args.exclude),
        include_pyspark=args.include_pyspark,
    )
    commands = submit_commands(str(result.archive), config=args.config)
    if args.json:
        print(
            json.dumps(
                {
                    "wheel": str(result.wheel),
                    "archive": str(result.archive),
                    "archive_bytes": result.archive.stat().st_size,
                    "python": result.python_version,
                    "interpreter": result.interpreter,
                    "distributions": result.distributions,
                    "seconds": result.seconds,
                    "spark_submit": commands,
                },
                indent=2,
            )
        )
        return 0
    size = result.archive.stat().st_size / 2**20
    print(f"wheel        {result.wheel}")
    print(
        f"environment  {result.archive} ({size:,.0f} MiB, {len(result.distributions)} distributions, "
        f"{result.seconds:.0f} s)"
    )
    print(
        f"interpreter  Python {result.python_version} at {result.interpreter}: every node needs this "
        "Python at this path (see docs/deploy.md)"
    )
    for name, line in commands.items():
        print(f"\n# {name}\n{line}")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "package",
        help="build the wheel and a relocatable environment archive for a cluster; print spark-submit lines",
    )
    p.add_argument("--out", default="dist", help="output directory (default: dist/)")
    p.add_argument("--config", default="conf/job.yaml", help="job config named in the printed commands")
    p.add_argument("--compress-level", type=int, default=4, help="gzip level 0-9 of env.tar.gz (default 4)")
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="DIST",
        help="leave a distribution out of the archive (repeatable)",
    )
    p.add_argument(
        "--include-pyspark",
        action="store_true",
        help="pack pyspark too (~490 MB); by default the cluster's Spark provides it",
    )
    p.add_argument("--json", action="store_true", help="print paths and commands as JSON")
    p.set_defaults(handler=cmd_package)
