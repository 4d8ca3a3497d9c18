"""The library core: `run(config, dry=...) -> Report`, callable from tests and the CLI.

One function drives sources → mapping → diff → guards → executor → report, so that
the dry run and the real run share every step up to the first request.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from sync.config import Config
from sync.core import guards
from sync.core.adopt import Adoption, adopt_in_plan, look_up, reject_ambiguous
from sync.core.diff import DiffOptions, diff, held_refs
from sync.core.executor import Execution, Executor, journal_plan, settle_dead_runs
from sync.core.plan import Kind, Plan
from sync.errors import ExitCode, GuardError, StateError, SyncError
from sync.model import Desired
from sync.state.models import RunRow, UserRow
from sync.state.read import read_state
from sync.state.store import StateStore, now, require_current, safe_url

log = logging.getLogger(__name__)

ProgressFactory = Callable[[], Any]


def new_run_id() -> str:
    return f"{datetime.now().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


@dataclass
class Report:
    """Everything a run did or would do; printed, written as JSON, and the exit code."""

    run_id: str
    mode: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    exit_code: int = 0
    message: str | None = None
    plan: Plan | None = None
    desired: Desired | None = None
    execution: Execution | None = None
    guards: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    mapping: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per source: rows read, users, pre-hires, ended, filtered out and rejected."""
    requests: int = 0
    report_file: Path | None = None
    sources: list[Any] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        """Rejected rows; warnings (e.g. a dropped manager link) do not count."""
        if self.desired is None or self.desired.rejections.empty:
            return 0
        from sync.model import is_warning

        return int((~is_warning(self.desired.rejections)).sum())

    def to_json(self, *, include_plan: bool = True) -> dict[str, Any]:
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
            "requests": self.requests,
        }
        if self.plan is not None:
            data["planned"] = self.plan.counts()
            if include_plan:
                data["plan"] = self.plan.to_json()
        if self.execution is not None:
            ex = self.execution
            data["applied"] = ex.done
            data["failed"] = [{"kind": f.kind, "ref": f.ref, "error": f.error} for f in ex.failed]
            data["skipped"] = ex.skipped
        if self.desired is not None:
            data["rejected"] = self.desired.rejections.to_dict(orient="records")
            data["conflicts"] = self.desired.conflicts.to_dict(orient="records")
            data["pending_prehires"] = len(self.desired.pending)
        return data


def source_history(store: StateStore, runs: int) -> dict[str, list[int]]:
    with store.session() as session:
        rows = session.scalars(
            select(RunRow.source_rows)
            .where(RunRow.mode == "run", RunRow.status.in_(["succeeded", "partial"]))
            .order_by(RunRow.started_at.desc())
            .limit(runs)
        ).all()
    history: dict[str, list[int]] = {}
    for counts in reversed(rows):
        for name, count in (counts or {}).items():
            history.setdefault(name, []).append(int(count))
    return history


def _update_presence(store: StateStore, desired: Desired, stamp: datetime) -> None:
    """Count missing runs for users gone from the sources; reset the returners."""
    present = set(desired.users.index) | set(held_refs(desired))
    with store.session() as session, session.begin():
        rows = session.execute(
            select(UserRow.ref, UserRow.missing_runs).where(UserRow.left_action.is_(None))
        ).all()
        gone = [r.ref for r in rows if r.ref not in present]
        back = [r.ref for r in rows if r.ref in present and r.missing_runs > 0]
        for start in range(0, len(gone), 900):
            chunk = gone[start : start + 900]
            session.execute(
                update(UserRow)
                .where(UserRow.ref.in_(chunk))
                .values(missing_runs=UserRow.missing_runs + 1)
            )
            session.execute(
                update(UserRow)
                .where(UserRow.ref.in_(chunk), UserRow.missing_since.is_(None))
                .values(missing_since=stamp)
            )
        for start in range(0, len(back), 900):
            session.execute(
                update(UserRow)
                .where(UserRow.ref.in_(back[start : start + 900]))
                .values(missing_runs=0, missing_since=None)
            )
        session.execute(
            update(UserRow)
            .where(UserRow.left_action.is_(None), UserRow.missing_runs == 0)
            .values(last_seen=stamp)
        )


