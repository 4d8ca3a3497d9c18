"""The one Report: everything a plan, run or reconcile did or would do.

It is printed for people, written as JSON for machines and journaled as the run's
summary; its exit code is the command's. Side commands add their own sections
(reconcile: what live Pluvo holds and how it drifted) without a report type of their
own, so every apply path ends in the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from sync.core.executor import Execution
from sync.core.plan import Plan
from sync.core.sources import Source
from sync.errors import ExitCode
from sync.model import WARNING, Desired, is_warning, rejection_key, rejection_keys
from sync.state.journal import RunMode, RunStatus

T = TypeVar("T")


@dataclass
class Report:
    run_id: str
    mode: RunMode
    started_at: datetime
    finished_at: datetime | None = None
    status: RunStatus = RunStatus.RUNNING
    exit_code: int = 0
    message: str | None = None
    plan: Plan | None = None
    desired: Desired | None = None
    execution: Execution | None = None
    guards: list[str] = field(default_factory=list)
    """Tripped guards that stopped the run (exit 4)."""
    holding: list[str] = field(default_factory=list)
    """Tripped guards that held their changes instead (`safety.on_exceed: hold`)."""
    timings: dict[str, float] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    mapping: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per source: rows read, users, pre-hires, ended, filtered out and rejected."""
    requests: int = 0
    report_file: Path | None = None
    sources: list[Source] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)
    """JSON-ready sections a side command adds (reconcile: live, drift, state refresh)."""
    known_rejections: frozenset[str] = frozenset()
    """Keys (`sync.model.rejection_key`) of the rows the last finished `run` rejected:
    an export that carries the same few bad rows for weeks is not news every night."""
    _derived: dict[str, tuple[Plan, Desired | None, Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def derived(self, name: str, build: Callable[[Plan, Desired | None], T]) -> T:
        """A view of the plan (the reviewer's, for one), built once for the text, the
        JSON and the HTML while plan and desired state stay the same (a first load's is
        a line per operation, a million of them)."""
        if self.plan is None:
            raise ValueError(f"no plan for the {name}")
        cached = self._derived.get(name)
        if cached is None or cached[0] is not self.plan or cached[1] is not self.desired:
            cached = self._derived[name] = (self.plan, self.desired, build(self.plan, self.desired))
        return cast(T, cached[2])

    @property
    def rejected(self) -> int:
        """Rejected rows; warnings (e.g. a dropped manager link) do not count."""
        if self.desired is None or self.desired.rejections.empty:
            return 0
        return int((~is_warning(self.desired.rejections)).sum())

    def rejection_keys(self) -> list[str]:
        """This run's rejected rows as keys, in order (see `known_rejections`)."""
        return [] if self.desired is None else rejection_keys(self.desired.rejections)

    def is_new_rejection(self, row: Mapping[Any, Any]) -> bool:
        """Is this row of `desired.rejections` a rejection the last run did not make?
        (A warning is not a rejection, so never a new one.)"""
        return row.get("severity") != WARNING and rejection_key(row) not in self.known_rejections

    @property
    def new_rejected(self) -> int:
        """Rejected rows the last run did not reject (the first run's: all)."""
        known = self.known_rejections
        return sum(1 for key in self.rejection_keys() if key not in known)

    def only_known_rejections(self) -> bool:
        """Is exit 3 owed to nothing but rows the last run rejected too? Then `--quiet`
        stays silent and `plan --detailed-exitcode` gives 0 (README, "Cron")."""
        ex = self.execution
        return (
            self.exit_code == ExitCode.PARTIAL
            and self.rejected > 0
            and self.new_rejected == 0
            and not (ex is not None and ex.failed)
        )

    def outcome(self) -> ExitCode:
        """The exit code of an applied run: failed, partial or succeeded."""
        ex = self.execution
        if ex is not None and ex.aborted:
            return ExitCode.FAILED
        if self.rejected or (ex is not None and ex.failed):
            return ExitCode.PARTIAL
        return ExitCode.OK

    def noteworthy(self) -> bool:
        """Worth a word under `--quiet`: something changed or would, failed, was newly
        rejected or was stopped (every exit code but 0 says one of these, except a 3
        owed only to rows the last run rejected as well)."""
        if self.pending() or self.new_rejected or self.holding:
            return True
        return self.exit_code != ExitCode.OK and not self.only_known_rejections()

    def pending(self) -> bool:
        """Does the plan hold anything to apply or to release?"""
        return self.plan is not None and (len(self.plan) > 0 or bool(self.plan.held))

    def finished(self) -> dict[str, Any]:
        """The fields of the `finished` log event: what monitoring needs in one line."""
        ex = self.execution
        seconds = (self.finished_at - self.started_at).total_seconds() if self.finished_at else None
        return {
            "mode": str(self.mode),
            "status": str(self.status),
            "exit_code": int(self.exit_code),
            "planned": sum(self.plan.counts().values()) if self.plan is not None else 0,
            "applied": sum(ex.done.values()) if ex is not None else 0,
            "failed": len(ex.failed) if ex is not None else 0,
            "skipped": ex.skipped if ex is not None else 0,
            "rejected": self.rejected,
            "guards": len(self.guards),
            "held": len(self.plan.held) if self.plan is not None else 0,
            "reason": self.message,
            "report": str(self.report_file) if self.report_file else None,
            "seconds": round(seconds, 3) if seconds is not None else None,
        }

    def summary(self) -> dict[str, Any]:
        """What the runs table keeps of this report."""
        out: dict[str, Any] = {}
        if self.plan is not None:
            out["planned"] = self.plan.counts()
            if self.plan.held:
                out["held"] = len(self.plan.held)
        if self.holding:
            out["holding"] = list(self.holding)
        if self.execution is not None:
            ex = self.execution
            out.update(applied=ex.done, failed=len(ex.failed), skipped=ex.skipped)
            out.update(rejected=self.rejected, requests=self.requests)
        if self.desired is not None:
            out["rejection_keys"] = self.rejection_keys()
        return out

    def to_json(
        self,
        *,
        include_plan: bool = True,
        lazy: bool = False,
        review: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The JSON report; `lazy` leaves the plan's operations as an iterator, for
        sync.logs.redacted_json to encode one at a time as it writes (a first load's
        would otherwise all exist as dicts at once). `review` is the plan as its
        reviewer reads it, drawn by the presentation (sync/commands/review.py
        `report_json`), and placed after the plan."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "mode": self.mode,
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "source_rows": self.source_rows,
            "mapping": self.mapping,
            "guards": self.guards,
            "holding": self.holding,
            "requests": self.requests,
        }
        if self.plan is not None:
            data["planned"] = self.plan.counts()
            data["held"] = len(self.plan.held)
            if include_plan:
                data["plan"] = self.plan.to_json(lazy=lazy)
                if review is not None:
                    data["review"] = review
        if self.execution is not None:
            ex = self.execution
            data["applied"] = ex.done
            data["failed"] = [
                {"kind": f.kind, "ref": f.ref, "error": f.error, "class": str(f.error_class)}
                for f in ex.failed
            ]
            data["skipped"] = ex.skipped
        if self.desired is not None:
            rejected = self.desired.rejections.to_dict(orient="records")
            for row in rejected:
                row["new"] = self.is_new_rejection(row)
            data["rejected"] = rejected
            data["conflicts"] = self.desired.conflicts.to_dict(orient="records")
            data["pending_prehires"] = len(self.desired.pending)
        data.update(self.sections)
        return data
