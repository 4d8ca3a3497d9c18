"""The one place that writes to Pluvo: applies a plan, journaling every operation.

Phases run in dependency order (groups, users, values, memberships, managers,
leavers). Within a phase the calls go out in batches through the Pluvo API; the
journal (sync.state.journal) marks each batch `started` immediately before its
request leaves, and each result lands as `done` or `failed` in the same transaction
as the state change it implies. A run killed at any point therefore leaves
`abandoned` entries whose effect is either in Pluvo but not in the store (the next
run's diff re-sends the idempotent upsert) or nowhere, and `skipped` entries that
never left; never a store ahead of Pluvo.

A user's extra values go in one call, which Pluvo refuses as a whole when one value
is wrong. Such a refusal is retried value by value (still under the operation's
`started` mark), so the good values land and only the refused one fails: the
operation ends `failed` with class `partial`, its error naming each refused value,
and the store records the values that landed, so the next diff plans the rest again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, overload

from sqlalchemy.orm import Session

from sync import stopping
from sync.core.plan import (
    PHASE_NAMES,
    AdoptUser,
    ArchiveUser,
    CreateGroup,
    CreateUser,
    DeactivateUser,
    ExtraValue,
    GroupLinks,
    Kind,
    Operation,
    Plan,
    RenameGroup,
    SetExtraValues,
    UserUpsert,
)
from sync.errors import ConflictError, FatalError, PluvoError, TransientError
from sync.pluvo.api import PluvoApi
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult
from sync.state import journal, write
from sync.state.journal import Entry, ErrorClass, Outcome
from sync.state.models import ManagerRow, MembershipRow
from sync.state.store import StateStore, now

log = logging.getLogger(__name__)

FLUSH_EVERY = 50  # results journaled per transaction; bounds what a kill can lose

ProgressHook = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Failure:
    seq: int
    kind: str
    ref: str
    error: str
    error_class: ErrorClass


@dataclass
class Execution:
    done: dict[str, int] = field(default_factory=dict)
    failed: list[Failure] = field(default_factory=list)
    skipped: int = 0
    aborted: str | None = None
    requests: int = 0
    seconds: float = 0.0

    @property
    def done_total(self) -> int:
        return sum(self.done.values())


def journal_plan(session: Session, run_id: str, plan: Plan) -> None:
    """Store the whole plan as `pending` before the first request is sent."""
    entries = (
        Entry(seq, op.phase, str(op.kind), op.ref, op.to_json())
        for seq, op in enumerate(plan.operations)
    )  # encoded chunk by chunk as they are stored: a first load has a million
    journal.record_plan(session, run_id, entries, now())


def settle_dead_runs(store: StateStore) -> list[str]:
    """Close what a killed run left open; returns the ids of the runs settled."""
    with store.session() as session, session.begin():
        return journal.settle_dead_runs(session, now())


def classify(error: PluvoError) -> ErrorClass:
    if isinstance(error, FatalError):
        return ErrorClass.FATAL
    if isinstance(error, TransientError):
        return ErrorClass.TRANSIENT
    return ErrorClass.RECORD


@dataclass(frozen=True)
class ValueSplit:
    """A SetExtraValues refused as a whole, then sent value by value: what landed and
    what was refused (with why). Carried as the operation's CallResult data."""

    landed: tuple[ExtraValue, ...]
    refused: tuple[tuple[ExtraValue, PluvoError], ...]

    def outcome(self) -> tuple[str | None, ErrorClass | None]:
        """The operation's error and class: partial when some values landed; a fatal
        error still stops the run; otherwise the first refusal's class."""
        if not self.refused:
            return None, None
        errors = [error for _, error in self.refused]
        total = len(self.landed) + len(self.refused)
        rest = "the others were set" if self.landed else "none was set"
        reasons = "; ".join(f"{v.category_ref}: {error}" for v, error in self.refused)
        text = f"{len(self.refused)} of {total} value(s) refused by Pluvo ({rest}): {reasons}"
        if any(isinstance(error, FatalError) for error in errors):
            return text, ErrorClass.FATAL
        if self.landed:
            return text, ErrorClass.PARTIAL
        return text, classify(errors[0])


def _splittable(op: Operation, result: CallResult) -> bool:
    """A user's values refused as a whole, with more than one value to try alone."""
    return (
        isinstance(op, SetExtraValues)
        and len(op.values) > 1
        and result.error is not None
        and classify(result.error) is ErrorClass.RECORD
    )


