"""The checks behind `pluvo-sync doctor`, each returning lines of a checklist.

A check never raises for an expected problem: it returns a failed `CheckResult`
with a remedy, so one broken piece (a source, a scope) does not hide what else is
wrong. `sync.commands.doctor` runs them in order and renders the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist, with optional indented detail lines under it."""

    name: str
    status: Status
    summary: str
    remedy: str | None = None
    details: tuple[str, ...] = field(default=())

    @property
    def failed(self) -> bool:
        return self.status is Status.FAIL


def ok(name: str, summary: str, *details: str) -> CheckResult:
    return CheckResult(name, Status.OK, summary, details=details)


def fail(name: str, summary: str, remedy: str | None = None, *details: str) -> CheckResult:
    """A failed check; a multi-line message (a config error's list) keeps one line per item.

    A single item is folded into the line itself, so the common case stays one line.
    """
    first, *rest = [line.strip() for line in summary.splitlines() if line.strip()] or [""]
    if len(rest) == 1:
        first, rest = f"{first} {rest[0]}", []
    elif rest:
        first = first.rstrip(":")
    return CheckResult(name, Status.FAIL, first, remedy, (*rest, *details))


def warn(name: str, summary: str, remedy: str | None = None) -> CheckResult:
    return CheckResult(name, Status.WARN, summary, remedy)


def skip(name: str, reason: str) -> CheckResult:
    return CheckResult(name, Status.SKIP, f"skipped: {reason}")


__all__ = ["CheckResult", "Status", "fail", "ok", "skip", "warn"]
