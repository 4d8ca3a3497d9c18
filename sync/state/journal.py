"""The journal: every planned operation's life, as a state machine written before the call.

    pending ──► started ──► done | failed
       │           └──────► abandoned   (the run died after sending: may be in Pluvo)
       └──────────────────► skipped     (never sent: the run stopped or died first)

The whole plan is stored `pending` before anything is sent. Each batch of operations
goes `started` immediately before its request leaves, and its outcome lands as `done`
or `failed` in the same transaction as the state change it implies. So after a kill
the journal tells what might have reached Pluvo (`abandoned`) from what never left
(`skipped`), and the store never holds a change Pluvo did not confirm.

Every transition is an UPDATE guarded by the states `ALLOWED` says it may come from
(`_move` writes them all); a transition the machine does not allow changes no row and
raises `JournalError` (a bug, not a condition to handle). Runs have their own table,
`RUN_ALLOWED`: running until finished once, or settled as aborted by the next run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from itertools import islice
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    String,
    Table,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import cast as sa_cast
from sqlalchemy.orm import Session

from sync.state.batching import chunks
from sync.state.bulk import Many
from sync.state.models import LOOKED_BACK_SQL, OperationRow, RunRow


class OpStatus(StrEnum):
    PENDING = "pending"
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    ABANDONED = "abandoned"


ALLOWED: dict[OpStatus, frozenset[OpStatus]] = {
    OpStatus.PENDING: frozenset({OpStatus.STARTED, OpStatus.SKIPPED}),
    OpStatus.STARTED: frozenset({OpStatus.DONE, OpStatus.FAILED, OpStatus.ABANDONED}),
    OpStatus.DONE: frozenset(),
    OpStatus.FAILED: frozenset(),
    OpStatus.SKIPPED: frozenset(),
    OpStatus.ABANDONED: frozenset(),
}
"""The allowed transitions; the final states allow none."""

OPEN = (OpStatus.PENDING, OpStatus.STARTED)
UNFINISHED = (OpStatus.PENDING, OpStatus.STARTED, OpStatus.FAILED, OpStatus.ABANDONED)
"""What `status` lists as needing attention."""


class RunStatus(StrEnum):
    """A run's status: in the runs table, and in every report."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    GUARDED = "guarded"
    HELD = "held"
    """Applied the safe changes; risky ones wait for `release` (exit 7)."""
    ABORTED = "aborted"  # killed; settled by the next run
    # Reports of commands that apply nothing (never stored as runs):
    PLANNED = "planned"
    DRIFT = "drift"
    IN_SYNC = "in_sync"


RUN_ALLOWED: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.SUCCEEDED,
            RunStatus.PARTIAL,
            RunStatus.FAILED,
            RunStatus.GUARDED,
            RunStatus.HELD,
            RunStatus.ABORTED,
        }
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.PARTIAL: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.GUARDED: frozenset(),
    RunStatus.HELD: frozenset(),
    RunStatus.ABORTED: frozenset(),
    RunStatus.PLANNED: frozenset(),
    RunStatus.DRIFT: frozenset(),
    RunStatus.IN_SYNC: frozenset(),
}
"""A run is stored `running` and finished once; the report-only statuses are never
stored, so no run moves to or from them."""


class RunMode(StrEnum):
    """What a run did: in the runs table, the report (and its file's name) and the logs."""

    PLAN = "plan"
    RUN = "run"
    RECONCILE = "reconcile"
    RELEASE = "release"
    DISCARD = "discard"
    UNLOCK = "unlock"  # journaled by hand (`unlock --force`), with no report


COUNTED = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)
"""Runs whose source sizes the shrinking-source guard compares against."""
FINISHED_APPLYING = (*COUNTED, RunStatus.HELD)
"""Runs that got through applying their plan (a held run applied its safe part)."""


class ErrorClass(StrEnum):
    """Why an operation did not end `done`; decided by the error's type, never its text."""

    RECORD = "record"  # Pluvo refused this operation; the others go on
    PARTIAL = "partial"  # some users of a membership or archive batch were refused
    ANSWER = "answer"  # Pluvo answered something the engine cannot read
    TRANSIENT = "transient"  # retries gave up: 5xx, 429, timeouts, dropped connections
    FATAL = "fatal"  # the run had to stop: credentials, scopes, a refused document
    STOPPED = "stopped"  # not sent: the run stopped before it
    BLOCKED = "blocked"  # not sent: the user or group it needs failed this run
    KILLED = "killed"  # the process died around it


class JournalError(RuntimeError):
    """A transition the state machine forbids: a bug in the caller."""


