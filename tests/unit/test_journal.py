"""The journal's state machine (sync/state/journal.py), as a table, on a real SQLite store.

    pending ──► started ──► done | failed
       │           └──────► abandoned   (settle_dead_runs: may have reached Pluvo)
       └──────────────────► skipped     (never left)

Every pair of states is tried through the functions that move an entry: an allowed
transition moves it, a forbidden one raises JournalError and, its transaction rolled
back, leaves every row as it was. The moves of a whole run's open entries
(`skip_unsent`, `close_open`) take only what the table lets go. Then what a new run
does with a dead one's leftovers: `settle_dead_runs` and `sent_unanswered`. Runs have a
table of their own, tried the same way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from sync.core.executor import journal_plan
from sync.core.plan import Kind, operation_from_json
from sync.state import journal
from sync.state.journal import (
    ALLOWED,
    RUN_ALLOWED,
    Entry,
    ErrorClass,
    JournalError,
    OpStatus,
    Outcome,
    RunMode,
    RunStatus,
    predecessors,
    run_predecessors,
)
from sync.state.models import OperationRow, RunRow
from sync.state.read import read_state
from sync.state.store import StateStore
from tests.support.diffing import Person, desired_state, plan_for

STAMP = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
LATER = STAMP + timedelta(minutes=5)

P, S, D, F, K, A = (
    OpStatus.PENDING,
    OpStatus.STARTED,
    OpStatus.DONE,
    OpStatus.FAILED,
    OpStatus.SKIPPED,
    OpStatus.ABANDONED,
)


# ---------------------------------------------------------------- building journals


def start_run(store: StateStore, run_id: str, refs: list[str], kind: str = "create_user") -> None:
    """A running run whose plan is one `kind` operation per ref, seq in list order."""
    store.start_run(run_id, "run")
    entries = [Entry(seq, 1, kind, ref, {"kind": kind, "ref": ref}) for seq, ref in enumerate(refs)]
    with store.session() as session, session.begin():
        journal.record_plan(session, run_id, entries, STAMP)


def move(session: Session, run_id: str, seqs: list[int], to: OpStatus, **outcome: Any) -> None:
    """Move entries with the function the engine uses for that transition."""
    if to is S:
        journal.mark_started(session, run_id, seqs, LATER)
    elif to is D:
        journal.record_outcomes(session, run_id, [Outcome(seq) for seq in seqs], LATER)
    elif to is F:
        error_class = outcome.get("error_class") or ErrorClass.RECORD
        failed = [Outcome(seq, "refused", error_class) for seq in seqs]
        journal.record_outcomes(session, run_id, failed, LATER)
    elif to is K:
        journal.mark_skipped(session, run_id, seqs, "the run stopped", LATER)
    else:
        raise AssertionError(f"no function moves an entry to {to}")


PATHS: dict[OpStatus, tuple[OpStatus, ...]] = {
    P: (),
    S: (S,),
    D: (S, D),
    F: (S, F),
    K: (K,),
    A: (S,),  # and then settled
}


def bring(store: StateStore, run_id: str, seq: int, status: OpStatus, **outcome: Any) -> None:
    """Walk one entry to `status` the way a run gets it there."""
    for step in PATHS[status]:
        with store.session() as session, session.begin():
            move(session, run_id, [seq], step, **outcome)
    if status is A:
        with store.session() as session, session.begin():
            journal.settle_dead_runs(session, LATER)


def rows(store: StateStore, run_id: str) -> dict[int, tuple[Any, ...]]:
    """Every column that a transition may write, per seq."""
    with store.session() as session:
        found = session.scalars(select(OperationRow).where(OperationRow.run_id == run_id))
        return {r.seq: (r.status, r.error, r.error_class, r.updated_at, r.payload) for r in found}


def statuses(store: StateStore, run_id: str) -> dict[int, OpStatus]:
    with store.session() as session:
        return journal.statuses(session, run_id)


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they were stored as UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def _journal(
    store: StateStore, run_id: str, kind: str, payloads: dict[str, dict[str, str]]
) -> None:
    """A running run whose plan is one `kind` operation per ref, seq in dict order."""
    store.start_run(run_id, "run")
    entries = [
        Entry(seq, 1, kind, ref, {"kind": kind, "ref": ref, **payload})
        for seq, (ref, payload) in enumerate(payloads.items())
    ]
    with store.session() as session, session.begin():
        journal.record_plan(session, run_id, entries, STAMP)


def _fail_transient(store: StateStore, run_id: str, seq: int, at: datetime) -> None:
    """The operation was sent and retries gave up: it may have landed, at `at`."""
    with store.session() as session, session.begin():
        journal.mark_started(session, run_id, [seq], at)
        journal.record_outcomes(
            session, run_id, [Outcome(seq, "Pluvo timed out", ErrorClass.TRANSIENT)], at
        )


# ---------------------------------------------------------------- the machine


def test_the_machine_is_the_documented_one() -> None:
    assert {s: set(to) for s, to in ALLOWED.items()} == {
        P: {S, K},
        S: {D, F, A},
        D: set(),
        F: set(),
        K: set(),
        A: set(),
    }
    assert set(predecessors(S)) == {P}
    assert set(predecessors(K)) == {P}
    assert set(predecessors(D)) == set(predecessors(F)) == set(predecessors(A)) == {S}
    assert predecessors(P) == ()
    assert Outcome(0).status is D
    assert Outcome(0, "refused", ErrorClass.RECORD).status is F


TARGETS = (S, D, F, K)  # the states a function moves an entry to; abandoned: settle only
TRANSITIONS = [(source, target) for source in OpStatus for target in TARGETS]


@pytest.mark.parametrize(
    ("source", "target"), TRANSITIONS, ids=[f"{s}-to-{t}" for s, t in TRANSITIONS]
)
def test_each_transition_is_allowed_or_refused_without_a_trace(
    store: StateStore, source: OpStatus, target: OpStatus
) -> None:
    start_run(store, "r1", ["E1", "E2"])
    bring(store, "r1", 0, source)
    before = rows(store, "r1")

    if target in ALLOWED[source]:
        with store.session() as session, session.begin():
            move(session, "r1", [0], target)
        after = rows(store, "r1")
        assert after[0][0] == target
        assert after[1] == before[1], "the other entry is untouched"
    else:
        with pytest.raises(JournalError), store.session() as session, session.begin():
            move(session, "r1", [0], target)
        assert rows(store, "r1") == before


@pytest.mark.parametrize("target", TARGETS)
def test_a_batch_with_one_forbidden_entry_moves_none(store: StateStore, target: OpStatus) -> None:
    """The allowed entries of a refused batch do not move either (the transaction rolls
    back), so a caller never has to work out which half of a batch went through."""
    start_run(store, "r1", ["E1", "E2", "E3"])
    allowed_from = {S: P, D: S, F: S, K: P}[target]
    bring(store, "r1", 0, allowed_from)
    bring(store, "r1", 1, allowed_from)
    bring(store, "r1", 2, D)  # final: nothing may leave it
    before = rows(store, "r1")

    with pytest.raises(JournalError), store.session() as session, session.begin():
        move(session, "r1", [0, 1, 2], target)

    assert rows(store, "r1") == before


def test_a_transition_only_touches_its_own_run(store: StateStore) -> None:
    start_run(store, "r1", ["E1"])
    start_run(store, "r2", ["E1"])
    with store.session() as session, session.begin():
        journal.mark_started(session, "r1", [0], LATER)
    assert (statuses(store, "r1"), statuses(store, "r2")) == ({0: S}, {0: P})
    with pytest.raises(JournalError), store.session() as session, session.begin():
        journal.record_outcomes(session, "r2", [Outcome(0)], LATER)
    assert statuses(store, "r2") == {0: P}


def test_outcomes_carry_their_error_and_class(store: StateStore) -> None:
    start_run(store, "r1", ["E1", "E2"])
    with store.session() as session, session.begin():
        journal.mark_started(session, "r1", [0, 1], LATER)
        journal.record_outcomes(
            session,
            "r1",
            [Outcome(0), Outcome(1, "2 of 3 user(s) refused by Pluvo: E2", ErrorClass.PARTIAL)],
            LATER,
        )
        journal.record_outcomes(session, "r1", [], LATER)  # nothing to record: no error
    found = rows(store, "r1")
    assert found[0][:3] == (D, None, None)
    assert found[1][:3] == (F, "2 of 3 user(s) refused by Pluvo: E2", ErrorClass.PARTIAL)


def test_skip_unsent_skips_only_the_pending_of_its_run(store: StateStore) -> None:
    start_run(store, "r1", ["E1", "E2", "E3"])
    start_run(store, "r2", ["E1"])
    bring(store, "r1", 0, D)
    bring(store, "r1", 1, S)
    with store.session() as session, session.begin():
        assert journal.skip_unsent(session, "r1", "credentials revoked", LATER) == 1
    assert statuses(store, "r1") == {0: D, 1: S, 2: K}
    assert rows(store, "r1")[2][1:3] == ("credentials revoked", ErrorClass.STOPPED)
    assert statuses(store, "r2") == {0: P}


def test_a_mixed_batch_of_outcomes_with_one_not_started_records_none(store: StateStore) -> None:
    """Done and failed outcomes go as two statements; a refused one undoes both."""
    start_run(store, "r1", ["E1", "E2", "E3"])
    bring(store, "r1", 0, S)
    bring(store, "r1", 1, S)
    before = rows(store, "r1")
    outcomes = [Outcome(0), Outcome(1, "refused", ErrorClass.RECORD), Outcome(2, "refused")]
    with pytest.raises(JournalError), store.session() as session, session.begin():
        journal.record_outcomes(session, "r1", outcomes, LATER)
    assert rows(store, "r1") == before


MOVED = LATER + timedelta(minutes=1)
WHOLE_RUN_MOVES = {
    "skip_unsent": lambda session: journal.skip_unsent(session, "r1", "unsent", MOVED),
    "close_open": lambda session: journal.close_open(
        session, ["r1"], MOVED, sent="sent", unsent="unsent", why=ErrorClass.FATAL
    ),
}
WHOLE_RUN_TARGETS = {"skip_unsent": (K,), "close_open": (A, K)}


@pytest.mark.parametrize("source", list(OpStatus))
@pytest.mark.parametrize("name", list(WHOLE_RUN_MOVES))
def test_a_whole_runs_move_takes_only_what_the_table_lets_go(
    store: StateStore, name: str, source: OpStatus
) -> None:
    """An entry moves to the one target the table allows from its state, or stays
    exactly as it was; the other run's entries are never touched."""
    start_run(store, "r1", ["E1"])
    bring(store, "r1", 0, source)
    start_run(store, "r2", ["E1", "E2"])
    bring(store, "r2", 1, S)
    before, other = rows(store, "r1"), rows(store, "r2")

    with store.session() as session, session.begin():
        WHOLE_RUN_MOVES[name](session)

    allowed = [t for t in WHOLE_RUN_TARGETS[name] if t in ALLOWED[source]]
    after = rows(store, "r1")
    if allowed:
        assert after[0][0] == allowed[0]
        assert after[0][1] == ("sent" if allowed[0] is A else "unsent")
        assert after[0][3].replace(tzinfo=None) == MOVED.replace(tzinfo=None)
    else:
        assert after == before
    assert rows(store, "r2") == other