def _exit_code(report: Report) -> ExitCode:
    ex = report.execution
    if ex is not None and ex.aborted:
        return ExitCode.FAILED
    if report.rejected or (ex is not None and ex.failed):
        return ExitCode.PARTIAL
    return ExitCode.OK


def plan_and_guard(
    config: Config,
    store: StateStore,
    report: Report,
    *,
    overrides: Collection[str],
    today: date | None,
) -> Plan:
    """Read, map, diff and guard: everything a run does before its first request."""
    with _no_cyclic_gc():
        return _plan_and_guard(config, store, report, overrides=overrides, today=today)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Reading, mapping and diffing allocate millions of small objects and no cycles:
    the cyclic collector would scan them over and over (about 2 s at a million users)
    to find nothing; reference counting frees them all the same."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _plan_and_guard(
    config: Config,
    store: StateStore,
    report: Report,
    *,
    overrides: Collection[str],
    today: date | None,
) -> Plan:
    from sync.core.load import load

    t0 = time.monotonic()
    # The store is read while the sources are read and mapped (the SQLite driver
    # releases the GIL while it steps): about a second saved at a million users.
    with ThreadPoolExecutor(max_workers=1) as pool:
        state_future = pool.submit(read_state, store.engine)
        loaded = load(config, today=today)
        desired = loaded.desired
        report.desired = desired
        report.sources = loaded.sources
        report.mapping = {name: asdict(stats) for name, stats in loaded.stats.items()}
        report.source_rows = dict(desired.source_rows)
        t1 = time.monotonic()
        state = state_future.result()
    options = DiffOptions(leavers=config.leavers)
    plan = diff(desired, state, options)
    creates = [(op.ref, op.data["fields"]["email"]) for op in plan if op.kind is Kind.CREATE_USER]
    if creates and config.adoption.match:
        adoption = asyncio.run(_look_up(config, creates))
        if adoption.ambiguous:
            reject_ambiguous(desired, adoption.ambiguous)
            plan = diff(desired, state, options)
        adopt_in_plan(plan, adoption.matches)
        plan.verified_new = {op.ref for op in plan if op.kind is Kind.CREATE_USER}
    report.plan = plan
    t2 = time.monotonic()
    report.timings.update({"read_and_map": t1 - t0, "diff": t2 - t1})
    tripped = guards.check(
        plan,
        config.safety,
        source_rows=desired.source_rows,
        history=source_history(store, config.safety.source_history_runs),
        overrides=overrides,
    )
    report.guards = [str(t) for t in tripped]
    return plan