def predecessors(status: OpStatus) -> tuple[OpStatus, ...]:
    return tuple(s for s, targets in ALLOWED.items() if status in targets)


def run_predecessors(status: RunStatus) -> tuple[RunStatus, ...]:
    return tuple(s for s, targets in RUN_ALLOWED.items() if status in targets)


@dataclass(frozen=True)
class Entry:
    """One operation as the journal stores it, before it is sent."""

    seq: int
    phase: int
    kind: str
    ref: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    seq: int
    error: str | None = None
    error_class: ErrorClass | None = None

    @property
    def status(self) -> OpStatus:
        return OpStatus.FAILED if self.error is not None else OpStatus.DONE


def _table() -> Table:
    return cast(Table, OperationRow.__table__)


def record_plan(session: Session, run_id: str, entries: Iterable[Entry], stamp: datetime) -> None:
    """Store the whole plan as `pending` before the first request is sent.

    Rows are built a chunk at a time from an iterable, so the whole plan never exists
    twice more in memory (as entries and as rows) beside the plan itself."""
    remaining = iter(entries)
    while part := list(islice(remaining, 5000)):
        _PLAN_ROWS(
            session,
            [(e.seq, e.phase, e.kind, e.ref, e.payload) for e in part],
            run_id=run_id,
            status=OpStatus.PENDING,
            error=None,
            error_class=None,
            updated_at=stamp,
        )


_PLAN_ROWS = Many(
    insert(_table()),
    per_row=("seq", "phase", "kind", "ref", "payload"),
    same=("run_id", "status", "error", "error_class", "updated_at"),
)


def _from(column: Any, sources: Sequence[StrEnum], to: StrEnum) -> ColumnElement[bool]:
    """`column` holds one of `sources`: as plain equalities, which an executemany can
    carry (an expanding IN cannot)."""
    if not sources:
        raise JournalError(f"nothing may go {to}")
    return or_(*(column == s for s in sources))


def _move(
    session: Session,
    where: Sequence[ColumnElement[bool]],
    to: OpStatus,
    stamp: datetime,
    values: Mapping[str, Any],
    *,
    expected: int | None = None,
    label: str,
) -> int:
    """The one way an operation's status changes: the rows `where` picks that are in a
    state `ALLOWED` lets go `to` are moved there, with `values`. With `expected`, moving
    fewer rows is a forbidden transition: `JournalError`, and the caller's transaction
    rolls back. Returns how many rows moved. (`_move_each` is the same move by (run,
    seq), each row with its own error.)"""
    journal = _table()
    statement = (
        update(journal)
        .where(*where, _from(journal.c.status, predecessors(to), to))
        .values(status=to, updated_at=stamp, **values)
    )
    result: CursorResult[Any] = session.execute(statement)  # type: ignore[assignment]
    return _moved(int(result.rowcount), expected, to, label)


def _moved(moved: int, expected: int | None, to: OpStatus, label: str) -> int:
    # (-1: a driver that cannot count an executemany's rows; the two supported can)
    if expected is not None and moved not in (-1, expected):
        raise JournalError(f"{label}: {expected - moved} of {expected} operation(s) cannot go {to}")
    return moved


@cache
def _each_move(to: OpStatus) -> Many:
    """The statement moving one (run, seq) per row to `to`, from what `ALLOWED` permits."""
    journal = _table()
    statement = (
        update(journal)
        .where(
            journal.c.run_id == bindparam("b_run"),
            journal.c.seq == bindparam("b_seq"),
            _from(journal.c.status, predecessors(to), to),
        )
        .values(
            status=to,
            updated_at=bindparam("b_stamp"),
            error=bindparam("b_error"),
            error_class=bindparam("b_class"),
        )
    )
    return Many(statement, per_row=("b_seq", "b_error", "b_class"), same=("b_run", "b_stamp"))


def _move_each(
    session: Session,
    run_id: str,
    to: OpStatus,
    stamp: datetime,
    rows: Sequence[tuple[int, str | None, ErrorClass | None]],
) -> None:
    """These (seq, error, error class) of one run go `to`, every one of them (one
    executemany; see `_move`)."""
    moved = _each_move(to)(session, rows, b_run=run_id, b_stamp=stamp)
    _moved(moved, len(rows), to, f"run {run_id}")


def _move_seqs(
    session: Session,
    run_id: str,
    seqs: Sequence[int],
    to: OpStatus,
    stamp: datetime,
    values: Mapping[str, Any],
) -> None:
    """These operations of one run, every one of them, go `to` (by (run, seq), a chunk
    of IN (...) at a time)."""
    journal = _table()
    for part in chunks(seqs):
        where = (journal.c.run_id == run_id, journal.c.seq.in_(part))
        _move(session, where, to, stamp, values, expected=len(part), label=f"run {run_id}")


