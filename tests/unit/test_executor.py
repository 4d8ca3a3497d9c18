"""The executor's failure paths: a plan from the diff, applied to an in-memory Pluvo that
fails exactly where a test aims (tests/support/fake_pluvo.py).

Each test builds its own state store (SQLite) and Pluvo, plans with `diff()` and checks
what sync/core/executor.py promises: per-item refusals fail their operation and keep the
refused users out of the store, so the next diff plans them again; errors are classified
by type; a fatal error, or a phase lost entirely to transient errors, stops the run and
journals what never left as `skipped`; the next run converges.

Every execution is also held to the journal's invariants (`check_run`): each operation
ends in a final state; each call found its own entry `started` at the moment it left
(read from the journal by the fake as it sends); exactly the operations that left are
`done` or `failed`, the rest `skipped`; and a `done` operation has its change in the
store while a `failed` one does not.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from sync.config import Config, LeaverConfig, parse_config
from sync.core.apply import apply_plan
from sync.core.executor import Execution, Executor, journal_plan
from sync.core.lifecycle import Run
from sync.core.plan import (
    ArchiveUser,
    CreateGroup,
    DeactivateUser,
    GroupLinks,
    Kind,
    Operation,
    Plan,
    RenameGroup,
    SetExtraValues,
    UserUpsert,
)
from sync.core.report import Report
from sync.errors import ExitCode, FatalError
from sync.pluvo.ops import Call
from sync.sandbox.store import Seed
from sync.state import journal
from sync.state.journal import ErrorClass, OpStatus, RunStatus
from sync.state.models import OperationRow, RunRow
from sync.state.read import Owned, read_owned, read_state
from sync.state.store import StateStore, now
from tests.support.diffing import Person, desired_state, plan_for
from tests.support.fake_pluvo import FakePluvo, Fault
from tests.support.state_store import fresh_store

FINAL = frozenset({OpStatus.DONE, OpStatus.FAILED, OpStatus.SKIPPED})
SENT = frozenset({OpStatus.DONE, OpStatus.FAILED})


# ---------------------------------------------------------------- a store, a Pluvo, runs


@dataclass
class Applied:
    """One execution, the journal it left and what was seen while it ran."""

    run_id: str
    plan: Plan
    execution: Execution
    rows: list[OperationRow]
    """The journal afterwards, in plan order."""
    sent: list[int]
    """Plan positions (seqs) of the calls that left, in the order they left."""
    at_send: dict[int, dict[int, OpStatus]]
    """seq → the run's journal (seq → status) at the moment that call left."""
    announced: list[tuple[int, ...]]
    batches: list[tuple[Call, ...]]

    def status(self, kind: Kind, ref: str) -> OpStatus:
        (row,) = [r for r in self.rows if r.kind == kind and r.ref == ref]
        return OpStatus(row.status)

    def seq(self, kind: Kind, ref: str) -> int:
        (row,) = [r for r in self.rows if r.kind == kind and r.ref == ref]
        return row.seq

    def failures(self) -> list[tuple[str, str, ErrorClass]]:
        return [
            (r.kind, r.ref, ErrorClass(r.error_class)) for r in self.rows if r.status == "failed"
        ]

    def error(self, kind: Kind, ref: str) -> str:
        (row,) = [r for r in self.rows if r.kind == kind and r.ref == ref]
        return row.error or ""

    def with_status(self, status: OpStatus) -> list[tuple[str, str]]:
        return [(r.kind, r.ref) for r in self.rows if r.status == status]


