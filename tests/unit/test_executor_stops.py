"""Executor promises that the failure-path tests left unpinned: how long a refusal's
message gets, what a stop does to the operations it kept from leaving and to the run,
what is logged per phase and per value retry, why a membership of users that all
failed is not sent, and which name a group taken over after a lost answer keeps.

Each test plans with the diff and applies the plan to an in-memory Pluvo
(tests/support/fake_pluvo.py), reading the outcome back from the journal.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from sync import stopping
from sync.config import LeaverConfig
from sync.core.executor import Execution, Executor, journal_plan
from sync.core.plan import Kind, Plan
from sync.errors import StoppedError
from sync.pluvo.client import BeforeSend, OnResult
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult
from sync.state import journal
from sync.state.journal import ErrorClass, OpStatus
from sync.state.models import OperationRow
from sync.state.read import read_owned, read_state
from sync.state.store import StateStore
from tests.support.diffing import Person, desired_state, plan_for
from tests.support.fake_pluvo import FakePluvo, Fault, subject_refs

REASON = "stopped by signal SIGTERM"


# ---------------------------------------------------------------- a store, a Pluvo, runs


@dataclass
class Run:
    execution: Execution
    rows: list[OperationRow]
    """The run's journal, in plan order."""

    def row(self, kind: Kind, ref: str) -> OperationRow:
        (row,) = [r for r in self.rows if r.kind == kind and r.ref == ref]
        return row

    def outcome(self, kind: Kind, ref: str) -> tuple[OpStatus, str | None]:
        row = self.row(kind, ref)
        return OpStatus(row.status), row.error


@dataclass
class Sync:
    store: StateStore
    fake: FakePluvo
    membership_fields: str = "ids"
    runs: int = 0

    def plan(self, *persons: Person) -> Plan:
        leavers = LeaverConfig(grace_runs=0)
        plan: Plan = plan_for(desired_state(*persons), read_state(self.store.engine), leavers)
        return plan

    def apply(self, plan: Plan) -> Run:
        self.runs += 1
        run_id = f"run-{self.runs}"
        self.store.start_run(run_id, "run")
        with self.store.session() as session, session.begin():
            journal_plan(session, run_id, plan)
        executor = Executor(self.store, self.fake, run_id, membership_fields=self.membership_fields)
        execution = asyncio.run(executor.execute(plan))
        with self.store.session() as session:
            _, rows = journal.run_operations(session, run_id)
            for row in rows:
                session.expunge(row)
        return Run(execution, rows)


@pytest.fixture
def sync(store: StateStore) -> Sync:
    return Sync(store, FakePluvo())


def team(*refs: str, group: str = "G1") -> list[Person]:
    return [Person(ref, groups=(group,)) for ref in refs]


# ---------------------------------------------------------------- a stop asked for mid-run


@pytest.fixture
def no_stop_left() -> Iterator[None]:
    """The stop request is process-wide: none may leak into or out of a test."""
    stopping.clear()
    yield
    stopping.clear()


class StopHonouring(FakePluvo):
    """Sends batch by batch and, once a stop is asked for, sends nothing more, as
    PluvoClient does. The calls it kept back are answered with the client's
    StoppedError, or (`tell_why=False`) without any error: PluvoApi promises one result
    per call, not that a call that never left carries an error."""

    def __init__(self, *, tell_why: bool) -> None:
        super().__init__(batch_size=1)
        self.tell_why = tell_why

    async def run_calls(
        self,
        calls: Sequence[Call],
        *,
        on_result: OnResult | None = None,
        before_send: BeforeSend | None = None,
        keep: bool = True,
    ) -> list[CallResult]:
        results: list[CallResult] = []
        for start in range(0, len(calls), self.batch_size):
            chunk = list(calls[start : start + self.batch_size])
            stop = stopping.requested()
            if stop is None:
                results += await super().run_calls(
                    chunk,
                    on_result=_shifted_result(on_result, start),
                    before_send=_shifted_send(before_send, start),
                )
                continue
            error = StoppedError(stop) if self.tell_why else None
            for index, call in enumerate(chunk, start):
                result = CallResult(call, None, error)
                results.append(result)
                if on_result is not None:
                    outcome = on_result(index, result)
                    if inspect.isawaitable(outcome):
                        await outcome
        return results if keep else []