def mark_started(session: Session, run_id: str, seqs: Sequence[int], stamp: datetime) -> None:
    """pending → started, immediately before the request carrying them leaves.

    Once per request of a run: one executemany by (run, seq), as outcomes are recorded,
    rather than an `IN (...)` statement SQLAlchemy builds and looks up afresh each time.
    A pending operation carries no error, so clearing it changes nothing."""
    _move_each(session, run_id, OpStatus.STARTED, stamp, [(seq, None, None) for seq in seqs])


def record_outcomes(
    session: Session, run_id: str, outcomes: Sequence[Outcome], stamp: datetime
) -> None:
    """started → done | failed, in the caller's transaction (with the state change).

    An executemany by (run, seq) per outcome status (done first, then failed), each
    row carrying its own error."""
    for to in (OpStatus.DONE, OpStatus.FAILED):
        rows = [(o.seq, o.error, o.error_class) for o in outcomes if o.status is to]
        if rows:
            _move_each(session, run_id, to, stamp, rows)


def mark_skipped(
    session: Session,
    run_id: str,
    seqs: Sequence[int],
    reason: str,
    stamp: datetime,
    *,
    why: ErrorClass = ErrorClass.STOPPED,
) -> None:
    """pending → skipped for these operations: never sent (the run stopped before their
    batch left, or what they depend on failed)."""
    values = {"error": reason, "error_class": why}
    _move_seqs(session, run_id, seqs, OpStatus.SKIPPED, stamp, values)


def skip_unsent(session: Session, run_id: str, reason: str, stamp: datetime) -> int:
    """pending → skipped: the run stopped before sending them."""
    values = {"error": reason, "error_class": ErrorClass.STOPPED}
    where = (_table().c.run_id == run_id,)
    return _move(session, where, OpStatus.SKIPPED, stamp, values, label=f"run {run_id}")


def finish_runs(
    session: Session,
    run_ids: Sequence[str],
    to: RunStatus,
    stamp: datetime,
    values: Mapping[str, Any],
) -> None:
    """The one way a run's status changes: each of `run_ids` goes `to` (finished at
    `stamp`, with `values`) from a status `RUN_ALLOWED` lets go there; if one cannot,
    `JournalError` says where each is, and the caller's transaction rolls back."""
    runs = cast(Table, RunRow.__table__)
    for part in chunks(run_ids):
        result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
            update(runs)
            .where(runs.c.id.in_(part), _from(runs.c.status, run_predecessors(to), to))
            .values(status=to, finished_at=stamp, **values)
        )
        if result.rowcount == len(part):
            continue
        # Read only on the way to the error: which runs are where.
        rows = session.execute(select(runs.c.id, runs.c.status).where(runs.c.id.in_(part)))
        found = {str(run_id): str(status) for run_id, status in rows}
        where = ", ".join(f"{r} ({found.get(r, 'no such run')})" for r in part)
        raise JournalError(
            f"{len(part) - result.rowcount} of {len(part)} run(s) cannot go {to}: {where}"
        )


def settle_dead_runs(session: Session, stamp: datetime) -> list[str]:
    """Close what killed runs left open; returns the ids of the runs settled.

    No Pluvo lookup is needed: an `abandoned` operation's effect is either unrecorded
    (and the diff plans it again, idempotently) or recorded with its `done` mark; a
    `skipped` one never left.
    """
    dead = list(session.scalars(select(RunRow.id).where(RunRow.status == RunStatus.RUNNING)))
    if not dead:
        return []
    for part in chunks(dead):
        close_open(
            session,
            part,
            stamp,
            sent="the run was killed after sending this, before an answer was recorded",
            unsent="never sent: the run was killed before it",
            why=ErrorClass.KILLED,
        )
    finish_runs(
        session,
        dead,
        RunStatus.ABORTED,
        stamp,
        {"exit_code": 1, "message": "the process ended without finishing the run"},
    )
    return dead


def close_open(
    session: Session,
    run_ids: Sequence[str],
    stamp: datetime,
    *,
    sent: str,
    unsent: str,
    why: ErrorClass,
) -> None:
    """started → abandoned and pending → skipped for runs that end without finishing
    their plan (killed, or failed on an error that stopped them). Afterwards only a
    run still marked running has open operations: `needing_attention` relies on it."""
    where = (_table().c.run_id.in_(run_ids),)
    label = f"run(s) {', '.join(run_ids)}"
    for to, error in ((OpStatus.ABANDONED, sent), (OpStatus.SKIPPED, unsent)):
        _move(session, where, to, stamp, {"error": error, "error_class": why}, label=label)