class Executor:
    def __init__(
        self,
        store: StateStore,
        api: PluvoApi,
        run_id: str,
        *,
        send_invite: bool = False,
        membership_fields: str = "ids",
        progress: ProgressHook | None = None,
    ) -> None:
        self.store = store
        self.api = api
        self.run_id = run_id
        self.send_invite = send_invite
        self.membership_fields = membership_fields
        self.progress = progress
        self.result = Execution()
        self._created_before: set[str] = set()
        self._group_names_sent: dict[str, str] = {}
        self._failed_users: set[str] = set()  # creations that failed this run
        self._failed_groups: set[str] = set()
        self._trimmed: dict[int, int] = {}  # id(op) → users left out of a membership batch
        self._verified_new: frozenset[str] = frozenset()

    async def execute(self, plan: Plan) -> Execution:
        started = time.monotonic()
        ops = plan.operations
        self._verified_new = plan.verified_new
        creates = [op.ref for op in ops if op.kind in (Kind.CREATE_USER, Kind.ADOPT_USER)]
        with self.store.session() as session:
            # Creations sent earlier that may have landed unrecorded: ours, not adopted.
            self._created_before = journal.sent_unanswered(session, str(Kind.CREATE_USER), creates)
            groups = [op.ref for op in ops if op.kind is Kind.CREATE_GROUP]
            sent = journal.sent_unanswered_payloads(session, str(Kind.CREATE_GROUP), groups)
            # The name Pluvo got for a group an earlier run created without learning so.
            self._group_names_sent = {ref: str(p.get("name", "")) for ref, p in sent.items()}
        seqs = {id(op): seq for seq, op in enumerate(ops)}
        for phase, phase_ops in plan.by_phase():
            stop = stopping.requested()
            if stop is not None and not self.result.aborted:
                self.result.aborted = stop
            if self.result.aborted:
                self.result.skipped += len(phase_ops)
                continue
            runnable = self._without_failed_basis(phase_ops, seqs)
            if runnable:
                await self._run_phase(phase, runnable, seqs)
            stop = stopping.requested()
            if stop is not None and not self.result.aborted:
                self.result.aborted = stop  # what did not leave is journaled skipped
        if self.result.aborted:
            with self.store.session() as session, session.begin():
                journal.skip_unsent(session, self.run_id, self.result.aborted, now())
        self.result.seconds = time.monotonic() - started
        return self.result

    def _without_failed_basis(
        self, ops: Sequence[Operation], seqs: dict[int, int]
    ) -> list[Operation]:
        """The phase's operations that still make sense after earlier phases' failures.

        A user whose creation failed gets no values or memberships, and a group whose
        creation failed no members or managers, this run: they would fail too (and cost
        requests). They are journaled skipped and planned again by the next run. A
        membership batch naming such users goes out without them, and says so.
        """
        keep: list[Operation] = []
        blocked: list[tuple[int, str]] = []
        for op in ops:
            if isinstance(op, SetExtraValues) and op.ref in self._failed_users:
                blocked.append((seqs[id(op)], f"user {op.ref} was not created this run"))
                continue
            if isinstance(op, GroupLinks) and op.adds:
                if op.ref in self._failed_groups:
                    blocked.append((seqs[id(op)], f"group {op.ref} was not created this run"))
                    continue
                users = tuple(u for u in op.users if u not in self._failed_users)
                if not users:
                    blocked.append((seqs[id(op)], "none of its users was created this run"))
                    continue
                if len(users) < len(op.users):
                    trimmed = replace(op, users=users)
                    seqs[id(trimmed)] = seqs[id(op)]
                    self._trimmed[id(trimmed)] = len(op.users) - len(users)
                    op = trimmed
            keep.append(op)
        if blocked:
            with self.store.session() as session, session.begin():
                for seq, reason in blocked:
                    journal.mark_skipped(
                        session, self.run_id, [seq], reason, now(), why=ErrorClass.BLOCKED
                    )
            self.result.skipped += len(blocked)
            log.warning("%d operation(s) not sent: what they need failed earlier", len(blocked))
        return keep

    async def _run_phase(self, phase: int, ops: Sequence[Operation], seqs: dict[int, int]) -> None:
        name = PHASE_NAMES[phase]
        calls = _Calls(
            ops,
            send_invite=self.send_invite,
            membership_fields="refs" if self.membership_fields == "refs" else "ids",
        )
        buffer: list[tuple[int, CallResult]] = []
        unsent: list[tuple[int, CallResult]] = []
        refused: list[tuple[int, CallResult]] = []  # to retry value by value
        sent: set[int] = set()
        stopping = False
        finished = 0
        failures_before = len(self.result.failed)

        def before_send(indexes: Sequence[int]) -> None:
            # Results already back are flushed first, so the journal's order is the
            # order of events, then the batch about to leave is marked started.
            flush()
            with self.store.session() as session, session.begin():
                journal.mark_started(
                    session, self.run_id, [seqs[id(ops[i])] for i in indexes], now()
                )
            sent.update(indexes)

        def flush() -> None:
            nonlocal finished
            if not buffer and not unsent:
                return
            with self.store.session() as session, session.begin():
                self._record_batch(session, [(ops[i], seqs[id(ops[i])], r) for i, r in buffer])
                if unsent:
                    # Answered without leaving: the run is stopping (a fatal error).
                    reason = str(unsent[0][1].error or "the run stopped before sending it")
                    seq_list = [seqs[id(ops[i])] for i, _ in unsent]
                    journal.mark_skipped(session, self.run_id, seq_list, reason, now())
                    self.result.skipped += len(unsent)
            finished += len(buffer)  # answered; what a stop kept back is not progress
            buffer.clear()
            unsent.clear()
            if self.progress:
                self.progress(name, finished, len(ops))

        def on_result(index: int, result: CallResult) -> None:
            nonlocal stopping
            stopping = stopping or isinstance(result.error, FatalError)
            if index in sent and _splittable(ops[index], result):
                refused.append((index, result))  # stays `started` until retried
                return
            (buffer if index in sent else unsent).append((index, result))
            if len(buffer) + len(unsent) >= FLUSH_EVERY:
                flush()

        log.info("phase %s: %d operation(s)", name, len(ops))
        try:
            await self.api.run_calls(
                calls, on_result=on_result, before_send=before_send, keep=False
            )
            if refused and not stopping:
                retried = await self._split_values([ops[i] for i, _ in refused])
                refused[:] = [
                    (i, CallResult(result.call, split))
                    for (i, result), split in zip(refused, retried, strict=True)
                ]
        finally:
            # A retry cut short leaves the whole refusal as the outcome: nothing of the
            # split is recorded, and the next run plans every value again.
            buffer.extend(refused)
            refused.clear()
            flush()
        phase_failures = self.result.failed[failures_before:]
        fatal = [f for f in phase_failures if f.error_class is ErrorClass.FATAL]
        if fatal:
            self.result.aborted = fatal[0].error
        elif (
            phase_failures
            and len(phase_failures) == len(ops)
            and all(f.error_class is ErrorClass.TRANSIENT for f in phase_failures)
        ):
            self.result.aborted = (
                f"every {name} operation failed with a transient error "
                f"({phase_failures[0].error}); stopping until Pluvo recovers"
            )

    async def _split_values(self, ops: Sequence[Operation]) -> list[ValueSplit]:
        """Send each value of these refused operations on its own, all in one batched
        run; values whose call is answered land, the others are refused with why."""
        singles = [
            (n, value)
            for n, op in enumerate(ops)
            if isinstance(op, SetExtraValues)
            for value in op.values
        ]
        calls = [
            SetExtraValues(ref=ops[n].ref, values=(value,)).to_call(send_invite=self.send_invite)
            for n, value in singles
        ]
        log.info("retrying %d refused user(s) value by value (%d call(s))", len(ops), len(calls))
        answers = await self.api.run_calls(calls)
        landed: list[list[ExtraValue]] = [[] for _ in ops]
        refused: list[list[tuple[ExtraValue, PluvoError]]] = [[] for _ in ops]
        for (n, value), answer in zip(singles, answers, strict=True):
            if answer.error is None:
                landed[n].append(value)
            else:
                refused[n].append((value, answer.error))
        return [
            ValueSplit(tuple(good), tuple(bad)) for good, bad in zip(landed, refused, strict=True)
        ]

    def _record_batch(
        self, session: Session, batch: list[tuple[Operation, int, CallResult]]
    ) -> None:
        """Journal outcomes and their state changes together, in the caller's transaction."""
        stamp = now()
        pending = _Changes()
        outcomes: list[Outcome] = []
        for op, seq, result in batch:
            error: str | None = None
            error_class: ErrorClass | None = None
            if isinstance(result.data, ValueSplit):
                split = result.data
                pending.values.append(
                    (op.ref, [(v.category_ref, v.category_type, v.value) for v in split.landed])
                )
                error, error_class = split.outcome()
            elif isinstance(result.error, ConflictError) and isinstance(op, CreateGroup):
                # Pluvo already has the group (made by hand, or by a run killed before
                # it could record it): take it over instead of failing forever. Its name
                # is the one an earlier run sent, if one did; otherwise it is unknown,
                # none is recorded, and the next diff renames it.
                pending.groups.append((op.ref, self._group_names_sent.get(op.ref, ""), None))
            elif result.error is not None:
                error, error_class = str(result.error), classify(result.error)
            else:
                try:
                    error = self._collect(pending, op, result.data)
                    error_class = ErrorClass.PARTIAL if error else None
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    error = f"unexpected answer from Pluvo: {exc.__class__.__name__}: {exc}"
                    error_class = ErrorClass.ANSWER
            left_out = self._trimmed.get(id(op), 0)
            if left_out and error is None:
                error = (
                    f"{left_out} user(s) not sent: their creation failed this run "
                    "(planned again by the next run)"
                )
                error_class = ErrorClass.PARTIAL
            if error is not None and isinstance(op, CreateUser | AdoptUser):
                self._failed_users.add(op.ref)
            if error is not None and isinstance(op, CreateGroup):
                self._failed_groups.add(op.ref)
            outcomes.append(Outcome(seq, error, error_class))
            if error is not None and error_class is not None:
                self.result.failed.append(Failure(seq, str(op.kind), op.ref, error, error_class))
                log.warning("%s %s failed: %s", op.kind, op.ref, error)
            else:
                self.result.done[str(op.kind)] = self.result.done.get(str(op.kind), 0) + 1
        pending.apply(session, stamp)
        journal.record_outcomes(session, self.run_id, outcomes, stamp)

    def _collect(self, pending: _Changes, op: Operation, data: Any) -> str | None:
        """Queue what Pluvo acknowledged; returns an error text for partial failures."""
        if isinstance(op, UserUpsert):
            user = (data or {}).get("user") or {}
            created = (
                bool(data.get("created"))
                or op.ref in self._created_before
                or op.ref in self._verified_new
            )
            pending.users.append((op.ref, op.fields.as_dict(), user.get("id"), created))
            return None
        if isinstance(op, ArchiveUser):
            body = data.get("response") if isinstance(data, dict) else None
            if body is not None and body.get("failedIds"):
                return "Pluvo did not archive the user (failedIds)"
            pending.leavers.append((op.ref, "archive"))
            return None
        if isinstance(op, DeactivateUser):
            pending.leavers.append((op.ref, "deactivate"))
            return None
        if isinstance(op, CreateGroup | RenameGroup):
            group = (data or {}).get("group") or {}
            pending.groups.append((op.ref, op.name, group.get("id")))
            return None
        if isinstance(op, SetExtraValues):
            pending.values.append(
                (op.ref, [(v.category_ref, v.category_type, v.value) for v in op.values])
            )
            return None
        if isinstance(op, GroupLinks):
            failed = _failed_refs(data)
            ok = [u for u in op.users if u not in failed]
            table = MembershipRow if op.noun == "member" else ManagerRow
            pending.pairs.append((table, op.ref, ok, op.adds))
            if failed:
                shown = ", ".join(sorted(failed)[:10])
                return f"{len(failed)} of {len(op.users)} user(s) refused by Pluvo: {shown}"
            return None
        raise TypeError(f"no outcome handling for {type(op).__name__}")


