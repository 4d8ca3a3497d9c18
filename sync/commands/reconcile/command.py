"""`pluvo-sync reconcile [--apply]`: read live Pluvo, compare, and correct through the
one apply path (sync.core.apply) that `run` uses."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Collection
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

from sync.commands.reconcile.drift import Drift, compute_drift
from sync.commands.reconcile.live import LiveSnapshot, read_live
from sync.commands.reconcile.refresh import Refresh, plan_refresh
from sync.commands.reconcile.render import render_reconcile
from sync.commands.reconcile.view import adoption_from_live, live_view
from sync.commands.reports import prune_reports, say_written
from sync.commands.review import report_json
from sync.config import Config
from sync.core.adopt import adopt_in_plan, creations, reject_ambiguous
from sync.core.apply import apply_plan, guard
from sync.core.categories import check_categories
from sync.core.diff import DiffOptions, diff
from sync.core.executor import Execution, ProgressHook
from sync.core.lifecycle import opened
from sync.core.plan import Plan
from sync.core.report import Report
from sync.errors import ExitCode
from sync.files import write_private
from sync.logs import print_error, redact
from sync.model import Desired
from sync.pluvo.api import ApiFactory, pluvo_client
from sync.state.journal import RunMode, RunStatus
from sync.state.read import Owned, read_owned
from sync.state.store import StateStore, now


@dataclass
class Reconciliation:
    """A reconcile's Report plus what only reconcile knows, for its readable output."""

    report: Report
    drift: Drift | None = None
    refresh: Refresh | None = None

    @property
    def applying(self) -> bool:
        return bool(self.report.sections.get("apply"))


async def _read(config: Config, report: Report, api_factory: ApiFactory | None) -> LiveSnapshot:
    async with (api_factory or pluvo_client)(config) as api:
        snapshot = await read_live(api)
        report.requests += api.counters.requests
    return snapshot


def _compare(
    config: Config,
    store: StateStore,
    result: Reconciliation,
    *,
    overrides: Collection[str],
    today: date | None,
    api_factory: ApiFactory | None,
) -> tuple[Desired, Owned, LiveSnapshot, Plan]:
    from sync.core.load import load

    report = result.report
    t0 = time.monotonic()
    desired = load(config, today=today).desired
    check_categories(config, desired, api_factory)
    report.desired = desired
    report.source_rows = dict(desired.source_rows)
    t1 = time.monotonic()
    live = asyncio.run(_read(config, report, api_factory))
    t2 = time.monotonic()
    owned = read_owned(store.engine)
    report.sections["live"] = {
        "users": len(live.users) + len(live.unreffed),
        "groups": len(live.groups) + live.unreffed_groups,
        "memberships": len(live.memberships),
        "managers": len(live.managers),
        "extra_values": len(live.extra_values),
        "user_pages": live.user_pages,
    }
    result.drift = compute_drift(desired, owned, live)
    report.sections["drift_counts"] = result.drift.counts()
    report.sections["drift"] = {
        kind: json.loads(frame.to_json(orient="records", force_ascii=False))
        for kind, frame in result.drift.frames().items()
    }
    options = DiffOptions(leavers=config.leavers)
    plan = diff(desired, live_view(desired, owned, live), options)
    if config.adoption.match:
        adoption = adoption_from_live(creations(plan), live, config.adoption.match)
        if adoption.ambiguous:
            reject_ambiguous(desired, adoption.ambiguous)
            plan = diff(desired, live_view(desired, owned, live), options)
        plan = adopt_in_plan(plan, adoption.matches)
        # Checked against the whole live user list: what is still a creation is new.
        plan = replace(plan, verified_new=frozenset(ref for ref, _ in creations(plan)))
    report.plan = plan
    report.sections["rejected_rows"] = report.rejected
    report.timings.update(
        {"read_and_map": t1 - t0, "read_live": t2 - t1, "compare": time.monotonic() - t2}
    )
    return desired, owned, live, guard(config, store, report, plan, overrides)


def reconcile(
    config: Config,
    *,
    apply: bool,
    overrides: Collection[str] = (),
    today: date | None = None,
    api_factory: ApiFactory | None = None,
    progress: ProgressHook | None = None,
) -> Reconciliation:
    """Report drift between live Pluvo, HR and the store; with `apply`, correct it."""
    with opened(config, RunMode.RECONCILE) as this:
        store, report = this.store, this.report
        report.sections["apply"] = apply
        result = Reconciliation(report)
        if not apply:
            _compare(
                config, store, result, overrides=overrides, today=today, api_factory=api_factory
            )
            assert result.drift is not None
            assert report.plan is not None
            pending = result.drift.owned_total > 0 or len(report.plan) > 0
            if report.guards:
                report.status, report.exit_code = RunStatus.GUARDED, ExitCode.GUARD
            elif pending:
                report.status, report.exit_code = RunStatus.DRIFT, ExitCode.PARTIAL
            else:
                report.status, report.exit_code = RunStatus.IN_SYNC, ExitCode.OK
            report.finished_at = now()
            return result
        with this.locked():
            desired, owned, live, plan = _compare(
                config, store, result, overrides=overrides, today=today, api_factory=api_factory
            )
            refresh = plan_refresh(desired, owned, live, plan)

            def after(execution: Execution) -> None:
                with store.session() as session, session.begin():
                    refresh.apply(session, now())
                result.refresh = refresh
                report.sections["state_refreshed"] = refresh.counts()

            apply_plan(
                config,
                store,
                report,
                plan,
                api_factory=api_factory,
                progress=progress,
                after=after,
            )
        return result


def reconcile_command(
    config: Config,
    *,
    apply: bool,
    out: Path | None,
    overrides: tuple[str, ...],
    verbose: bool,
    quiet: bool = False,
    display: AbstractContextManager[ProgressHook | None] | None = None,
) -> Report:
    """The CLI's `reconcile`: run (inside `display`, the terminal's progress), write the
    JSON (to --out; and reports/ when applying), print the readable report (under
    `quiet` only when it is worth a word), return the report."""
    if apply:
        from sync.core.apply import check_report_dir

        check_report_dir(config.report.dir)
    with display or nullcontext() as progress:
        result = reconcile(config, apply=apply, overrides=overrides, progress=progress)
    report = result.report
    text = redact(json.dumps(report_json(report), indent=2, default=str, ensure_ascii=False))
    if out is not None:
        write_private(out, text)
        say_written("drift report", out)
    if apply:
        report.report_file = config.report.dir / f"reconcile-{report.run_id}.json"
        write_private(report.report_file, text)
        prune_reports(config.report.dir, config.report.keep_days)
    if not quiet or report.noteworthy():
        sys.stdout.write(render_reconcile(result, verbose=verbose) + "\n")
        sys.stdout.flush()
    if report.guards and apply:
        print_error(report.message or "", exit_code=int(report.exit_code))
    return report
