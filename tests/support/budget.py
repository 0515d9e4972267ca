"""Verification budgets for tests, derived from figures measured on the machine running them.

int8 figures differ between CPUs (AVX-512 VNNI vs AVX2-only x86): a test never copies one
machine's figure into a threshold. It measures first (``verify --no-card --json``), checks that
the gate's decision agrees with what it measured, then gates with a budget built around those
figures when it needs a passing verification.
"""

from __future__ import annotations

import json

from batchinfer.cli import main
from batchinfer.model.verify import VerificationBudget, check_budget


def measure(capsys, candidate, reference, data_args: list[str], *extra: str) -> dict:
    """Run ``verify --no-card --json`` with the default budget; return the report (any outcome)."""
    capsys.readouterr()
    rc = main(
        [
            "model",
            "verify",
            str(candidate),
            "--reference",
            str(reference),
            *data_args,
            "--repeats",
            "1",
            "--json",
            "--no-card",
            *extra,
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert rc == (0 if report["passed"] else 5)
    assert_decision_consistent(report)
    return report


def assert_decision_consistent(report: dict) -> None:
    """The gate passed exactly when its own figures are inside its own budget."""
    budget = VerificationBudget(**report["budget"])
    failures = check_budget(report["figures"], budget)
    assert report["passed"] is (not failures)
    assert report["failures"] == failures


def budget_args(report: dict) -> list[str]:
    """CLI budget flags the measured ``report`` passes with room (twice each measured loss)."""
    f = report["figures"]
    agreement = f.get("label_agreement")
    worst_change = max([abs(p["change"]) for p in f.get("metrics", {}).values()] or [0.0])
    floats = [s for s in f["outputs"].values() if "row_abs_diff" in s]
    worst_row = max([s["row_abs_diff"] for s in floats] or [0.0])
    worst_top = max([s["top_class_abs_diff"] for s in floats] or [0.0])
    args = ["--max-metric-change", f"{2 * worst_change + 1e-6:.6f}"]
    args += ["--max-row-abs-diff", f"{2 * worst_row + 1e-6:.6f}"]
    args += ["--max-top-class-abs-diff", f"{2 * worst_top + 1e-6:.6f}"]
    if agreement is not None:
        args += ["--min-label-agreement", f"{max(0.0, 1 - 2 * (1 - agreement) - 1e-6):.6f}"]
    return args
