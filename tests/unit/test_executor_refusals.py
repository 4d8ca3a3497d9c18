"""What a refusal leaves behind in the journal and the store: how long a refusal's
message gets, why a membership of users that all failed is not sent, and which name a
group taken over (after Pluvo refuses its creation as existing) keeps.

Each test plans with the diff and applies the plan to an in-memory Pluvo
(tests/support/fake_pluvo.py), reading the outcome back from the journal.
"""

from __future__ import annotations

import pytest

from sync.core.plan import Kind, Plan
from sync.state.journal import ErrorClass, OpStatus
from sync.state.read import read_owned
from sync.state.store import StateStore
from tests.support.executing import Sync, team
from tests.support.fake_pluvo import FakePluvo, Fault


@pytest.fixture
def sync(store: StateStore) -> Sync:
    return Sync(store, FakePluvo())


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
