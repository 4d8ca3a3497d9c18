"""The library core: `run(config, dry=...) -> Report`, callable from tests and the CLI.

One function drives sources → mapping → diff → guards → executor → report, so that
the dry run and the real run share every step up to the first request. A saved plan
(`saved=`) replaces only the diff: the sources are read and mapped again, to check
the plan's fingerprint under the run lock, and its operations go through the same
guards and apply path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from datetime import date
from typing import TYPE_CHECKING

from sync.collector import paused
from sync.config import Config
from sync.core.adopt import Adoption, adopt_in_plan, creations, look_up, reject_ambiguous
from sync.core.apply import apply_plan, guard
from sync.core.categories import CategoryRead, check_categories
from sync.core.diff import DiffOptions, diff, held_refs
from sync.core.executor import Execution, ProgressHook
from sync.core.lifecycle import opened
from sync.core.plan import Plan
from sync.core.report import Report
from sync.core.saved import Fingerprinter, SavedPlan, refuse_if_stale, sections
from sync.errors import ExitCode, SyncError
from sync.model import Desired
from sync.pluvo.api import ApiFactory, pluvo_client
from sync.state import write
from sync.state.journal import RunMode, RunStatus
from sync.state.read import read_state
from sync.state.store import StateStore, now

if TYPE_CHECKING:
    from sync.core.load import Opener

log = logging.getLogger(__name__)

__all__ = ["Report", "check_saved", "fresh_plan", "plan_and_guard", "run"]


def plan_and_guard(
    config: Config,
    store: StateStore,
    report: Report,
    *,
    overrides: Collection[str],
    today: date | None,
    api_factory: ApiFactory | None = None,
    fingerprint: bool = False,
) -> Plan:
    """Read, map, diff and guard: everything a run does before its first request.

    With `fingerprint`, the report gets the sections that make it a saved plan."""
    printer = Fingerprinter(config, store.last_applied_run()) if fingerprint else None
    report.known_rejections = store.last_rejections()
    with paused():
        plan = fresh_plan(
            config, store, report, today=today, api_factory=api_factory, printer=printer
        )
    plan = guard(config, store, report, plan, overrides)
    if printer is not None:
        report.sections.update(sections(plan, printer.fingerprint()))
    return plan


def fresh_plan(
    config: Config,
    store: StateStore,
    report: Report,
    *,
    today: date | None,
    api_factory: ApiFactory | None,
    printer: Fingerprinter | None = None,
) -> Plan:
    """Sources read and mapped, diffed against the store and adopted: the whole plan,
    before the safety policy holds or stops any of it."""
    t0 = time.monotonic()
    # The store is read while the sources are read and mapped (the SQLite driver
    # releases the GIL while it steps): about a second saved at a million users.
    with ThreadPoolExecutor(max_workers=1) as pool:
        state_future = pool.submit(read_state, store.engine)
        desired, t1 = _read(
            config,
            report,
            today=today,
            api_factory=api_factory,
            opener=printer.opener if printer is not None else None,
        )
        t2 = time.monotonic()
        state = state_future.result()
    options = DiffOptions(leavers=config.leavers)
    plan = diff(desired, state, options)
    people = creations(plan)
    if people and config.adoption.match:
        adoption = asyncio.run(_look_up(config, people, api_factory))
        if adoption.ambiguous:
            reject_ambiguous(desired, adoption.ambiguous)
            plan = diff(desired, state, options)
        plan = adopt_in_plan(plan, adoption.matches)
        plan = replace(plan, verified_new=frozenset(ref for ref, _ in creations(plan)))
    report.timings.update(
        {"read_and_map": t1 - t0, "categories": t2 - t1, "diff": time.monotonic() - t2}
    )
    return plan


def _read(
    config: Config,
    report: Report,
    *,
    today: date | None,
    api_factory: ApiFactory | None,
    opener: Opener | None,
) -> tuple[Desired, float]:
    """Sources read and mapped, rows checked against Pluvo's categories: the desired
    state, into the report; with the time reading and mapping ended."""
    from sync.core.load import load

    # Pluvo's categories are read while the sources are: a fixed cost overlapped with
    # the file. Its outcome is looked at only after the sources were read and mapped,
    # so a bad file or mapping is reported as before, ahead of any Pluvo error.
    read = CategoryRead(config, api_factory)
    try:
        loaded = load(config, today=today, opener=opener)
    except BaseException:
        read.cancel()
        raise
    desired = loaded.desired
    report.desired = desired
    report.sources = list(loaded.sources)
    report.source_rows = dict(desired.source_rows)
    read_at = time.monotonic()
    # Pluvo's categories before the diff: a mapping no value of which could land
    # stops here (exit 2), and rows naming options Pluvo lacks are rejected.
    checked = check_categories(config, desired, api_factory, read=read)
    for source, count in checked.rejected.items():
        stats = loaded.stats[source]
        stats.rejected, stats.users = stats.rejected + count, stats.users - count
    report.mapping = {name: asdict(stats) for name, stats in loaded.stats.items()}
    return desired, read_at


def check_saved(
    config: Config,
    store: StateStore,
    report: Report,
    saved: SavedPlan,
    *,
    overrides: Collection[str],
    today: date | None,
    api_factory: ApiFactory | None = None,
) -> Plan:
    """A saved plan in place of a new one: the sources read and mapped again (the
    desired state the run records, as `plan` saw it), the fingerprint recomputed and
    compared (StalePlanError, exit 4, naming what changed), then the same guards.
    Called under the run lock, so no other run can change the store in between."""
    printer = Fingerprinter(config, store.last_applied_run(exclude=report.run_id))
    report.known_rejections = store.last_rejections()
    t0 = time.monotonic()
    with paused():
        _, t1 = _read(config, report, today=today, api_factory=api_factory, opener=printer.opener)
    report.timings.update({"read_and_map": t1 - t0, "categories": time.monotonic() - t1})
    report.sections.update(plan_hash=saved.plan_hash, plan_file=str(saved.file))
    refuse_if_stale(saved, printer.fingerprint())
    log.info(
        "saved plan %s (%s) matches its sources, config and store", saved.file, saved.plan_hash
    )
    return guard(config, store, report, saved.plan, overrides)


def run(
    config: Config,
    *,
    dry: bool,
    overrides: Collection[str] = (),
    today: date | None = None,
    progress: ProgressHook | None = None,
    api_factory: ApiFactory | None = None,
    saved: SavedPlan | None = None,
    fingerprint: bool = False,
) -> Report:
    """Plan (dry) or plan and apply; never raises for record-level problems.

    `fingerprint` (dry only) makes the report a saved plan (`plan --out`); `saved`
    applies such a plan instead of planning anew, or refuses it (exit 4) when what it
    was computed from has changed."""
    with opened(config, RunMode.PLAN if dry else RunMode.RUN) as this:
        store, report = this.store, this.report
        if dry:
            plan_and_guard(
                config,
                store,
                report,
                overrides=overrides,
                today=today,
                api_factory=api_factory,
                fingerprint=fingerprint,
            )
            report.status = RunStatus.GUARDED if report.guards else RunStatus.PLANNED
            report.exit_code = ExitCode.GUARD if report.guards else report.outcome()
            report.finished_at = now()
            return report
        with this.locked(plan_hash=saved.plan_hash if saved is not None else None):
            if saved is None:
                plan = plan_and_guard(
                    config, store, report, overrides=overrides, today=today, api_factory=api_factory
                )
            else:
                plan = check_saved(
                    config,
                    store,
                    report,
                    saved,
                    overrides=overrides,
                    today=today,
                    api_factory=api_factory,
                )

            def after(execution: Execution) -> None:
                assert report.desired is not None
                present = set(report.desired.users.index) | set(held_refs(report.desired))
                with store.session() as session, session.begin():
                    write.record_presence(session, present, now())
                for source in report.sources:
                    # Files are archived only once their content is applied; a failure
                    # here leaves them in place for the next run, which is harmless.
                    try:
                        source.finalize(applied=True)
                    except SyncError as exc:
                        log.warning("source %s: processed files not archived: %s", source.name, exc)

            apply_plan(
                config, store, report, plan, api_factory=api_factory, progress=progress, after=after
            )
        return report


async def _look_up(
    config: Config, people: list[tuple[str, str]], api_factory: ApiFactory | None
) -> Adoption:
    """Existing Pluvo users the plan would otherwise create again (reads only)."""
    async with (api_factory or pluvo_client)(config) as api:
        if await api.count_users(archived=None) == 0:
            return Adoption({}, {})  # an empty organisation: nothing to adopt
        return await look_up(api, people, config.adoption.match)