# ---------------------------------------------------------------- after a kill


def test_settle_dead_runs_closes_what_a_killed_run_left_open(store: StateStore) -> None:
    start_run(store, "dead", ["E1", "E2", "E3", "E4", "E5"])
    for seq, status in enumerate((P, S, D, F, K)):
        bring(store, "dead", seq, status)
    start_run(store, "also-dead", ["E9"])
    start_run(store, "finished", ["E1"])
    bring(store, "finished", 0, D)
    store.finish_run(
        "finished", status=RunStatus.SUCCEEDED, exit_code=0, summary={}, source_rows={}
    )
    before = rows(store, "dead")

    with store.session() as session, session.begin():
        settled = journal.settle_dead_runs(session, LATER)

    assert sorted(settled) == ["also-dead", "dead"]
    after = rows(store, "dead")
    # started: it may have reached Pluvo; pending: it never left.
    assert after[1][:3] == (A, after[1][1], ErrorClass.KILLED)
    assert after[1][1] == "the run was killed after sending this, before an answer was recorded"
    assert after[0][:3] == (K, after[0][1], ErrorClass.KILLED)
    assert "never sent" in (after[0][1] or "")
    assert {seq: after[seq] for seq in (2, 3, 4)} == {seq: before[seq] for seq in (2, 3, 4)}
    assert statuses(store, "also-dead") == {0: K}
    assert statuses(store, "finished") == {0: D}
    with store.session() as session:
        runs = {r.id: r for r in session.scalars(select(RunRow))}
    assert (runs["dead"].status, runs["dead"].exit_code) == (RunStatus.ABORTED, 1)
    assert runs["dead"].finished_at is not None
    assert runs["also-dead"].status == RunStatus.ABORTED
    assert runs["finished"].status == RunStatus.SUCCEEDED
    with store.session() as session, session.begin():
        assert journal.settle_dead_runs(session, LATER) == [], "nothing left to settle"
    assert rows(store, "dead") == after