class _Calls(Sequence[Call]):
    """A phase's calls, each rendered when the client takes it: a million rendered
    calls (their GraphQL variables) beside the plan was most of a first load's memory."""

    def __init__(self, ops: Sequence[Operation], **how: Any) -> None:
        self.ops = ops
        self.how = how

    def __len__(self) -> int:
        return len(self.ops)

    @overload
    def __getitem__(self, index: int) -> Call: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Call]: ...

    def __getitem__(self, index: int | slice) -> Call | Sequence[Call]:
        if isinstance(index, slice):
            return [op.to_call(**self.how) for op in self.ops[index]]
        return self.ops[index].to_call(**self.how)


@dataclass
class _Changes:
    """State changes of one flushed batch, applied with a few statements, not one per op."""

    users: list[tuple[str, dict[str, str], str | None, bool]] = field(default_factory=list)
    leavers: list[tuple[str, str]] = field(default_factory=list)
    groups: list[tuple[str, str, str | None]] = field(default_factory=list)
    values: list[tuple[str, list[tuple[str, str, str | None]]]] = field(default_factory=list)
    pairs: list[write.Links] = field(default_factory=list)

    def apply(self, session: Session, stamp: datetime) -> None:
        write.record_users(session, self.users, stamp)
        for ref, action in self.leavers:
            write.record_leaver(session, ref, action, stamp)
        for ref, name, pluvo_id in self.groups:
            write.record_group(session, ref, name, pluvo_id, "created")
        write.record_values(session, self.values)
        write.record_links(session, self.pairs)


def _failed_refs(data: Any) -> set[str]:
    if not isinstance(data, dict):
        return set()
    response = data.get("response")
    body: dict[str, Any] = response if isinstance(response, dict) else data
    failed = body.get("failedIds") or body.get("failedRefs") or []
    return {str(f) for f in failed}
