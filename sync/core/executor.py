"""The one place that writes to Pluvo: applies a plan, journaling every operation.

The journal is a state machine written before the call: the whole plan is stored
`pending` with its run id before anything is sent, a phase is marked `started`
before its requests go out, and each result lands as `done` or `failed` in the same
transaction as the state change it implies. A run killed at any point therefore
leaves `started` entries whose effect is either in Pluvo but not in the store (the
next run's diff re-sends the idempotent upsert) or nowhere; never the reverse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from sync.core.plan import PHASE_NAMES, USER_UPSERTS, Kind, Operation, Plan
from sync.errors import FatalError, PluvoError, RecordError, TransientError
from sync.pluvo.results import CallResult
from sync.state import write
from sync.state.models import ManagerRow, MembershipRow, OperationRow
from sync.state.store import StateStore, now

log = logging.getLogger(__name__)

FLUSH_EVERY = 50  # results journaled per transaction; bounds what a kill can lose

ProgressHook = Callable[[str, int, int], None]


@dataclass
class Failure:
    seq: int
    kind: str
    ref: str
    error: str
    transient: bool = False


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
    stamp = now()
    rows = [
        {
            "run_id": run_id,
            "seq": seq,
            "phase": op.phase,
            "kind": str(op.kind),
            "ref": op.ref,
            "payload": op.to_json(),
            "status": "pending",
            "error": None,
            "updated_at": stamp,
        }
        for seq, op in enumerate(plan.operations)
    ]
    for start in range(0, len(rows), 5000):
        session.execute(insert(OperationRow), rows[start : start + 5000])


def settle_dead_runs(store: StateStore) -> list[str]:
    """Close what a killed run left open; returns the ids of the runs settled.

    No Pluvo lookup is needed: a `started` operation's effect is either unrecorded
    (and the diff plans it again, idempotently) or recorded with its `done` mark.
    """
    from sync.state.models import RunRow

    with store.session() as session, session.begin():
        dead = list(session.scalars(select(RunRow.id).where(RunRow.status == "running")))
        if not dead:
            return []
        session.execute(
            update(OperationRow)
            .where(OperationRow.run_id.in_(dead), OperationRow.status.in_(["pending", "started"]))
            .values(
                status="abandoned",
                error="the run was killed before an answer was recorded",
                updated_at=now(),
            )
        )
        session.execute(
            update(RunRow)
            .where(RunRow.id.in_(dead))
            .values(
                status="aborted",
                finished_at=now(),
                exit_code=1,
                message="the process ended without finishing the run",
            )
        )
    return dead


def _created_before(session: Session, refs: list[str]) -> set[str]:
    """Refs whose creation a dead run sent but never recorded: still ours, not adopted."""
    found: set[str] = set()
    for start in range(0, len(refs), 900):
        chunk = refs[start : start + 900]
        found.update(
            session.scalars(
                select(OperationRow.ref).where(
                    OperationRow.kind == str(Kind.CREATE_USER),
                    OperationRow.status == "abandoned",
                    OperationRow.ref.in_(chunk),
                )
            )
        )
    return found


class Executor:
    def __init__(
        self,
        store: StateStore,
        client: Any,
        run_id: str,
        *,
        send_invite: bool = False,
        membership_fields: str = "ids",
        progress: ProgressHook | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.run_id = run_id
        self.send_invite = send_invite
        self.membership_fields = membership_fields
        self.progress = progress
        self.result = Execution()
        self._created_before: set[str] = set()
        self._verified_new: set[str] = set()

    async def execute(self, plan: Plan) -> Execution:
        started = time.monotonic()
        ops = plan.operations
        self._verified_new = set(plan.verified_new)
        creates = [op.ref for op in ops if op.kind in (Kind.CREATE_USER, Kind.ADOPT_USER)]
        with self.store.session() as session:
            self._created_before = _created_before(session, creates)
        seqs = {id(op): seq for seq, op in enumerate(ops)}
        for phase, phase_ops in plan.by_phase():
            if self.result.aborted:
                self.result.skipped += len(phase_ops)
                continue
            await self._run_phase(phase, phase_ops, seqs)
        if self.result.aborted:
            with self.store.session() as session, session.begin():
                session.execute(
                    update(OperationRow)
                    .where(OperationRow.run_id == self.run_id, OperationRow.status == "pending")
                    .values(status="skipped", error=self.result.aborted, updated_at=now())
                )
        self.result.seconds = time.monotonic() - started
        return self.result

    async def _run_phase(self, phase: int, ops: Sequence[Operation], seqs: dict[int, int]) -> None:
        name = PHASE_NAMES[phase]
        phase_seqs = [seqs[id(op)] for op in ops]
        with self.store.session() as session, session.begin():
            for start in range(0, len(phase_seqs), 900):
                session.execute(
                    update(OperationRow)
                    .where(
                        OperationRow.run_id == self.run_id,
                        OperationRow.seq.in_(phase_seqs[start : start + 900]),
                    )
                    .values(status="started", updated_at=now())
                )
        calls = [
            op.to_call(send_invite=self.send_invite, membership_fields=self.membership_fields)
            for op in ops
        ]
        buffer: list[tuple[int, CallResult]] = []
        finished = 0
        failures_before = len(self.result.failed)

        def flush() -> None:
            nonlocal finished
            if not buffer:
                return
            with self.store.session() as session, session.begin():
                self._record_batch(session, [(ops[i], seqs[id(ops[i])], r) for i, r in buffer])
            finished += len(buffer)
            buffer.clear()
            if self.progress:
                self.progress(name, finished, len(ops))

        def on_result(index: int, result: CallResult) -> None:
            buffer.append((index, result))
            if len(buffer) >= FLUSH_EVERY:
                flush()

        log.info("phase %s: %d operation(s)", name, len(ops))
        try:
            await self.client.run_calls(calls, on_result=on_result)
        finally:
            flush()
        phase_failures = self.result.failed[failures_before:]
        fatal = [f for f in phase_failures if not f.transient and f.error.startswith("fatal:")]
        if fatal:
            self.result.aborted = fatal[0].error.removeprefix("fatal: ")
        elif (
            phase_failures
            and len(phase_failures) == len(ops)
            and all(f.transient for f in phase_failures)
        ):
            self.result.aborted = (
                f"every {name} operation failed with a transient error "
                f"({phase_failures[0].error}); stopping until Pluvo recovers"
            )

    def _record_batch(
        self, session: Session, batch: list[tuple[Operation, int, CallResult]]
    ) -> None:
        """Journal outcomes and their state changes together, in the caller's transaction."""
        stamp = now()
        pending = _Changes()
        outcomes: list[dict[str, Any]] = []
        for op, seq, result in batch:
            error: str | None = None
            transient = False
            if result.error is not None and _group_exists(op, result.error):
                # Pluvo already has the group (made by hand, or by a run killed before
                # it could record it): take it over instead of failing forever.
                pending.groups.append((op.ref, op.data["name"], None))
            elif result.error is not None:
                error, transient = _describe(result.error)
            else:
                try:
                    error = self._collect(pending, op, result.data)
                except (KeyError, TypeError, ValueError, AttributeError) as exc:
                    error = f"unexpected answer from Pluvo: {exc.__class__.__name__}: {exc}"
            outcomes.append({"b_seq": seq, "status": "failed" if error else "done", "error": error})
            if error:
                self.result.failed.append(Failure(seq, str(op.kind), op.ref, error, transient))
                log.warning("%s %s failed: %s", op.kind, op.ref, error)
            else:
                self.result.done[str(op.kind)] = self.result.done.get(str(op.kind), 0) + 1
        pending.apply(session, stamp)
        journal = cast(Table, OperationRow.__table__)
        session.execute(
            update(journal)
            .where(journal.c.run_id == self.run_id, journal.c.seq == bindparam("b_seq"))
            .values(status=bindparam("status"), error=bindparam("error"), updated_at=stamp),
            outcomes,
        )

    def _collect(self, pending: _Changes, op: Operation, data: Any) -> str | None:
        """Queue what Pluvo acknowledged; returns an error text for partial failures."""
        kind = op.kind
        if kind in USER_UPSERTS:
            user = (data or {}).get("user") or {}
            created = (
                bool(data.get("created"))
                or op.ref in self._created_before
                or op.ref in self._verified_new
            )
            pending.users.append((op.ref, op.data["fields"], user.get("id"), created))
            return None
        if kind is Kind.ARCHIVE_USER:
            body = data.get("response") if isinstance(data, dict) else None
            if body is not None and body.get("failedIds"):
                return "Pluvo did not archive the user (failedIds)"
            pending.leavers.append((op.ref, "archive"))
            return None
        if kind is Kind.DEACTIVATE_USER:
            pending.leavers.append((op.ref, "deactivate"))
            return None
        if kind in (Kind.CREATE_GROUP, Kind.UPDATE_GROUP):
            group = (data or {}).get("group") or {}
            pending.groups.append((op.ref, op.data["name"], group.get("id")))
            return None
        if kind is Kind.SET_VALUES:
            pending.values.append((op.ref, [tuple(v) for v in op.data["values"]]))
            return None
        users = list(op.data["users"])
        failed = _failed_refs(data)
        ok = [u for u in users if u not in failed]
        table = MembershipRow if kind in (Kind.ADD_MEMBERS, Kind.REMOVE_MEMBERS) else ManagerRow
        add = kind in (Kind.ADD_MEMBERS, Kind.ADD_MANAGERS)
        pending.pairs.append((table, op.ref, ok, add))
        if failed:
            shown = ", ".join(sorted(failed)[:10])
            return f"{len(failed)} of {len(users)} user(s) refused by Pluvo: {shown}"
        return None