# Which sent creations may have landed without the engine learning so (its later
# upsert answers `created: false`, but the user is still ours).
SENT_UNANSWERED = [
    ("abandoned", A, None, True),
    ("failed-transient", F, ErrorClass.TRANSIENT, True),
    ("failed-answer", F, ErrorClass.ANSWER, True),
    ("failed-record", F, ErrorClass.RECORD, False),
    ("failed-fatal", F, ErrorClass.FATAL, False),
    ("failed-partial", F, ErrorClass.PARTIAL, False),
    ("done", D, None, False),
    ("skipped", K, None, False),
]


@pytest.mark.parametrize(
    ("status", "error_class", "included"),
    [case[1:] for case in SENT_UNANSWERED],
    ids=[case[0] for case in SENT_UNANSWERED],
)
def test_sent_unanswered_names_the_creations_that_may_have_landed(
    store: StateStore, status: OpStatus, error_class: ErrorClass | None, included: bool
) -> None:
    start_run(store, "r1", ["E1", "E2"])
    bring(store, "r1", 0, status, error_class=error_class)
    with store.session() as session:
        found = journal.sent_unanswered(session, "create_user", ["E1", "E2"])
    assert found == ({"E1"} if included else set())


def test_sent_unanswered_is_by_kind_and_ref(store: StateStore) -> None:
    start_run(store, "creations", ["E1", "E2"])
    start_run(store, "updates", ["E3"], kind="update_user")
    with store.session() as session, session.begin():
        journal.mark_started(session, "creations", [0, 1], LATER)
        journal.mark_started(session, "updates", [0], LATER)
        journal.settle_dead_runs(session, LATER)
    many = [f"X{i}" for i in range(2500)] + ["E2"]  # more refs than one IN (...) holds
    with store.session() as session:
        assert journal.sent_unanswered(session, "create_user", many) == {"E2"}
        assert journal.sent_unanswered(session, "create_user", ["E3"]) == set()
        assert journal.sent_unanswered(session, "update_user", ["E1", "E3"]) == {"E3"}
        assert journal.sent_unanswered(session, "create_user", []) == set()