@dataclass
class Sync:
    """A state store and a fake Pluvo, planned with the diff and applied by the executor."""

    store: StateStore
    fake: FakePluvo
    leavers: LeaverConfig = field(default_factory=lambda: LeaverConfig(grace_runs=0))
    membership_fields: str = "ids"
    runs: int = 0

    def plan(self, *persons: Person) -> Plan:
        return plan_for(desired_state(*persons), read_state(self.store.engine), self.leavers)

    def apply(self, plan: Plan) -> Applied:
        """Journal the plan, execute it, check the invariants; returns what happened."""
        self.runs += 1
        run_id = f"run-{self.runs}-{uuid.uuid4().hex[:6]}"
        self.store.start_run(run_id, "run")
        with self.store.session() as session, session.begin():
            journal_plan(session, run_id, plan)
        fields = "refs" if self.membership_fields == "refs" else "ids"
        expected = [
            (op.to_call(send_invite=False, membership_fields=fields), seq)
            for seq, op in enumerate(plan)
        ]

        def seq_of(call: Call) -> int:
            exact = [s for c, s in expected if c == call]
            if exact:
                (seq,) = exact
                return seq
            # A membership batch sent without users whose creation failed this run.
            (seq,) = [s for c, s in expected if _trimmed_from(call, c)]
            return seq

        at_send: dict[int, dict[int, OpStatus]] = {}

        def observe(call: Call) -> bool:
            # A rule that never fires: the fake evaluates it as each call is sent (first,
            # being a fatal-kind rule at the head of the list), so the journal read here
            # is the journal at the moment that call left.
            with self.store.session() as session:
                at_send[seq_of(call)] = journal.statuses(session, run_id)
            return False

        observer = self.fake.inject(Fault.fatal(), where=observe, times=None)
        self.fake.rules.remove(observer)
        self.fake.rules.insert(0, observer)
        first, announced, batches = (
            len(self.fake.calls),
            len(self.fake.announced),
            len(self.fake.batches),
        )
        executor = Executor(self.store, self.fake, run_id, membership_fields=self.membership_fields)
        try:
            execution = asyncio.run(executor.execute(plan))
        finally:
            self.fake.rules.remove(observer)
        with self.store.session() as session:
            _, rows = journal.run_operations(session, run_id)
        status = RunStatus.FAILED if execution.aborted else RunStatus.SUCCEEDED
        self.store.finish_run(run_id, status=status, exit_code=0, summary={}, source_rows={})
        applied = Applied(
            run_id,
            plan,
            execution,
            rows,
            [seq_of(c) for c in self.fake.calls[first:]],
            at_send,
            self.fake.announced[announced:],
            self.fake.batches[batches:],
        )
        check_run(applied, read_owned(self.store.engine))
        return applied

    def converge(self, *persons: Person, runs: int = 1) -> None:
        """Apply what is left to do, in at most `runs` runs without a failure; then the
        diff has nothing more to plan and Pluvo holds what HR says."""
        for _ in range(runs):
            plan = self.plan(*persons)
            if not len(plan):
                break
            assert self.apply(plan).failures() == []
        assert list(self.plan(*persons)) == [], "converged"
        in_pluvo(self.fake, persons)

    def owned(self) -> Owned:
        return read_owned(self.store.engine)

    def pairs(self, relation: str, group: str) -> set[str]:
        frame = getattr(self.owned(), relation)
        return set(frame.loc[frame["group_ref"] == group, "user_ref"])


@pytest.fixture
def make_sync(migrated_template: Path, tmp_path: Path) -> Iterator[Callable[..., Sync]]:
    made: list[Sync] = []

    def make(*, batch_size: int = 25, **options: Any) -> Sync:
        sync = Sync(
            fresh_store(migrated_template, tmp_path), FakePluvo(batch_size=batch_size), **options
        )
        made.append(sync)
        return sync

    yield make
    for sync in made:
        sync.store.close()


# ---------------------------------------------------------------- the invariants


def check_run(run: Applied, owned: Owned) -> None:
    rows, plan, execution = run.rows, run.plan, run.execution
    statuses = [OpStatus(r.status) for r in rows]
    assert [r.seq for r in rows] == list(range(len(plan))), "the whole plan is journaled"
    assert set(statuses) <= FINAL, f"every operation ends final: {statuses}"

    # Started before sent, and sent exactly what the journal says left.
    assert len(run.sent) == len(set(run.sent)), "no call is sent twice"
    left = {seq for seq, status in enumerate(statuses) if status in SENT}
    assert set(run.sent) == left, "done or failed exactly when the call left"
    assert [len(a) for a in run.announced] == [len(b) for b in run.batches]
    for seq, journal_then in run.at_send.items():
        assert journal_then[seq] is OpStatus.STARTED, (
            f"{plan.operations[seq].description} left while {journal_then[seq]}"
        )
    for seq in set(run.sent) - set(run.at_send):
        # Only the calls behind a fatal one in its refused chunk go unobserved.
        assert rows[seq].error_class == ErrorClass.FATAL

    # The journal and the execution tell the same story.
    failed = sorted((r.seq, ErrorClass(r.error_class)) for r in rows if r.status == "failed")
    assert sorted((f.seq, f.error_class) for f in execution.failed) == failed
    assert execution.done_total == statuses.count(OpStatus.DONE)
    assert execution.skipped == statuses.count(OpStatus.SKIPPED)
    skipped = [r for r in rows if r.status == "skipped"]
    # Never sent: because the run stopped, or because the user or group an operation
    # needs failed earlier in this run (and then its failure is in the journal).
    stopped = [r for r in skipped if r.error_class == ErrorClass.STOPPED]
    blocked = [r for r in skipped if r.error_class == ErrorClass.BLOCKED]
    assert len(stopped) + len(blocked) == len(skipped)
    assert all(r.error == execution.aborted for r in stopped)
    if not execution.aborted:
        assert stopped == []
    failed_refs = {r.ref for r in rows if r.status == "failed"}
    assert all(r.ref in failed_refs for r in blocked), "blocked only by a failure"

    # The store holds a change exactly when Pluvo acknowledged it.
    for row, op in zip(rows, plan, strict=True):
        if row.status == "done":
            assert reflects(owned, op), f"done but not in the store: {op.description}"
        elif row.status == "failed":
            assert not reflects(owned, op), f"failed but in the store: {op.description}"


