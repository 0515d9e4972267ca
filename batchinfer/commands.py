"""Registry of CLI subcommands contributed by feature modules (model tools, profiles, ...).

Each entry is ``register(subparsers)``; it adds a parser and sets ``handler=`` on it. Keeping the
registry here lets features add commands without growing ``cli.py``; registration functions
must not import heavy libraries.
"""

from __future__ import annotations

from collections.abc import Callable


def _register_profile(sub) -> None:
    from batchinfer.checks.reference import register

    register(sub)


def _register_expectations(sub) -> None:
    from batchinfer.checks.starter import register

    register(sub)


REGISTRY: list[Callable] = [_register_profile, _register_expectations]


# Extra checks `batchinfer validate` runs after the plan (expectation specs, drift profile, device).
def _validate_checks(job, plan) -> None:
    from batchinfer.checks.runner import validate_checks

    validate_checks(job, plan)


def _validate_device(job, plan) -> None:
    """runtime.device=gpu: the driver's onnxruntime must offer CUDA (docs/gpu.md)."""
    from batchinfer.errors import DeviceError
    from batchinfer.scoring.device import driver_device_problem

    problem = driver_device_problem(job.config.runtime.device)
    if problem:
        raise DeviceError(problem, hint="executors use the same environment as the driver; see docs/gpu.md")


def _validate_engine(job, plan) -> None:
    """runtime.engine: local with a Spark-only setting (runtime.reader / output.writer: spark)."""
    if job.config.runtime.engine == "local":
        from batchinfer.engines.local import check_config

        check_config(job.config)


VALIDATORS: list[Callable] = [_validate_engine, _validate_checks, _validate_device]


def validate_extensions(job, plan) -> None:
    for validator in VALIDATORS:
        validator(job, plan)


from batchinfer.package import register as _register_package  # noqa: E402  (light: stdlib only)

REGISTRY.append(_register_package)
REGISTRY.append(
    __import__("batchinfer.model.commands", fromlist=["register"]).register
)  # light: argparse only


def _register_submit(sub) -> None:
    from batchinfer.submit import register  # light: stdlib only at import

    register(sub)


def _register_report(sub) -> None:
    from batchinfer.report_html import register  # light: jinja2 loads only when it runs

    register(sub)


REGISTRY.append(_register_submit)
REGISTRY.append(_register_report)