def test_a_live_runs_started_creation_is_not_unanswered(store: StateStore) -> None:
    start_run(store, "r1", ["E1"])
    bring(store, "r1", 0, S)
    with store.session() as session:
        assert journal.sent_unanswered(session, "create_user", ["E1"]) == set()


def test_a_takeover_trusts_the_name_sent_last_not_the_one_journaled_last(
    store: StateStore,
) -> None:
    """When two runs sent the same group creation without learning the outcome, the
    name Pluvo holds is the one sent last (by `updated_at`); a group taken over after a
    conflict is recorded with it. Unordered, the database returns the rows in storage
    (journal) order, so they are journaled here in the opposite order to sending."""
    _journal(store, "journaled-first", "create_group", {"G1": {"name": "Sales (sent last)"}})
    _journal(store, "journaled-second", "create_group", {"G1": {"name": "Sales (sent first)"}})
    _fail_transient(store, "journaled-second", 0, STAMP)
    _fail_transient(store, "journaled-first", 0, LATER)

    with store.session() as session:
        sent = journal.sent_unanswered_payloads(session, "create_group", ["G1"])

    assert sent["G1"]["name"] == "Sales (sent last)"


def test_settled_leftovers_carry_the_settle_stamp(store: StateStore) -> None:
    """`history` and `status` show when an operation last changed: a killed run's sent
    and unsent operations changed when the next run settled them, not when they were
    started or journaled."""
    _journal(store, "dead", "create_user", {"E1": {}, "E2": {}})
    with store.session() as session, session.begin():
        journal.mark_started(session, "dead", [0], STAMP)

    with store.session() as session, session.begin():
        assert journal.settle_dead_runs(session, LATER) == ["dead"]

    with store.session() as session:
        _, rows = journal.run_operations(session, "dead")
        settled = {row.ref: (row.status, _utc(row.updated_at)) for row in rows}
    assert settled == {
        "E1": (OpStatus.ABANDONED, LATER),
        "E2": (OpStatus.SKIPPED, LATER),
    }


