"""Executor and journal details a user relies on, beyond the failure paths of
test_executor.py: who the store says made a user, the Pluvo ids it learns, the messages
of refusals, progress reports, the run's duration, and the journal's timestamps and
messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from sync.config import LeaverConfig
from sync.core.adopt import adopt_in_plan, creations, look_up
from sync.core.executor import Execution, Executor, ValueSplit, journal_plan
from sync.core.plan import PHASE_NAMES, ExtraValue, Kind, Plan
from sync.errors import FatalError, PluvoError, TransientError
from sync.state import journal
from sync.state.journal import Entry, ErrorClass, OpStatus, Outcome, RunStatus
from sync.state.models import OperationRow, RunRow
from sync.state.read import Owned, read_owned, read_state
from sync.state.store import StateStore
from tests.support.diffing import Person, desired_state, plan_for
from tests.support.fake_pluvo import FakePluvo, Fault

STAMP = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
LATER = STAMP + timedelta(minutes=5)


@dataclass
class Sync:
    store: StateStore
    fake: FakePluvo
    leavers: LeaverConfig = field(default_factory=lambda: LeaverConfig(grace_runs=0))
    runs: int = 0

    def plan(self, *persons: Person) -> Plan:
        return plan_for(desired_state(*persons), read_state(self.store.engine), self.leavers)

    def apply(
        self, plan: Plan, progress: Callable[[str, int, int], None] | None = None
    ) -> Execution:
        self.runs += 1
        run_id = f"run-{self.runs}"
        self.store.start_run(run_id, "run")
        with self.store.session() as session, session.begin():
            journal_plan(session, run_id, plan)
        executor = Executor(self.store, self.fake, run_id, progress=progress)
        return asyncio.run(executor.execute(plan))

    def owned(self) -> Owned:
        return read_owned(self.store.engine)


@pytest.fixture
def sync(store: StateStore) -> Sync:
    return Sync(store, FakePluvo())


# ---------------------------------------------------------------- what the store learns


def test_created_users_are_ours_and_adopted_ones_are_marked_adopted(sync: Sync) -> None:
    sync.fake.seed(users=[{"ref": "E1", "name": "Eve", "email": "e1@example.com"}])
    plan = sync.plan(Person("E1"), Person("E2"))
    found = asyncio.run(look_up(sync.fake, creations(plan), ["ref", "email"]))
    plan = adopt_in_plan(plan, found.matches)
    assert plan.adopted == ("E1",)

    result = sync.apply(plan)

    assert result.failed == []
    users = sync.owned().users
    assert users.loc["E1", "owned"] == "adopted"
    assert users.loc["E2", "owned"] == "created"
    assert users.loc["E1", "pluvo_id"] == (sync.fake.user("E1") or {})["id"]
    assert users.loc["E2", "pluvo_id"] == (sync.fake.user("E2") or {})["id"]


def test_a_created_group_is_stored_with_its_pluvo_id(sync: Sync) -> None:
    result = sync.apply(sync.plan(Person("E1", groups=("G1",))))
    assert result.failed == []
    groups = sync.owned().groups
    assert groups.loc["G1", "pluvo_id"] == (sync.fake.group("G1") or {})["id"]
    assert groups.loc["G1", "pluvo_id"]


# ---------------------------------------------------------------- refusals


def test_a_bulk_archive_pluvo_refuses_says_so(sync: Sync) -> None:
    sync.leavers = LeaverConfig(archive_method="bulk", grace_runs=0)
    sync.apply(sync.plan(Person("E1"), Person("E2")))
    e2 = (sync.fake.user("E2") or {})["id"]
    sync.fake.inject(Fault.failed_items(e2), field="archiveUsers")

    result = sync.apply(sync.plan(Person("E1")))

    assert [(f.kind, f.ref, f.error, f.error_class) for f in result.failed] == [
        (Kind.ARCHIVE_USER, "E2", "Pluvo did not archive the user (failedIds)", ErrorClass.PARTIAL)
    ]


def test_a_failure_is_logged_with_its_reason(sync: Sync, caplog: pytest.LogCaptureFixture) -> None:
    sync.fake.inject(Fault.record(message="email is already taken"), ref="E1")
    with caplog.at_level(logging.WARNING, logger="sync.core.executor"):
        result = sync.apply(sync.plan(Person("E1"), Person("E2")))
    assert [f.ref for f in result.failed] == ["E1"]
    logged = [r.getMessage() for r in caplog.records if "E1" in r.getMessage()]
    assert any("failed" in m and "email is already taken" in m for m in logged), logged


def test_earlier_phases_transient_failures_do_not_stop_later_phases(sync: Sync) -> None:
    """One of two creations lost to a transient error is not 'every operation of the
    phase failed': the next phases run, for the users that were created."""
    sync.fake.batch_size = 1  # a transient failure is its request's: A1 alone in one
    sync.fake.inject(Fault.transient(), ref="A1")
    plan = sync.plan(Person("A1"), Person("B1", groups=("G1",), extras={"department": "Sales"}))

    result = sync.apply(plan)

    assert result.aborted is None
    assert [(f.ref, f.error_class) for f in result.failed] == [("A1", ErrorClass.TRANSIENT)]
    assert sync.fake.members("G1") == {"B1"}
    assert (sync.fake.extra("B1") or {}).get("department") == "Sales"
    assert result.done.get(str(Kind.ADD_MEMBERS), 0) == 1


# ---------------------------------------------------------------- progress and timing