def _shifted_result(hook: OnResult | None, by: int) -> OnResult | None:
    if hook is None:
        return None
    return lambda index, result: hook(index + by, result)


def _shifted_send(hook: BeforeSend | None, by: int) -> BeforeSend | None:
    if hook is None:
        return None
    return lambda indexes: hook([i + by for i in indexes])


def stop_when_sent(fake: FakePluvo, field: str, ref: str) -> None:
    """SIGTERM arrives while this call is in flight: it still gets its answer."""

    def asks_to_stop(call: Call) -> bool:
        if call.field == field and ref in subject_refs(call):
            stopping.request(REASON)
        return False  # a rule that never fires: it only watches the calls leave

    fake.inject(Fault.fatal(), where=asks_to_stop, times=None)


@pytest.mark.usefixtures("no_stop_left")
@pytest.mark.parametrize(
    ("tell_why", "text"),
    [(True, REASON), (False, "the run stopped before sending it")],
    ids=["stopped-error", "no-error"],
)
def test_a_stop_sends_nothing_more_and_the_journal_says_why(
    store: StateStore, tell_why: bool, text: str
) -> None:
    """`history` must tell an operator why a creation never left, also when the client
    did not say: each is skipped with a reason, and the run ends with the stop's."""
    api = StopHonouring(tell_why=tell_why)
    sync = Sync(store, api)
    stop_when_sent(api, "updateOrCreateUser", "E2")

    run = sync.apply(sync.plan(*team("E1", "E2", "E3", "E4")))

    assert run.execution.aborted == REASON
    assert [c.args["ref"] for c in api.sent("updateOrCreateUser")] == ["E1", "E2"]
    assert api.sent("addUsersToGroup") == [], "no later phase is sent"
    creations = {ref: run.outcome(Kind.CREATE_USER, ref) for ref in ("E1", "E2", "E3", "E4")}
    assert creations == {
        "E1": (OpStatus.DONE, None),
        "E2": (OpStatus.DONE, None),  # in flight when the stop came: it finished
        "E3": (OpStatus.SKIPPED, text),
        "E4": (OpStatus.SKIPPED, text),
    }
    assert run.outcome(Kind.ADD_MEMBERS, "G1") == (OpStatus.SKIPPED, REASON)
    assert run.row(Kind.CREATE_USER, "E3").error_class == ErrorClass.STOPPED
    assert set(read_owned(store.engine).users.index) == {"E1", "E2"}


@pytest.mark.usefixtures("no_stop_left")
def test_a_stop_during_the_last_phase_still_ends_the_run_stopped(store: StateStore) -> None:
    """With nothing after it to notice the stop, the run would otherwise be reported a
    success although a membership was never sent."""
    api = StopHonouring(tell_why=True)
    sync = Sync(store, api)
    stop_when_sent(api, "addUsersToGroup", "G1")

    run = sync.apply(sync.plan(*team("E1", group="G1"), *team("E2", group="G2")))

    assert run.execution.aborted == REASON
    assert [c.args["groupRef"] for c in api.sent("addUsersToGroup")] == ["G1"]
    assert run.outcome(Kind.ADD_MEMBERS, "G1") == (OpStatus.DONE, None)
    assert run.outcome(Kind.ADD_MEMBERS, "G2") == (OpStatus.SKIPPED, REASON)


# ---------------------------------------------------------------- refusals