# ---------------------------------------------------------------- what the journal holds


def test_the_journaled_plan_reads_back_as_the_same_operations(store: StateStore) -> None:
    people = [
        Person("E1", groups=("G1",), manages=("G2",), extras={"job_title": "Lead"}),
        Person("E2", language="", roles="", groups=("G2",)),
    ]
    plan = plan_for(desired_state(*people), read_state(store.engine))
    store.start_run("r1", "run")
    with store.session() as session, session.begin():
        journal_plan(session, "r1", plan)
    with store.session() as session:
        run, found = journal.run_operations(session, "r1")
    assert run is not None
    assert run.id == "r1"
    assert [(r.seq, r.kind, r.ref, r.status) for r in found] == [
        (seq, str(op.kind), op.ref, P) for seq, op in enumerate(plan)
    ]
    assert [r.phase for r in found] == [op.phase for op in plan]
    assert tuple(operation_from_json(r.payload) for r in found) == plan.operations
    assert {Kind(r.kind) for r in found} >= {Kind.CREATE_GROUP, Kind.ADD_MANAGERS}


def test_what_needs_attention(store: StateStore) -> None:
    start_run(store, "r1", ["E1", "E2", "E3", "E4"])
    for seq, status in enumerate((D, F, K, S)):
        bring(store, "r1", seq, status)
    with store.session() as session:
        assert sorted(journal.needing_attention(session)) == [("failed", 1), ("started", 1)]
        _, failed = journal.run_operations(session, "r1", only_failed=True)
        _, latest = journal.run_operations(session, None)
        missing, none = journal.run_operations(session, "nope")
    assert [r.seq for r in failed] == [1, 2]
    assert [r.seq for r in latest] == [0, 1, 2, 3]
    assert (missing, none) == (None, [])


def test_the_latest_runs_come_first(store: StateStore) -> None:
    """`status` and `history` without a run id show the newest runs, not the first."""
    for run_id in ("r1", "r2", "r3"):
        start_run(store, run_id, [f"E-{run_id}"])
    with store.session() as session:
        assert [r.id for r in journal.recent_runs(session, 2)] == ["r3", "r2"]
        run, ops = journal.run_operations(session, None)
    assert run is not None
    assert run.id == "r3"
    assert [op.ref for op in ops] == ["E-r3"]


# ---------------------------------------------------------------- runs


STORED = (RunStatus.RUNNING, *sorted(RUN_ALLOWED[RunStatus.RUNNING]))
"""The statuses a run is ever stored with: running, and where it may go from there."""


def test_the_run_machine_is_the_documented_one() -> None:
    assert set(RUN_ALLOWED) == set(RunStatus), "every status has its row in the table"
    assert {s: set(to) for s, to in RUN_ALLOWED.items() if to} == {
        RunStatus.RUNNING: {
            RunStatus.SUCCEEDED,
            RunStatus.PARTIAL,
            RunStatus.FAILED,
            RunStatus.GUARDED,
            RunStatus.HELD,
            RunStatus.ABORTED,
        }
    }
    assert run_predecessors(RunStatus.RUNNING) == ()
    for report_only in (RunStatus.PLANNED, RunStatus.DRIFT, RunStatus.IN_SYNC):
        assert run_predecessors(report_only) == (), f"{report_only} is never stored"


def bring_run(store: StateStore, run_id: str, status: RunStatus) -> None:
    """A run in `status`, got there the way the engine gets it there."""
    store.start_run(run_id, RunMode.RUN)
    if status is RunStatus.ABORTED:
        with store.session() as session, session.begin():
            assert journal.settle_dead_runs(session, LATER) == [run_id]
    elif status is not RunStatus.RUNNING:
        store.finish_run(run_id, status=status, exit_code=3, summary={"n": 1}, source_rows={})


