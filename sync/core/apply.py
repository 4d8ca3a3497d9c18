"""The one path from a plan to Pluvo: guards → journal → executor → report.

`run` and `reconcile --apply` differ only in how they build their plan (HR against
the store, or HR against live Pluvo) and in what they record once it is applied;
both go through here, so a guard trip, the report folder check, the journal, the
executor's settings (invitations, membership result fields) and the run's record
cannot drift apart between them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

from sync.config import Config
from sync.core import guards
from sync.core.executor import Execution, Executor, ProgressHook, journal_plan
from sync.core.hold import Discarded, Standing, always_held, held_by_guards, hold, lapsed
from sync.core.plan import HeldOp, Operation, Plan, operation_from_json
from sync.core.report import Report
from sync.errors import ExitCode, SyncError
from sync.pluvo.api import ApiFactory, pluvo_client
from sync.state import held as held_store
from sync.state.journal import RunStatus
from sync.state.store import StateStore, now

log = logging.getLogger(__name__)

STATUS_OF = {
    ExitCode.OK: RunStatus.SUCCEEDED,
    ExitCode.PARTIAL: RunStatus.PARTIAL,
    ExitCode.FAILED: RunStatus.FAILED,
    ExitCode.HELD: RunStatus.HELD,
}


def check_report_dir(folder: Path) -> None:
    """Fail before applying anything when the report cannot be written afterwards."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SyncError(
            f"cannot write reports to {folder}: {exc.strerror} (nothing was applied)"
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SyncError(f"cannot write reports to {folder}: not writable (nothing was applied)")


def guard(
    config: Config, store: StateStore, report: Report, plan: Plan, overrides: Collection[str]
) -> Plan:
    """The plan as the safety policy lets it apply (the dry run shows the same).

    Changes held before, and classes `safety.hold` lists, are held first; the guards
    then judge what is left. A tripped guard goes into `report.guards` (the run stops,
    exit 4) or, with `safety.on_exceed: hold`, into `report.holding`, and the classes
    it is about are held too."""
    with store.session() as session:
        standing = {
            item.key: Standing(item.reason, item.held_at.isoformat(timespec="seconds"))
            for item in held_store.active(session)
        }
        discarded = {item.key: _declined(item) for item in held_store.standing_discards(session)}

    def same(part: Operation, stored: Mapping[str, Any]) -> bool:
        return same_call(config, part, stored)

    plan = hold(plan, always_held(config.safety.hold), standing, discarded, same)
    desired = report.desired
    tripped = guards.check(
        plan,
        config.safety,
        source_rows=desired.source_rows if desired is not None else {},
        history=store.source_history(config.safety.source_history_runs),
        overrides=overrides,
    )
    if tripped and config.safety.on_exceed == "hold":
        plan = hold(plan, held_by_guards(tripped), standing, discarded, same)
        report.holding = [t.held() for t in tripped]
    else:
        report.guards = [str(t) for t in tripped]
    report.plan = plan
    return plan


def apply_plan(
    config: Config,
    store: StateStore,
    report: Report,
    plan: Plan,
    *,
    api_factory: ApiFactory | None = None,
    progress: ProgressHook | None = None,
    after: Callable[[Execution], None] | None = None,
    settle_holds: bool = True,
    note: str | None = None,
) -> None:
    """Apply a guarded plan inside `Run.locked`, and finish the report and the run.

    A tripped guard (already in `report.guards`) stops here with exit 4 before the
    journal or Pluvo sees anything. `after` records what the applying command learns
    besides the executor's results (presence of users, a store refresh); it runs only
    when the execution was not aborted. With `settle_holds`, the store's held changes
    become the plan's (a release, which holds nothing, leaves the others alone).
    `note` is the run's message when it was not aborted (who released and why).
    """
    report.plan = plan
    if report.guards:
        report.status, report.exit_code = RunStatus.GUARDED, ExitCode.GUARD
        report.message = "; ".join(report.guards)
        finish(store, report)
        return
    check_report_dir(config.report.dir)
    with store.session() as session, session.begin():
        journal_plan(session, report.run_id, plan)
        if settle_holds:
            dropped = held_store.settle(
                session, report.run_id, [_holding(h) for h in plan.held], now()
            )
            report.sections["held_dropped"] = dropped
            standing = {item.key: item.id for item in held_store.standing_discards(session)}
            held_store.end_discards(session, lapsed(plan, standing), run_id=report.run_id, at=now())
    started = time.monotonic()
    execution = asyncio.run(_execute(config, store, report, plan, api_factory, progress))
    report.execution = execution
    report.requests += execution.requests
    report.timings["apply"] = time.monotonic() - started
    if not execution.aborted and after is not None:
        after(execution)
    code = report.outcome()
    if plan.held and (code == ExitCode.OK or (code == ExitCode.PARTIAL and not execution.failed)):
        # Held changes wait for a person; rejected rows (exit 3, a success to systemd)
        # are in the report all the same, and must not hide that. Failed operations
        # keep exit 3: they are retried by the next run, held changes are not.
        code = ExitCode.HELD
    report.exit_code, report.status = code, STATUS_OF[code]
    if code == ExitCode.PARTIAL and not execution.failed:
        # Everything planned was applied; the exit code still says rows were rejected.
        report.status = RunStatus.SUCCEEDED
    report.message = execution.aborted or note
    finish(store, report)


def _declined(item: held_store.Held) -> Discarded:
    when = item.closed_at or item.held_at
    reason = f"discarded by {item.closed_by or 'unknown'}: {item.close_reason or ''}"
    return Discarded(reason.rstrip(": "), when.isoformat(timespec="seconds"), item.operation)


def same_call(config: Config, part: Operation, held: Mapping[str, Any]) -> bool:
    """Would the part send what the held or discarded change (as stored) would? Only
    what reaches Pluvo counts: the source line a value came from, or how long a leaver
    has been missing, may move on without making it another change."""
    try:
        before = operation_from_json(held)
    except (KeyError, TypeError, ValueError):
        return False
    fields = config.pluvo.membership_result_fields
    invite = config.pluvo.send_invite
    return bool(
        part.to_call(send_invite=invite, membership_fields=fields)
        == before.to_call(send_invite=invite, membership_fields=fields)
    )


def _holding(item: HeldOp) -> held_store.Holding:
    return held_store.Holding(item.key, item.risk, item.reason, item.operation.to_json())


def finish(store: StateStore, report: Report) -> None:
    """The report finished and the run recorded with its status and summary."""
    report.finished_at = now()
    store.finish_run(
        report.run_id,
        status=report.status,
        exit_code=report.exit_code,
        summary=report.summary(),
        source_rows=report.source_rows,
        message=report.message,
    )


async def _execute(
    config: Config,
    store: StateStore,
    report: Report,
    plan: Plan,
    api_factory: ApiFactory | None,
    progress: ProgressHook | None,
) -> Execution:
    if not plan.operations:
        return Execution()
    api = (api_factory or pluvo_client)(config)
    async with api:
        executor = Executor(
            store,
            api,
            report.run_id,
            send_invite=config.pluvo.send_invite,
            membership_fields=config.pluvo.membership_result_fields,
            progress=progress,
        )
        execution = await executor.execute(plan)
        execution.requests = api.counters.requests
        return execution
