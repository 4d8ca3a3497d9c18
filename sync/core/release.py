"""Release and discard: the explicit, journaled end of a held change.

A release never applies the copy of a change stored when it was held: it plans anew
from today's sources and store, under the run lock, and applies only those parts of
the new plan that are the released changes. A released change the sources no longer
ask for is dropped and said so; one whose content moved on since it was held (a new
value, another group) is not applied but stays held with its new content, for the
reviewer to look at again. Either way it is one run in the journal, with who released
what and why, and no other change goes with it.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import date

from sync.config import Config, LocalConfig
from sync.core.apply import apply_plan, check_report_dir, finish, same_call
from sync.core.engine import fresh_plan
from sync.core.executor import ProgressHook
from sync.core.lifecycle import opened
from sync.core.plan import Operation, Plan, only_parts, per_person
from sync.core.report import Report
from sync.errors import ExitCode, UsageError
from sync.pluvo.api import ApiFactory
from sync.state import held as held_store
from sync.state.held import Held, HeldStatus, HoldKey
from sync.state.journal import RunMode, RunStatus
from sync.state.store import StateStore, now

log = logging.getLogger(__name__)

NOTHING_HELD = "nothing is held"
"""The message of a release or discard that found nothing held (and recorded no run)."""


def who_am_i() -> str:
    """The person releasing or discarding, as the operating system knows them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class Choice:
    """The held changes a release or discard is about."""

    items: list[Held]
    unknown: list[str] = field(default_factory=list)


def choose(store: StateStore, refs: Sequence[str] | None, *, discarded: bool = False) -> Choice:
    """The changes held for `refs` (None: all of them), with `discarded` the standing
    discards too (a release can apply a change someone discarded); refs with none are
    named."""
    wanted = None if refs is None else set(refs)
    with store.session() as session:
        items = held_store.active(session, wanted)
        if discarded:
            items += held_store.standing_discards(session, wanted)
    unknown = sorted(set(refs or ()) - {item.ref for item in items})
    return Choice(items, unknown)


def _anything_held(
    store: StateStore, refs: Sequence[str] | None, verb: str, *, discarded: bool = False
) -> bool:
    """Is anything held for `refs`? A ref with nothing held is a usage error (exit 2)."""
    choice = choose(store, refs, discarded=discarded)
    if choice.unknown:
        raise UsageError(
            f"nothing is held for {', '.join(choice.unknown)}; nothing was {verb}",
            hint="`pluvo-sync held` lists what is held",
        )
    return bool(choice.items)


def release(
    config: Config,
    refs: Sequence[str] | None,
    *,
    reason: str,
    by: str | None = None,
    today: date | None = None,
    api_factory: ApiFactory | None = None,
    progress: ProgressHook | None = None,
) -> Report:
    """Apply the held changes of `refs` (None: all), planned anew (see module doc).

    A change is `released` only once Pluvo acknowledged it: one that failed, or a run
    that stopped, leaves it held, to be released again. A change whose planned content
    differs from the one held (and listed by `held`) is not applied: it stays held with
    its new content, for the reviewer to look at again."""
    by = signed(by)
    with opened(config, RunMode.RELEASE) as this:
        store, report = this.store, this.report
        if not _anything_held(store, refs, "released", discarded=True):
            return _nothing_held(report)
        check_report_dir(config.report.dir)
        with this.locked():
            choice = choose(store, refs, discarded=True)  # again, under the lock
            plan = fresh_plan(config, store, report, today=today, api_factory=api_factory)
            # A release is judged by its own operations: rows the sources reject today
            # are the next run's business.
            report.desired, report.mapping = None, {}
            wanted = {item.key: item for item in choice.items}
            now_planned = dict(_keys(released_part(plan, set(wanted))))
            changed = {
                key: part
                for key, part in now_planned.items()
                if not same_call(config, part, wanted[key].operation)
            }
            picked = released_part(plan, set(now_planned) - set(changed))
            gone = [item for key, item in wanted.items() if key not in now_planned]
            at = now()
            with store.session() as session, session.begin():
                held_store.close(
                    session,
                    [item.id for item in gone],
                    HeldStatus.DROPPED,
                    run_id=report.run_id,
                    by=by,
                    reason=f"{held_store.NO_LONGER_ASKED} (found at release)",
                    at=at,
                )
                held_store.end_discards(
                    session,
                    {item.id: f"{held_store.NO_LONGER_ASKED} (found at release)" for item in gone},
                    run_id=report.run_id,
                    at=at,
                )
                held_store.replan(
                    session, report.run_id, {key: op.to_json() for key, op in changed.items()}
                )
            log.info(
                "releasing %d held change(s) by %s (%d no longer asked for, %d changed since "
                "held: not applied)",
                len(now_planned) - len(changed),
                by,
                len(gone),
                len(changed),
            )
            apply_plan(
                config,
                store,
                report,
                picked,
                api_factory=api_factory,
                progress=progress,
                settle_holds=False,
                note=f"released by {by}: {reason}",
            )
            done = _acknowledged(picked, report)
            with store.session() as session, session.begin():
                held_store.close(
                    session,
                    [wanted[key].id for key in done],
                    HeldStatus.RELEASED,
                    run_id=report.run_id,
                    by=by,
                    reason=reason,
                    at=now(),
                )
                held_store.end_discards(  # a discard released is applied once, and ends
                    session,
                    {wanted[key].id: f"released by {by}: {reason}" for key in done},
                    run_id=report.run_id,
                    at=now(),
                )
            report.sections["release"] = {
                "by": by,
                "reason": reason,
                "released": [_described(wanted[key]) for key in sorted(done)],
                "not_applied": [
                    _described(wanted[key])
                    for key in sorted(set(now_planned) - set(changed) - done)
                ],
                "changed": [_described(wanted[key]) for key in sorted(changed)],
                "dropped": [_described(item) for item in gone],
            }
        return report


