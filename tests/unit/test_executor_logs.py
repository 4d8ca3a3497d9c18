"""What the executor logs: the size of each phase, and each retry of refused values one
by one, with its counts.

Each test plans with the diff and applies the plan to an in-memory Pluvo
(tests/support/fake_pluvo.py).
"""

from __future__ import annotations

import logging

import pytest

from sync.state.store import StateStore
from tests.support.diffing import Person
from tests.support.executing import Sync, team
from tests.support.fake_pluvo import FakePluvo, Fault


@pytest.fixture
def sync(store: StateStore) -> Sync:
    return Sync(store, FakePluvo())


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