def run(
    config: Config,
    *,
    dry: bool,
    overrides: Collection[str] = (),
    today: date | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> Report:
    """Plan (dry) or plan and apply; never raises for record-level problems."""
    report = Report(run_id=new_run_id(), mode="plan" if dry else "run", started_at=now())
    store = StateStore(config.state_url())
    try:
        return _run(
            config, store, report, dry=dry, overrides=overrides, today=today, progress=progress
        )
    except SQLAlchemyError as exc:
        # A locked or failing store mid-run: what Pluvo acknowledged but the store could
        # not record is re-sent (idempotently) by the next run, which settles this one.
        reason = getattr(exc, "orig", None) or exc.__class__.__name__
        raise StateError(
            f"state store {safe_url(config.state_url())} failed during the run: {reason}",
            hint="fix the store; the next run settles this one and re-sends what is unrecorded",
        ) from None
    finally:
        store.close()


def _run(
    config: Config,
    store: StateStore,
    report: Report,
    *,
    dry: bool,
    overrides: Collection[str],
    today: date | None,
    progress: Callable[[str, int, int], None] | None,
) -> Report:
    require_current(store.engine)
    if dry:
        plan_and_guard(config, store, report, overrides=overrides, today=today)
        report.status = "guarded" if report.guards else "planned"
        report.exit_code = ExitCode.GUARD if report.guards else _exit_code(report)
        report.finished_at = now()
        return report
    store.acquire_lock(report.run_id)
    try:
        _apply(config, store, report, overrides=overrides, today=today, progress=progress)
    finally:
        store.release_lock(report.run_id)
    return report


def _apply(
    config: Config,
    store: StateStore,
    report: Report,
    *,
    overrides: Collection[str],
    today: date | None,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    settled = settle_dead_runs(store)
    if settled:
        log.warning("settled %d interrupted run(s): %s", len(settled), ", ".join(settled))
    store.start_run(report.run_id, "run")
    try:
        plan = plan_and_guard(config, store, report, overrides=overrides, today=today)
    except SyncError as exc:
        store.finish_run(
            report.run_id,
            status="failed",
            exit_code=int(exc.exit_code),
            summary={},
            source_rows=report.source_rows,
            message=str(exc),
        )
        raise
    if report.guards:
        report.status, report.exit_code = "guarded", ExitCode.GUARD
        report.message = "; ".join(report.guards)
        store.finish_run(
            report.run_id,
            status="guarded",
            exit_code=ExitCode.GUARD,
            summary={"planned": plan.counts()},
            source_rows=report.source_rows,
            message=report.message,
        )
        raise GuardError(report.message)
    with store.session() as session, session.begin():
        journal_plan(session, report.run_id, plan)
    t0 = time.monotonic()
    execution = asyncio.run(_execute(config, store, report.run_id, plan, progress, report))
    report.execution = execution
    report.timings["apply"] = time.monotonic() - t0
    if not execution.aborted:
        assert report.desired is not None
        _update_presence(store, report.desired, now())
        for source in report.sources:
            # Files are archived only once their content is applied; a failure here
            # leaves them in place for the next run, which is harmless.
            try:
                source.finalize(applied=True)
            except SyncError as exc:
                log.warning("source %s: processed files not archived: %s", source.name, exc)
    report.exit_code = _exit_code(report)
    report.status = {
        ExitCode.OK: "succeeded",
        ExitCode.PARTIAL: "partial",
        ExitCode.FAILED: "failed",
    }[ExitCode(report.exit_code)]
    report.message = execution.aborted
    report.finished_at = now()
    store.finish_run(
        report.run_id,
        status=report.status,
        exit_code=report.exit_code,
        summary={
            "planned": plan.counts(),
            "applied": execution.done,
            "failed": len(execution.failed),
            "skipped": execution.skipped,
            "rejected": report.rejected,
            "requests": report.requests,
        },
        source_rows=report.source_rows,
        message=report.message,
    )


async def _look_up(config: Config, creates: list[tuple[str, str]]) -> Adoption:
    """Existing Pluvo users the plan would otherwise create again (reads only)."""
    from sync.pluvo.client import PluvoClient

    async with PluvoClient(config.pluvo) as client:
        if await client.count_users(archived=None) == 0:
            return Adoption({}, {})  # an empty organisation: nothing to adopt
        return await look_up(client, creates, config.adoption.match)


async def _execute(
    config: Config,
    store: StateStore,
    run_id: str,
    plan: Plan,
    progress: Callable[[str, int, int], None] | None,
    report: Report,
) -> Execution:
    from sync.pluvo.client import PluvoClient

    if not plan.operations:
        return Execution()
    async with PluvoClient(config.pluvo) as client:
        executor = Executor(
            store,
            client,
            run_id,
            send_invite=config.pluvo.send_invite,
            membership_fields=config.pluvo.membership_result_fields,
            progress=progress,
        )
        execution = await executor.execute(plan)
        report.requests = client.counters.requests
        execution.requests = report.requests
        return execution