def _trimmed_from(sent: Call, planned: Call) -> bool:
    """Is `sent` the call `planned` with some of its users left out?"""
    if sent.field != planned.field:
        return False
    key = "userRefs" if "userRefs" in planned.args else "userIds"
    rest = {k: v for k, v in planned.args.items() if k != key}
    return {k: v for k, v in sent.args.items() if k != key} == rest and set(
        sent.args.get(key, ())
    ) < set(planned.args.get(key, ()))


def reflects(owned: Owned, op: Operation) -> bool:
    """Does the store hold the change `op` makes?"""
    users = owned.users
    if isinstance(op, UserUpsert | ArchiveUser | DeactivateUser) and op.ref not in users.index:
        return False
    if isinstance(op, UserUpsert):
        row = users.loc[op.ref]
        same = all(str(row[f]) == value for f, value in op.fields.as_dict().items())
        return same and not row["archived"] and pd.isna(row["left_action"])
    if isinstance(op, ArchiveUser):
        row = users.loc[op.ref]
        return bool(row["archived"]) and row["left_action"] == "archive"
    if isinstance(op, DeactivateUser):
        return bool(users.at[op.ref, "left_action"] == "deactivate")
    if isinstance(op, CreateGroup | RenameGroup):
        if op.ref not in owned.groups.index:
            return False
        # A group taken over after a conflict is recorded without a name (Pluvo's is
        # unknown), so that the next diff renames it.
        taken_over = isinstance(op, CreateGroup) and owned.groups.at[op.ref, "name"] == ""
        return taken_over or owned.groups.at[op.ref, "name"] == op.name
    if isinstance(op, SetExtraValues):
        values = owned.extra_values
        mine = values[values["user_ref"] == op.ref]
        stored = dict(zip(mine["category_ref"], mine["value"], strict=True))
        return all(stored.get(v.category_ref) == v.value for v in op.values)
    if isinstance(op, GroupLinks):
        frame = owned.memberships if op.noun == "member" else owned.managers
        pairs = set(zip(frame["group_ref"], frame["user_ref"], strict=True))
        wanted = {(op.ref, user) for user in op.users}
        return wanted <= pairs if op.adds else not wanted & pairs
    raise TypeError(type(op).__name__)


def in_pluvo(fake: FakePluvo, persons: Sequence[Person]) -> None:
    """Pluvo holds what HR says: the users, their fields, groups, managers and values."""
    for person in persons:
        user = fake.user(person.ref)
        assert user is not None, person.ref
        assert (user["name"], user["email"]) == (person.fields()["name"], person.fields()["email"])
        assert (user["archived"], user["isActive"]) == (False, True)
        assert fake.extra(person.ref) == dict(person.extras)
    active = {ref for ref, user in fake.users().items() if not user["archived"]}
    for group in {g for p in persons for g in (*p.groups, *p.manages)}:
        assert fake.members(group) & active == {p.ref for p in persons if group in p.groups}
        assert fake.managers(group) & active == {p.ref for p in persons if group in p.manages}


def team(*refs: str, group: str = "G1") -> list[Person]:
    return [Person(ref, groups=(group,)) for ref in refs]


def shape(plan: Plan) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(op.kind, op.ref, getattr(op, "users", ())) for op in plan]


# ---------------------------------------------------------------- per-item refusals


@pytest.mark.parametrize(
    ("field", "kind", "fields"),
    [
        ("addUsersToGroup", Kind.ADD_MEMBERS, "ids"),
        ("addUsersToGroup", Kind.ADD_MEMBERS, "refs"),
        ("addManagersToGroup", Kind.ADD_MANAGERS, "ids"),
    ],
)
def test_refused_users_fail_their_operation_and_are_planned_again(
    make_sync: Callable[..., Sync], field: str, kind: Kind, fields: str
) -> None:
    sync = make_sync(membership_fields=fields)
    relation = "memberships" if kind is Kind.ADD_MEMBERS else "managers"
    if kind is Kind.ADD_MEMBERS:
        people = team("E1", "E2", "E3")
    else:
        people = [Person(ref, manages=("G1",)) for ref in ("E1", "E2", "E3")]
    sync.fake.inject(Fault.failed_items("E2"), field=field, ref="G1")

    run = sync.apply(sync.plan(*people))

    assert run.failures() == [(kind, "G1", ErrorClass.PARTIAL)]
    assert "E2" in run.error(kind, "G1")
    assert sync.pairs(relation, "G1") == {"E1", "E3"}, "only the acknowledged users"
    live = sync.fake.members if kind is Kind.ADD_MEMBERS else sync.fake.managers
    assert live("G1") == {"E1", "E3"}
    again = sync.plan(*people)
    assert shape(again) == [(kind, "G1", ("E2",))]
    sync.converge(*people)