MAY_HAVE_LANDED = (ErrorClass.TRANSIENT, ErrorClass.ANSWER)
"""Failures after which the request may still have been applied: retries gave up on a
request that may have reached Pluvo, or Pluvo's answer could not be read."""


def sent_unanswered(session: Session, kind: str, refs: Sequence[str]) -> set[str]:
    """Refs whose `kind` operation was sent and may have been applied without the
    engine learning so: abandoned by a dead run, or failed in a way that may have
    landed. A creation among them is ours, whatever a later upsert answers."""
    return set(sent_unanswered_payloads(session, kind, refs))


def sent_unanswered_payloads(
    session: Session, kind: str, refs: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """`sent_unanswered`, with what was sent (the latest such operation per ref).

    One read of the few looked-back operations of this kind (the partial index), then
    kept to `refs` here: asking by ref instead would cost a query per chunk of a first
    load's million creations, each over a journal that has just grown by as many.
    """
    wanted = set(refs)
    if not wanted:
        return {}
    rows = session.execute(
        select(OperationRow.ref, OperationRow.payload)
        .where(
            OperationRow.kind == kind,
            text(LOOKED_BACK_SQL),
            or_(
                OperationRow.status == OpStatus.ABANDONED,
                OperationRow.error_class.in_(MAY_HAVE_LANDED),
            ),
        )
        .order_by(OperationRow.updated_at)
    )
    return {str(ref): dict(payload) for ref, payload in rows if ref in wanted}


def statuses(session: Session, run_id: str) -> dict[int, OpStatus]:
    """seq → status of one run's operations (tests and `history` read it)."""
    rows = session.execute(
        select(OperationRow.seq, OperationRow.status).where(OperationRow.run_id == run_id)
    )
    return {seq: OpStatus(status) for seq, status in rows}


# ------------------------------------------------------------------ reading it back


def recent_runs(session: Session, limit: int) -> list[RunRow]:
    return list(session.scalars(select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)))


def needing_attention(session: Session) -> list[tuple[str, int]]:
    """(status, count) over all runs of the operations not cleanly done or skipped."""
    looked_back = session.execute(
        select(OperationRow.status, func.count())
        .where(text(LOOKED_BACK_SQL))
        .group_by(OperationRow.status)
    ).all()
    # Pending and started operations belong to a run in progress or one killed and not
    # yet settled: found through the runs still marked running, by (run, seq).
    running = select(RunRow.id).where(RunRow.status == RunStatus.RUNNING).scalar_subquery()
    open_now = session.execute(
        select(OperationRow.status, func.count())
        .where(OperationRow.run_id.in_(running), OperationRow.status.in_(OPEN))
        .group_by(OperationRow.status)
    ).all()
    counts = {str(status): int(count) for status, count in [*looked_back, *open_now]}
    return [(status, counts[status]) for status in UNFINISHED if status in counts]


def run_operations(
    session: Session, run_id: str | None, *, only_failed: bool = False
) -> tuple[RunRow | None, list[OperationRow]]:
    """A run (default: the latest) and its operations in plan order."""
    if run_id is None:
        run = session.scalars(select(RunRow).order_by(RunRow.started_at.desc())).first()
    else:
        run = session.get(RunRow, run_id)
    if run is None:
        return None, []
    query = select(OperationRow).where(OperationRow.run_id == run.id)
    if only_failed:
        query = query.where(
            OperationRow.status.in_([OpStatus.FAILED, OpStatus.ABANDONED, OpStatus.SKIPPED])
        )
    return run, list(session.scalars(query.order_by(OperationRow.seq)))


def history_of(
    session: Session, ref: str, link_kinds: Sequence[str], limit: int
) -> list[tuple[datetime, str, str, str, str, str | None]]:
    """(run start, run id, kind, op ref, status, error) of the operations that concern a
    user, newest first: those on its ref, and the link operations (`link_kinds`) whose
    payload names it."""
    needle = f'%"{ref}"%'
    query = (
        select(RunRow.started_at, RunRow.id, OperationRow.kind, OperationRow.ref,
               OperationRow.status, OperationRow.error)
        .join(RunRow, RunRow.id == OperationRow.run_id)
        .where(
            or_(
                OperationRow.ref == ref,
                OperationRow.kind.in_(link_kinds)
                & sa_cast(OperationRow.payload, String).like(needle),
            )
        )
        .order_by(RunRow.started_at.desc(), OperationRow.seq.desc())
        .limit(limit)
    )  # fmt: skip
    return [
        (at, run, kind, op, status, error)
        for at, run, kind, op, status, error in session.execute(query)
    ]