def test_a_refusal_of_many_users_names_ten_and_counts_them_all(store: StateStore) -> None:
    """The error text goes to the journal, the log and the report: a group refusing
    hundreds of users must not flood them, yet the count tells how many there were."""
    sync = Sync(store, FakePluvo(), membership_fields="refs")
    refs = [f"E{n:02}" for n in range(1, 14)]
    sync.fake.inject(Fault.failed_items(*refs[:11]), field="addUsersToGroup", ref="G1")

    run = sync.apply(sync.plan(*team(*refs)))

    named = ", ".join(refs[:10])
    assert run.outcome(Kind.ADD_MEMBERS, "G1") == (
        OpStatus.FAILED,
        f"11 of 13 user(s) refused by Pluvo: {named}",
    )


def test_a_membership_of_users_all_failed_is_skipped_and_says_so(sync: Sync) -> None:
    """An add of no user left is not sent (it would cost a request for nothing); the
    journal says why, so the operator looks at the failed creations instead."""
    sync.fake.inject(Fault.record(message="email is taken"), field="updateOrCreateUser", times=2)

    run = sync.apply(sync.plan(*team("E1", "E2")))

    assert run.outcome(Kind.ADD_MEMBERS, "G1") == (
        OpStatus.SKIPPED,
        "none of its users was created this run",
    )
    assert run.row(Kind.ADD_MEMBERS, "G1").error_class == ErrorClass.BLOCKED
    assert sync.fake.sent("addUsersToGroup") == []
    assert run.execution.aborted is None
    assert run.execution.skipped == 1


# ---------------------------------------------------------------- groups taken over


def test_a_group_taken_over_keeps_the_name_sent_even_alone_in_its_plan(sync: Sync) -> None:
    """The name an earlier run sent is looked up for the group's own creation, not for
    operations that only mention the group: a plan with nothing else for it still
    records that name, and no needless rename follows."""
    people = team("E1")
    sync.fake.inject(Fault.lost(), field="createGroup", ref="G1")
    sync.apply(sync.plan(*people))
    creation = Plan(tuple(op for op in sync.plan(*people) if op.kind is Kind.CREATE_GROUP))
    assert [(op.kind, op.ref) for op in creation] == [(Kind.CREATE_GROUP, "G1")]

    run = sync.apply(creation)

    assert run.outcome(Kind.CREATE_GROUP, "G1") == (OpStatus.DONE, None)
    assert read_owned(sync.store.engine).groups.at["G1", "name"] == "Group G1"
    planned = [(op.kind, op.ref) for op in sync.plan(*people) if op.ref == "G1"]
    assert planned == [(Kind.ADD_MEMBERS, "G1")], "no rename"


# ---------------------------------------------------------------- what is logged


def test_each_phase_logs_how_many_operations_it_sends(
    sync: Sync, caplog: pytest.LogCaptureFixture
) -> None:
    """The log is where an operator follows a long run: each phase announces its size."""
    with caplog.at_level(logging.INFO, logger="sync.core.executor"):
        sync.apply(sync.plan(*team("E1", "E2", "E3")))

    phases = [r.getMessage() for r in caplog.records if r.getMessage().startswith("phase ")]
    assert phases == [
        "phase groups: 1 operation(s)",
        "phase users: 3 operation(s)",
        "phase memberships: 1 operation(s)",
    ]


def test_refused_values_retried_one_by_one_are_logged_with_their_counts(
    sync: Sync, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry multiplies the requests a run sends; the log says for how many users and
    at what cost, and the values that Pluvo then takes are set."""
    extras = {"department": "Sales", "job_title": "Clerk"}
    people = [Person(ref, extras=extras) for ref in ("E1", "E2", "E3")]
    for ref in ("E1", "E3"):
        sync.fake.inject(Fault.record(), field="updateExtraCategoryValues", ref=ref)

    with caplog.at_level(logging.INFO, logger="sync.core.executor"):
        run = sync.apply(sync.plan(*people))

    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("retrying")]
    assert retries == ["retrying 2 refused user(s) value by value (4 call(s))"]
    assert run.execution.failed == []
    assert all(sync.fake.extra(ref) == extras for ref in ("E1", "E2", "E3"))