def signed(by: str | None) -> str:
    """Who released or discarded: as given (`--by`), with the account that ran it."""
    account = who_am_i()
    if not by or by == account:
        return account
    return f"{by} (run by {account})"


def _nothing_held(report: Report) -> Report:
    report.status, report.exit_code = RunStatus.SUCCEEDED, ExitCode.OK
    report.message = NOTHING_HELD
    report.finished_at = now()
    return report


def _acknowledged(picked: Plan, report: Report) -> set[HoldKey]:
    """The released changes Pluvo acknowledged: none when the run stopped, and none of
    an operation that failed (for a group, every member of its failed request)."""
    execution = report.execution
    if execution is None or execution.aborted:
        return set()
    failed = {(str(f.kind), str(f.ref)) for f in execution.failed}
    done: set[HoldKey] = set()
    for op in picked.operations:
        if (str(op.kind), op.ref) in failed:
            continue
        done.update(key for key, _ in per_person(op))
    return done


def discard(
    config: Config | LocalConfig, refs: Sequence[str] | None, *, reason: str, by: str | None = None
) -> Report:
    """Decline the held changes of `refs` (None: all) without applying them: recorded
    as a run, with who and why. The decision stands: later runs set the same change
    aside while the sources keep asking for it (sync.core.hold), until they stop
    asking or ask for a different change, or someone releases it."""
    by = signed(by)
    with opened(config, RunMode.DISCARD) as this:
        store, report = this.store, this.report
        if not _anything_held(store, refs, "discarded"):
            return _nothing_held(report)
        with this.locked():
            choice = choose(store, refs)  # again, under the lock
            with store.session() as session, session.begin():
                held_store.close(
                    session,
                    [item.id for item in choice.items],
                    HeldStatus.DISCARDED,
                    run_id=report.run_id,
                    by=by,
                    reason=reason,
                    at=now(),
                )
            report.sections["discard"] = {
                "by": by,
                "reason": reason,
                "discarded": [_described(item) for item in choice.items],
            }
            report.status, report.exit_code = RunStatus.SUCCEEDED, ExitCode.OK
            report.message = f"discarded by {by}: {reason}"
            finish(store, report)
        return report


def released_part(plan: Plan, keys: Collection[HoldKey]) -> Plan:
    """Only the parts of `plan` that are the changes `keys`, in execution order; a
    group's released members stay in one request, as a run sends them."""
    picked = (only_parts(op, keys) for op in plan.operations)
    return Plan(
        operations=tuple(op for op in picked if op is not None),
        state_users=plan.state_users,
        desired_users=plan.desired_users,
        verified_new=plan.verified_new,
    )


def _keys(plan: Plan) -> list[tuple[HoldKey, Operation]]:
    return [pair for op in plan.operations for pair in per_person(op)]


def _described(item: Held) -> dict[str, str]:
    kind, ref, group = item.key
    return {"kind": kind, "ref": ref, "group": group, "class": item.risk, "reason": item.reason}