def test_a_refused_removal_keeps_the_membership_owned(make_sync: Callable[..., Sync]) -> None:
    sync = make_sync()
    before = [*team("E1", "E2"), Person("E3", groups=("G2",))]
    sync.converge(*before)
    after = [Person("E1", groups=("G1",)), Person("E2", groups=("G2",)), before[2]]
    sync.fake.inject(Fault.failed_items("E2"), field="removeUsersFromGroup", ref="G1")

    run = sync.apply(sync.plan(*after))

    assert run.failures() == [(Kind.REMOVE_MEMBERS, "G1", ErrorClass.PARTIAL)]
    assert run.status(Kind.ADD_MEMBERS, "G2") is OpStatus.DONE
    assert sync.pairs("memberships", "G1") == {"E1", "E2"}, "still ours: Pluvo kept it"
    assert sync.fake.members("G1") == {"E1", "E2"}
    assert shape(sync.plan(*after)) == [(Kind.REMOVE_MEMBERS, "G1", ("E2",))]
    sync.converge(*after)


def test_a_refused_bulk_archive_leaves_the_leaver_to_the_next_run(
    make_sync: Callable[..., Sync],
) -> None:
    sync = make_sync(leavers=LeaverConfig(archive_method="bulk", grace_runs=0))
    people = team("E1", "E2", "E3")
    sync.converge(*people)
    ids = {ref: (sync.fake.user(ref) or {})["id"] for ref in ("E2", "E3")}
    plan = sync.plan(people[0])
    assert [(op.kind, op.ref, op.method, op.pluvo_id) for op in plan.leavers()] == [
        (Kind.ARCHIVE_USER, "E2", "bulk", ids["E2"]),
        (Kind.ARCHIVE_USER, "E3", "bulk", ids["E3"]),
    ]
    sync.fake.inject(
        Fault.failed_items(ids["E2"]),
        field="archiveUsers",
        where=lambda c: ids["E2"] in c.args["ids"],
    )

    run = sync.apply(plan)

    assert run.failures() == [(Kind.ARCHIVE_USER, "E2", ErrorClass.PARTIAL)]
    assert [c.field for c in sync.fake.calls[-2:]] == ["archiveUsers", "archiveUsers"]
    assert ((sync.fake.user("E2") or {})["archived"], (sync.fake.user("E3") or {})["archived"]) == (
        False,
        True,
    )
    left = sync.owned().users["left_action"]
    assert pd.isna(left["E2"])
    assert left["E3"] == "archive"
    assert shape(sync.plan(people[0])) == [(Kind.ARCHIVE_USER, "E2", ())]
    sync.converge(people[0])
    assert (sync.fake.user("E2") or {})["archived"] is True


# ---------------------------------------------------------------- errors on one call


def test_a_refused_user_fails_alone(make_sync: Callable[..., Sync]) -> None:
    sync = make_sync()
    people = [
        Person(f"E{i}", groups=("G1",), extras={"job_title": f"Title {i}"}) for i in (1, 2, 3)
    ]
    sync.fake.inject(
        Fault.record("InvalidInput", "email: not a valid address"),
        field="updateOrCreateUser",
        ref="E2",
    )

    run = sync.apply(sync.plan(*people))

    assert run.failures() == [
        (Kind.CREATE_USER, "E2", ErrorClass.RECORD),
        # The membership batch goes out without E2, and says so; nothing else fails.
        (Kind.ADD_MEMBERS, "G1", ErrorClass.PARTIAL),
    ]
    # What needs E2 is not sent at all this run.
    assert run.with_status(OpStatus.SKIPPED) == [(Kind.SET_VALUES, "E2")]
    assert "user E2 was not created this run" in run.error(Kind.SET_VALUES, "E2")
    assert "1 user(s) not sent" in run.error(Kind.ADD_MEMBERS, "G1")
    assert [c for c in sync.fake.calls if c.field == "updateExtraCategoryValues"
            and "E2" in str(c.args)] == []  # fmt: skip
    assert "not a valid address" in run.error(Kind.CREATE_USER, "E2")
    assert run.execution.aborted is None
    assert run.status(Kind.CREATE_USER, "E1") is run.status(Kind.CREATE_USER, "E3") is OpStatus.DONE
    owned = sync.owned()
    assert list(owned.users.index.sort_values()) == ["E1", "E3"]
    assert "E2" not in set(owned.extra_values["user_ref"]) | set(owned.memberships["user_ref"])
    assert sync.fake.user("E2") is None
    assert shape(sync.plan(*people)) == [
        (Kind.CREATE_USER, "E2", ()),
        (Kind.SET_VALUES, "E2", ()),
        (Kind.ADD_MEMBERS, "G1", ("E2",)),
    ]
    sync.converge(*people)