@dataclass
class _Changes:
    """State changes of one flushed batch, applied with a few statements, not one per op."""

    users: list[tuple[str, Any, str | None, bool]] = field(default_factory=list)
    leavers: list[tuple[str, str]] = field(default_factory=list)
    groups: list[tuple[str, str, str | None]] = field(default_factory=list)
    values: list[tuple[str, list[Any]]] = field(default_factory=list)
    pairs: list[tuple[type[MembershipRow] | type[ManagerRow], str, list[str], bool]] = field(
        default_factory=list
    )

    def apply(self, session: Session, stamp: datetime) -> None:
        write.record_users(session, self.users, stamp)
        for ref, action in self.leavers:
            write.record_leaver(session, ref, action, stamp)
        for ref, name, pluvo_id in self.groups:
            write.record_group(session, ref, name, pluvo_id, "created")
        write.record_values(session, self.values)
        for table, group_ref, users, add in self.pairs:
            write.record_pairs(session, table, group_ref, users, add=add)


def _group_exists(op: Operation, error: PluvoError) -> bool:
    if op.kind is not Kind.CREATE_GROUP or not isinstance(error, RecordError):
        return False
    return (error.code or "").lower() == "conflict" or "already exists" in str(error)


def _failed_refs(data: Any) -> set[str]:
    if not isinstance(data, dict):
        return set()
    response = data.get("response")
    body: dict[str, Any] = response if isinstance(response, dict) else data
    failed = body.get("failedIds") or body.get("failedRefs") or []
    return {str(f) for f in failed}


def _describe(error: PluvoError) -> tuple[str, bool]:
    if isinstance(error, FatalError):
        return f"fatal: {error}", False
    if isinstance(error, TransientError):
        return f"transient: {error}", True
    if isinstance(error, RecordError):
        return str(error), False
    return str(error), False