def run_row(store: StateStore, run_id: str) -> tuple[Any, ...]:
    with store.session() as session:
        run = session.get(RunRow, run_id)
        assert run is not None
        return (run.status, run.exit_code, run.finished_at, run.summary, run.message)


RUN_TRANSITIONS = [(source, target) for source in STORED for target in RunStatus]


@pytest.mark.parametrize(
    ("source", "target"), RUN_TRANSITIONS, ids=[f"{s}-to-{t}" for s, t in RUN_TRANSITIONS]
)
def test_each_run_transition_is_allowed_or_refused_without_a_trace(
    store: StateStore, source: RunStatus, target: RunStatus
) -> None:
    bring_run(store, "r1", source)
    bring_run(store, "r2", RunStatus.RUNNING)
    before, other = run_row(store, "r1"), run_row(store, "r2")

    def finish() -> None:
        store.finish_run(
            "r1", status=target, exit_code=0, summary={}, source_rows={"hr": 2}, message="m"
        )

    if target in RUN_ALLOWED[source]:
        finish()
        after = run_row(store, "r1")
        assert (after[0], after[1], after[3], after[4]) == (target, 0, {}, "m")
        assert after[2] is not None
    else:
        with pytest.raises(JournalError, match=f"go {target}"):
            finish()
        assert run_row(store, "r1") == before
    assert run_row(store, "r2") == other


def test_finishing_a_run_that_does_not_exist_is_refused(store: StateStore) -> None:
    with pytest.raises(JournalError, match="nope \\(no such run\\)"):
        store.finish_run("nope", status=RunStatus.FAILED, exit_code=1, summary={}, source_rows={})


def test_a_finished_run_is_not_settled_again(store: StateStore) -> None:
    bring_run(store, "done", RunStatus.SUCCEEDED)
    bring_run(store, "dead", RunStatus.RUNNING)
    with store.session() as session, session.begin():
        assert journal.settle_dead_runs(session, LATER) == ["dead"]
    assert run_row(store, "done")[0] == RunStatus.SUCCEEDED
    with pytest.raises(JournalError, match="dead \\(aborted\\)"):
        store.finish_run(
            "dead", status=RunStatus.SUCCEEDED, exit_code=0, summary={}, source_rows={}
        )
    assert run_row(store, "dead")[:2] == (RunStatus.ABORTED, 1)


@pytest.mark.parametrize("mode", list(RunMode))
def test_a_run_mode_reads_as_the_string_it_always_was(store: StateStore, mode: RunMode) -> None:
    """Report files' names, the JSON report and the runs table carry the bare value."""
    assert f"{mode}-r1.json" == f"{mode.value}-r1.json"
    assert json.dumps({"mode": mode}) == json.dumps({"mode": mode.value})
    store.start_run("r1", mode)
    with store.session() as session:
        stored = session.scalar(select(RunRow.mode).where(RunRow.id == "r1"))
    assert type(stored) is str
    assert stored == mode.value


def test_known_rejections_are_the_last_finished_run_that_read_its_sources(
    store: StateStore,
) -> None:
    assert store.last_rejections() == frozenset()
    store.start_run("r1", RunMode.RUN)
    store.finish_run(
        "r1",
        status=RunStatus.SUCCEEDED,
        exit_code=3,
        summary={"rejection_keys": ["a", "b"]},
        source_rows={},
    )
    store.start_run("r2", RunMode.RUN)  # failed before reading: no keys, passed over
    store.finish_run("r2", status=RunStatus.FAILED, exit_code=1, summary={}, source_rows={})
    store.start_run("r3", RunMode.RELEASE)  # not a run that reads the sources
    store.finish_run(
        "r3",
        status=RunStatus.SUCCEEDED,
        exit_code=0,
        summary={"rejection_keys": []},
        source_rows={},
    )
    store.start_run("r4", RunMode.RUN)  # this one, still running
    assert store.last_rejections() == frozenset({"a", "b"})
    store.finish_run(
        "r4",
        status=RunStatus.SUCCEEDED,
        exit_code=0,
        summary={"rejection_keys": []},
        source_rows={},
    )
    assert store.last_rejections() == frozenset()