def test_a_transient_error_fails_one_update_and_the_run_goes_on(
    make_sync: Callable[..., Sync],
) -> None:
    sync = make_sync(batch_size=1)  # a transient failure is its request's: one call each
    sync.converge(*team("E1", "E2", "E3"))
    renamed = [Person(ref, name=f"New {ref}", groups=("G1",)) for ref in ("E1", "E2", "E3")]
    sync.fake.inject(Fault.transient(), field="updateOrCreateUser", ref="E2")

    run = sync.apply(sync.plan(*renamed))

    assert run.failures() == [(Kind.UPDATE_USER, "E2", ErrorClass.TRANSIENT)]
    assert run.execution.aborted is None
    assert run.with_status(OpStatus.DONE) == [(Kind.UPDATE_USER, "E1"), (Kind.UPDATE_USER, "E3")]
    assert sync.owned().users.at["E2", "name"] == "Person E2", "the store is not ahead of Pluvo"
    assert (sync.fake.user("E2") or {})["name"] == "Person E2"
    assert shape(sync.plan(*renamed)) == [(Kind.UPDATE_USER, "E2", ())]
    sync.converge(*renamed)


# ---------------------------------------------------------------- stopping the run


@pytest.mark.parametrize(
    ("second", "stops"),
    [
        (Fault.transient(), True),
        (Fault.record("InvalidInput", "name too long"), False),
        (None, False),
    ],
    ids=["all-transient", "transient-and-record", "transient-and-ok"],
)
def test_a_phase_lost_to_transient_errors_stops_the_run(
    make_sync: Callable[..., Sync], second: Fault | None, stops: bool
) -> None:
    sync = make_sync(batch_size=1)  # each creation its own request, failing on its own
    people = [Person("E1", groups=("G1",)), Person("E2", groups=("G2",))]
    sync.fake.inject(Fault.transient(), field="createGroup", ref="G1")
    if second is not None:
        sync.fake.inject(second, field="createGroup", ref="G2")

    run = sync.apply(sync.plan(*people))

    groups = [(Kind.CREATE_GROUP, "G1"), (Kind.CREATE_GROUP, "G2")]
    if stops:
        assert run.failures() == [(*g, ErrorClass.TRANSIENT) for g in groups]
        assert (run.execution.aborted or "").startswith(
            "every groups operation failed with a transient error"
        )
        assert [c.field for c in sync.fake.calls] == ["createGroup", "createGroup"]
        assert run.with_status(OpStatus.SKIPPED) == [
            (Kind.CREATE_USER, "E1"),
            (Kind.CREATE_USER, "E2"),
            (Kind.ADD_MEMBERS, "G1"),
            (Kind.ADD_MEMBERS, "G2"),
        ]
        assert len(sync.owned().users) == 0
    else:
        assert run.execution.aborted is None
        assert run.status(Kind.CREATE_USER, "E1") is OpStatus.DONE
        assert run.status(Kind.ADD_MEMBERS, "G1") is OpStatus.SKIPPED  # no such group yet
    sync.converge(*people)


def test_a_fatal_error_stops_the_run_and_skips_what_never_left(
    make_sync: Callable[..., Sync],
) -> None:
    sync = make_sync(batch_size=2)
    people = team("E1", "E2", "E3", "E4", "E5", "E6")
    sync.fake.inject(Fault.fatal("credentials revoked"), field="updateOrCreateUser", ref="E3")

    run = sync.apply(sync.plan(*people))

    assert run.execution.aborted == (
        "mutation updateOrCreateUser x2: Pluvo rejected the document "
        "(Injected: credentials revoked)"
    )
    creations = {ref: run.status(Kind.CREATE_USER, ref) for ref in ("E1", "E2", "E3", "E4")}
    assert creations == {
        "E1": OpStatus.DONE,
        "E2": OpStatus.DONE,
        "E3": OpStatus.FAILED,  # its chunk left and was refused
        "E4": OpStatus.FAILED,
    }
    assert run.failures() == [
        (Kind.CREATE_USER, "E3", ErrorClass.FATAL),
        (Kind.CREATE_USER, "E4", ErrorClass.FATAL),
    ]
    assert run.with_status(OpStatus.SKIPPED) == [
        (Kind.CREATE_USER, "E5"),
        (Kind.CREATE_USER, "E6"),
        (Kind.ADD_MEMBERS, "G1"),
    ]
    # The unsent were never announced, never started: pending → skipped directly.
    assert run.announced == [(0,), (0, 1), (2, 3)]
    unsent = {run.seq(Kind.CREATE_USER, "E5"), run.seq(Kind.CREATE_USER, "E6")}
    assert not unsent & set(run.sent)
    assert all(run.at_send[s][u] is OpStatus.PENDING for s in run.at_send for u in unsent)
    assert set(sync.owned().users.index) == {"E1", "E2"}
    assert set(sync.fake.users()) == {"E1", "E2"}
    sync.converge(*people)


# ---------------------------------------------------------------- lost answers


