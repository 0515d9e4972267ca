"""Severity policy: every check yields a ``CheckOutcome``; the gate turns them into one decision.

All checks run first; then one decision is made (Hamilton's data-quality style): any
unmet ``fail`` check fails the gate, unmet ``warn`` checks are recorded but do not block.

>>> o = [CheckOutcome(stage="input", check="column_values_not_null", column="f0",
...                   severity="warn", passed=False)]
>>> decide(o).passed
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["fail", "warn"]


@dataclass(frozen=True)
class CheckOutcome:
    """The result of one check (an expectation, a drift rule, a quarantine budget...)."""

    stage: str  # "input", "output", "drift", "prediction_drift", "quarantine", ...
    check: str  # e.g. "expect_column_values_to_not_be_null" or "psi"
    passed: bool
    severity: Severity = "fail"
    column: str | None = None
    observed: Any = None
    threshold: Any = None
    unexpected_percent: float | None = None
    message: str = ""
    details: dict = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.passed:
            return "passed"
        return "failed" if self.severity == "fail" else "warning"

    def to_dict(self) -> dict:
        out = asdict(self)
        out["status"] = self.status
        return out


@dataclass(frozen=True)
class GateDecision:
    """One decision over many outcomes."""

    passed: bool
    outcomes: tuple[CheckOutcome, ...]

    @property
    def failures(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.passed and o.severity == "fail"]

    @property
    def warnings(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.passed and o.severity == "warn"]

    def summary(self) -> dict:
        return {
            "passed": self.passed,
            "checks": len(self.outcomes),
            "failed": len(self.failures),
            "warnings": len(self.warnings),
        }

    def describe_failures(self) -> str:
        parts = []
        for o in self.failures:
            where = f"{o.stage}:{o.check}" + (f"[{o.column}]" if o.column else "")
            parts.append(f"{where} observed={o.observed!r}" + (f" ({o.message})" if o.message else ""))
        return "; ".join(parts)


def decide(outcomes: list[CheckOutcome] | tuple[CheckOutcome, ...]) -> GateDecision:
    """Fail when any ``fail``-severity outcome did not pass; warnings never block."""
    outcomes = tuple(outcomes)
    passed = not any((not o.passed) and o.severity == "fail" for o in outcomes)
    return GateDecision(passed=passed, outcomes=outcomes)