def test_progress_advances_to_the_total_of_each_phase(sync: Sync) -> None:
    sync.fake.batch_size = 2
    reports: list[tuple[str, int, int]] = []
    persons = [Person(f"E{n}", groups=("G1",)) for n in range(5)]

    result = sync.apply(sync.plan(*persons), progress=lambda *a: reports.append(a))

    assert result.failed == []
    assert reports, "progress was reported"
    by_phase: dict[str, list[tuple[int, int]]] = {}
    for name, done, total in reports:
        assert name in PHASE_NAMES
        by_phase.setdefault(name, []).append((done, total))
    assert set(by_phase) == {"groups", "users", "memberships"}
    for name, seen in by_phase.items():
        counts = [done for done, _ in seen]
        assert counts == sorted(set(counts)), f"{name}: {counts}"
        assert counts[0] > 0
        assert seen[-1][0] == seen[-1][1]
    assert [done for done, _ in by_phase["users"]] == [2, 4, 5]


def test_the_run_reports_how_long_it_took(sync: Sync) -> None:
    result = sync.apply(sync.plan(Person("E1")))
    assert 0 <= result.seconds < 60


# ---------------------------------------------------------------- values sent one by one


def _value(category: str) -> ExtraValue:
    return ExtraValue(category, "string", "x")


def test_values_all_refused_one_by_one_say_none_was_set() -> None:
    split = ValueSplit((), ((_value("a"), PluvoError("bad a")), (_value("b"), PluvoError("bad b"))))
    text, error_class = split.outcome()
    assert text == "2 of 2 value(s) refused by Pluvo (none was set): a: bad a; b: bad b"
    assert error_class is ErrorClass.RECORD


def test_values_partly_refused_say_the_others_were_set() -> None:
    split = ValueSplit((_value("a"),), ((_value("b"), PluvoError("bad b")),))
    text, error_class = split.outcome()
    assert text == "1 of 2 value(s) refused by Pluvo (the others were set): b: bad b"
    assert error_class is ErrorClass.PARTIAL


def test_value_refusals_keep_the_worst_class() -> None:
    fatal = ValueSplit((_value("a"),), ((_value("b"), FatalError("denied")),))
    assert fatal.outcome()[1] is ErrorClass.FATAL
    transient = ValueSplit((), ((_value("b"), TransientError("gave up")),))
    assert transient.outcome()[1] is ErrorClass.TRANSIENT
    assert ValueSplit((_value("a"),), ()).outcome() == (None, None)


# ---------------------------------------------------------------- the journal


def _journal(store: StateStore, run_id: str, refs: list[str]) -> None:
    store.start_run(run_id, "run")
    entries = [
        Entry(seq, 1, "create_user", ref, {"kind": "create_user", "ref": ref})
        for seq, ref in enumerate(refs)
    ]
    with store.session() as session, session.begin():
        journal.record_plan(session, run_id, entries, STAMP)


def _rows(store: StateStore, run_id: str) -> dict[int, OperationRow]:
    with store.session() as session:
        found = list(session.scalars(select(OperationRow).where(OperationRow.run_id == run_id)))
        for row in found:
            session.expunge(row)
    return {r.seq: r for r in found}


def _naive(stamp: datetime | None) -> datetime | None:
    return None if stamp is None else stamp.replace(tzinfo=None)


def test_every_journal_move_records_when_it_happened(store: StateStore) -> None:
    _journal(store, "r1", ["E1", "E2", "E3"])
    started, answered, skipped = LATER, LATER + timedelta(seconds=1), LATER + timedelta(seconds=2)
    with store.session() as session, session.begin():
        journal.mark_started(session, "r1", [0, 1], started)
    assert {s: _naive(r.updated_at) for s, r in _rows(store, "r1").items()} == {
        0: _naive(started),
        1: _naive(started),
        2: _naive(STAMP),
    }
    with store.session() as session, session.begin():
        journal.record_outcomes(
            session, "r1", [Outcome(0), Outcome(1, "refused", ErrorClass.RECORD)], answered
        )
        journal.mark_skipped(session, "r1", [2], "the run stopped", skipped)
    rows = _rows(store, "r1")
    assert (rows[0].status, _naive(rows[0].updated_at)) == (OpStatus.DONE, _naive(answered))
    assert (rows[1].status, rows[1].error, _naive(rows[1].updated_at)) == (
        OpStatus.FAILED,
        "refused",
        _naive(answered),
    )
    assert (rows[2].status, _naive(rows[2].updated_at)) == (OpStatus.SKIPPED, _naive(skipped))


def test_settling_a_killed_run_says_why_and_leaves_finished_runs_alone(
    store: StateStore,
) -> None:
    _journal(store, "dead", ["E1"])
    _journal(store, "crashed", ["E2"])
    with store.session() as session, session.begin():
        journal.mark_started(session, "dead", [0], STAMP)
        journal.mark_started(session, "crashed", [0], STAMP)
    # A run that ended (failed) with an answer never recorded is not a dead run.
    store.finish_run("crashed", status=RunStatus.FAILED, exit_code=1, summary={}, source_rows={})

    with store.session() as session, session.begin():
        assert journal.settle_dead_runs(session, LATER) == ["dead"]

    assert _rows(store, "dead")[0].status == OpStatus.ABANDONED
    assert _rows(store, "crashed")[0].status == OpStatus.STARTED
    with store.session() as session:
        runs: dict[str, Any] = {r.id: r for r in session.scalars(select(RunRow))}
    assert runs["dead"].status == RunStatus.ABORTED
    assert runs["dead"].message == "the process ended without finishing the run"
    assert runs["crashed"].status == RunStatus.FAILED