def test_a_lost_answer_fails_now_and_the_next_run_converges(
    make_sync: Callable[..., Sync],
) -> None:
    sync = make_sync(batch_size=1)  # the answer lost is that of E2's request alone
    people = team("E1", "E2", "E3")
    sync.fake.inject(Fault.lost(), field="updateOrCreateUser", ref="E2")

    run = sync.apply(sync.plan(*people))

    assert run.failures() == [
        (Kind.CREATE_USER, "E2", ErrorClass.TRANSIENT),
        (Kind.ADD_MEMBERS, "G1", ErrorClass.PARTIAL),  # sent without E2
    ]
    assert sync.fake.user("E2") is not None, "applied in Pluvo, although reported lost"
    assert "E2" not in sync.owned().users.index
    again = sync.plan(*people)
    # Its membership was not sent behind a creation that failed: it comes again too.
    assert shape(again) == [(Kind.CREATE_USER, "E2", ()), (Kind.ADD_MEMBERS, "G1", ("E2",))]

    resent = sync.apply(again)

    assert resent.failures() == []
    (upsert,) = [r for r in sync.fake.results[-2:] if r.call.field == "updateOrCreateUser"]
    assert (upsert.data or {})["created"] is False, "the upsert was idempotent"
    assert len(sync.fake.state()["users"]) == 3, "no duplicate"
    sync.converge(*people)
    before = sync.fake.counters.mutations
    sync.converge(*people)
    assert sync.fake.counters.mutations == before, "a converged run sends nothing"


def test_a_user_created_behind_a_lost_answer_is_recorded_as_created(
    make_sync: Callable[..., Sync],
) -> None:
    """Its re-sent upsert answers `created: false`, yet the engine made it: the failed
    (transient) creation in the journal says so."""
    sync = make_sync()
    people = team("E1", "E2")
    sync.fake.inject(Fault.lost(), field="updateOrCreateUser", ref="E2")
    sync.apply(sync.plan(*people))
    sync.converge(*people)
    assert sync.owned().users.at["E2", "owned"] == "created"


# ---------------------------------------------------------------- groups Pluvo already has


@pytest.mark.parametrize(
    "refusal",
    [None, Fault.record(None, "a group with this ref already exists")],
    ids=["sandbox-conflict", "already-exists-message"],
)
def test_an_existing_group_is_taken_over(
    make_sync: Callable[..., Sync], refusal: Fault | None
) -> None:
    sync = make_sync()
    people = team("E1", "E2")
    sync.fake.seed(groups=[{"ref": "G1", "name": "Group G1"}])
    if refusal is not None:
        sync.fake.inject(refusal, field="createGroup", ref="G1")

    run = sync.apply(sync.plan(*people))

    assert sync.fake.results[0].error is not None, "Pluvo refused the creation"
    assert run.failures() == []
    assert run.status(Kind.CREATE_GROUP, "G1") is OpStatus.DONE
    assert "G1" in sync.owned().groups.index
    assert sync.pairs("memberships", "G1") == {"E1", "E2"}
    assert len(sync.fake.groups()) == 1
    sync.converge(*people)


def test_another_refused_group_fails_and_what_needs_it_is_not_sent(
    make_sync: Callable[..., Sync],
) -> None:
    sync = make_sync()
    people = team("E1", "E2")
    sync.fake.inject(Fault.record("InvalidInput", "name too long"), field="createGroup")

    run = sync.apply(sync.plan(*people))

    assert run.failures() == [(Kind.CREATE_GROUP, "G1", ErrorClass.RECORD)]
    assert run.with_status(OpStatus.SKIPPED) == [(Kind.ADD_MEMBERS, "G1")]
    assert "group G1 was not created this run" in run.error(Kind.ADD_MEMBERS, "G1")
    assert "G1" not in sync.owned().groups.index
    sync.converge(*people)


def test_a_group_taken_over_gets_the_name_hr_gives_it(make_sync: Callable[..., Sync]) -> None:
    """The store never claims a name Pluvo was not sent: the next diff renames it."""
    sync = make_sync()
    people = team("E1")
    sync.fake.seed(groups=[{"ref": "G1", "name": "Sales (made by hand)"}])
    sync.apply(sync.plan(*people))
    assert shape(sync.plan(*people)) == [(Kind.UPDATE_GROUP, "G1", ())]
    sync.converge(*people)
    assert (sync.fake.group("G1") or {})["name"] == "Group G1"
    assert sync.owned().groups.at["G1", "name"] == "Group G1"


def test_a_group_an_earlier_run_created_unrecorded_keeps_the_name_it_was_sent(
    make_sync: Callable[..., Sync],
) -> None:
    """Created by a run whose answer was lost, the group is taken over with the name
    that run sent: no rename is planned, so one more run converges."""
    sync = make_sync()
    people = team("E1")
    sync.fake.inject(Fault.lost(), field="createGroup", ref="G1")
    sync.apply(sync.plan(*people))
    assert "G1" not in sync.owned().groups.index
    again = sync.apply(sync.plan(*people))
    assert again.status(Kind.CREATE_GROUP, "G1") is OpStatus.DONE
    assert sync.owned().groups.at["G1", "name"] == "Group G1"
    assert list(sync.plan(*people)) == []


# ---------------------------------------------------------------- the journal, batch by batch


def test_each_batch_is_started_just_before_it_leaves(make_sync: Callable[..., Sync]) -> None:
    sync = make_sync(batch_size=2)
    run = sync.apply(sync.plan(*team("E1", "E2", "E3", "E4", "E5")))

    assert run.failures() == []
    users = [run.seq(Kind.CREATE_USER, ref) for ref in ("E1", "E2", "E3", "E4", "E5")]
    assert run.announced == [(0,), (0, 1), (2, 3), (4,), (0,)]
    assert set(run.at_send) == set(range(len(run.plan)))
    first, second = run.at_send[users[0]], run.at_send[users[2]]
    # Its own chunk started together, later chunks still pending...
    assert [first[s] for s in users] == [OpStatus.STARTED] * 2 + [OpStatus.PENDING] * 3
    # ...and the answers of an earlier chunk are journaled before the next one starts.
    assert [second[s] for s in users] == [OpStatus.DONE] * 2 + [OpStatus.STARTED] * 2 + [
        OpStatus.PENDING
    ]


# ---------------------------------------------------------------- any one fault, then converge

BEFORE = [
    Person("E1", groups=("G1",), extras={"job_title": "Lead"}),
    Person("E2", groups=("G1",), manages=("G2",)),
    Person("E3", groups=("G2",)),
    Person("E4", groups=("G2",), extras={"job_title": "Clerk"}),
]
AFTER = [
    Person("E1", name="Renamed", groups=("G1",), extras={"job_title": "Head"}),
    Person("E2", groups=("G2",), manages=("G1",)),
    Person("E3", groups=("G2", "G3")),
    Person("E5", groups=("G3",), extras={"job_title": "New"}),
]  # E4 leaves
ERROR_CLASS = {
    "record": ErrorClass.RECORD,
    "transient": ErrorClass.TRANSIENT,
    "lost": ErrorClass.TRANSIENT,
    "fatal": ErrorClass.FATAL,
    "failed_items": ErrorClass.PARTIAL,
}


def _fault(kind: str) -> Fault:
    made: Fault = getattr(Fault, kind)()
    return made


@dataclass(frozen=True)
class Prepared:
    """A store and a Pluvo dump after BEFORE was applied: built once, copied per example."""

    store: Path
    pluvo: dict[str, Any]


@pytest.fixture(scope="module")
def before(migrated_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    folder = tmp_path_factory.mktemp("before")
    sync = Sync(fresh_store(migrated_template, folder), FakePluvo())
    try:
        sync.converge(*BEFORE)
    finally:
        sync.store.close()
    return Prepared(Path(sync.store.engine.url.database or ""), sync.fake.state())


@settings(
    max_examples=12,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    kind=st.sampled_from(sorted(ERROR_CLASS)),
    target=st.integers(0, 50),
    method=st.sampled_from(["upsert", "update", "bulk"]),
    batch_size=st.sampled_from([1, 3, 25]),
)
def test_any_one_fault_leaves_a_sound_journal_and_the_next_run_converges(
    before: Prepared, tmp_path: Path, kind: str, target: int, method: str, batch_size: int
) -> None:
    pluvo = Seed(users=before.pluvo["users"], groups=before.pluvo["groups"])
    sync = Sync(
        fresh_store(before.store, tmp_path),
        FakePluvo(seed=pluvo, batch_size=batch_size),
        leavers=LeaverConfig(archive_method=method, grace_runs=0),  # type: ignore[arg-type]
    )
    try:
        plan = sync.plan(*AFTER)
        assert len(plan) >= 10
        seq = target % len(plan)
        op = plan.operations[seq]
        items = isinstance(op, GroupLinks) or (isinstance(op, ArchiveUser) and method == "bulk")
        if kind == "failed_items" and not items:
            kind = "transient"
        sync.fake.inject(_fault(kind), call=seq)

        run = sync.apply(plan)  # the invariants are checked in there

        assert (op.kind, op.ref, ERROR_CLASS[kind]) in run.failures()
        if kind == "fatal":
            assert run.execution.aborted == run.error(op.kind, op.ref)
        # Two runs when a lost createGroup is taken over: then renamed to HR's name.
        sync.converge(*AFTER, runs=2)
        assert (sync.fake.user("E4") or {})["archived"] is True
    finally:
        sync.store.close()


# ---------------------------------------------------------------- through apply_plan


def config_for(folder: Path) -> Config:
    return parse_config(
        {
            "pluvo": {"url": "http://127.0.0.1:9", "client_id": "c", "client_secret": "s"},
            "sources": [{"name": "hr", "type": "csv", "path": "hr.csv", "mapping": "m.yaml"}],
            "report": {"dir": "reports"},
        },
        base_dir=folder,
        env={},
    )


def apply_through_engine(sync: Sync, config: Config, *people: Person) -> Report:
    report = Report(run_id=f"engine-{uuid.uuid4().hex[:6]}", mode="run", started_at=now())
    with Run(config, sync.store, report).locked():
        plan = sync.plan(*people)  # after the lock settled dead runs, as `run` plans
        apply_plan(config, sync.store, report, plan, api_factory=lambda config: sync.fake)
    return report


def run_row(sync: Sync, run_id: str) -> RunRow:
    with sync.store.session() as session:
        row = session.get(RunRow, run_id)
    assert row is not None
    return row


@pytest.mark.parametrize(
    ("fault", "code", "status"),
    [
        (Fault.fatal("credentials revoked"), ExitCode.FAILED, RunStatus.FAILED),
        (Fault.record("InvalidInput", "bad email"), ExitCode.PARTIAL, RunStatus.PARTIAL),
        (None, ExitCode.OK, RunStatus.SUCCEEDED),
    ],
    ids=["fatal", "record", "clean"],
)
def test_apply_plan_reports_what_the_executor_did(
    make_sync: Callable[..., Sync],
    tmp_path: Path,
    fault: Fault | None,
    code: ExitCode,
    status: RunStatus,
) -> None:
    sync = make_sync()
    people = team("E1", "E2")
    if fault is not None:
        sync.fake.inject(fault, field="updateOrCreateUser", ref="E2")

    report = apply_through_engine(sync, config_for(tmp_path), *people)

    assert (report.exit_code, report.status) == (code, status)
    row = run_row(sync, report.run_id)
    assert (row.status, row.exit_code) == (status, code)
    assert sync.fake.opened == 1
    if fault is not None and fault.kind == "fatal":
        assert (
            row.message
            == report.message
            == (
                "mutation updateOrCreateUser x2: Pluvo rejected the document "
                "(Injected: credentials revoked)"
            )
        )
    sync.converge(*people)


def test_apply_plan_settles_a_killed_run_and_keeps_its_creations(
    make_sync: Callable[..., Sync], tmp_path: Path
) -> None:
    sync = make_sync()
    people = team("E1", "E2", "E3")
    # A run killed after E2's creation left: started in the journal, applied in Pluvo,
    # its answer never recorded; nothing else of it left.
    plan = sync.plan(*people)
    sync.store.start_run("killed", "run")
    with sync.store.session() as session, session.begin():
        journal_plan(session, "killed", plan)
    seq = next(s for s, op in enumerate(plan) if op.kind is Kind.CREATE_USER and op.ref == "E2")
    with sync.store.session() as session, session.begin():
        journal.mark_started(session, "killed", [seq], now())
    asyncio.run(sync.fake.run_calls([plan.operations[seq].to_call(send_invite=False)]))

    report = apply_through_engine(sync, config_for(tmp_path), *people)

    assert report.exit_code == ExitCode.OK
    with sync.store.session() as session:
        dead = journal.statuses(session, "killed")
    assert dead[seq] is OpStatus.ABANDONED
    assert {s for s, status in dead.items() if status is OpStatus.SKIPPED} == set(dead) - {seq}
    assert run_row(sync, "killed").status == RunStatus.ABORTED
    assert sync.owned().users.at["E2", "owned"] == "created", "ours, not adopted"
    sync.converge(*people)


def test_a_run_failing_before_it_sends_leaves_nothing_pending(
    make_sync: Callable[..., Sync], tmp_path: Path
) -> None:
    """A run that fails on an error (Pluvo unreachable as the client opens) after its
    plan was journaled: the plan is journaled skipped, with the error, under a failed
    run, so `status` counts nothing as open and nothing waits for a settle that the
    failed run (not `running`) would never get."""
    sync = make_sync()
    report = Report(run_id="fails-early", mode="run", started_at=now())

    def unreachable(_config: Config) -> Any:
        raise FatalError("Pluvo refused the credentials")

    def fail_early() -> None:
        config = config_for(tmp_path)
        with Run(config, sync.store, report).locked():
            plan = sync.plan(*team("E1", "E2"))
            apply_plan(config, sync.store, report, plan, api_factory=unreachable)

    with pytest.raises(FatalError):
        fail_early()
    assert run_row(sync, "fails-early").status == RunStatus.FAILED
    with sync.store.session() as session:
        statuses = set(journal.statuses(session, "fails-early").values())
        rows = journal.run_operations(session, "fails-early")[1]
        assert journal.needing_attention(session) == []
    assert statuses == {OpStatus.SKIPPED}
    assert {r.error_class for r in rows} == {ErrorClass.FATAL}
    assert all("Pluvo refused the credentials" in (r.error or "") for r in rows)
