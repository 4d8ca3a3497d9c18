"""State promises the journal, held-change and guard tests left unpinned: which sent
group name a takeover trusts when several runs sent one, the stamp a killed run's
leftovers are settled with, when a dropped held change was closed, and that an empty
source does not hide a shrunk one listed after it.

Journal and held-change cases run on a real SQLite store (`store` fixture); guard
cases plan with the diff itself.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from sync.config import Limit, SafetyConfig
from sync.core.guards import check
from sync.core.plan import ArchiveUser
from sync.state import held as held_store
from sync.state import journal
from sync.state.held import HeldStatus, Holding
from sync.state.journal import Entry, ErrorClass, OpStatus, Outcome
from sync.state.models import HeldRow
from sync.state.store import StateStore
from tests.support.diffing import desired_state, people, plan_for, state_view

STAMP = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
LATER = STAMP + timedelta(minutes=5)


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


# ---------------------------------------------------------------- the journal


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


# ---------------------------------------------------------------- held changes


def _holding(ref: str) -> Holding:
    op = ArchiveUser(ref=ref, reason="gone from the sources")
    return Holding(("leaver", ref, ""), "leavers", op.reason, op.to_json())


def test_a_dropped_hold_is_closed_when_the_run_dropped_it(store: StateStore) -> None:
    """`held --all` shows when a hold ended; one the sources stopped asking for ended
    with the run that settled it, not when it was first held (or never)."""
    day1 = datetime(2026, 11, 1, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    with store.session() as session, session.begin():
        held_store.settle(session, "run1", [_holding("E1"), _holding("E2")], day1)
    with store.session() as session, session.begin():
        assert held_store.settle(session, "run2", [_holding("E2")], day2) == 1

    with store.session() as session:
        (gone,) = session.scalars(select(HeldRow).where(HeldRow.ref == "E1")).all()
        assert gone.status == HeldStatus.DROPPED
        assert _utc(gone.closed_at) == day2
        (kept,) = session.scalars(select(HeldRow).where(HeldRow.ref == "E2")).all()
        assert (kept.status, kept.closed_at) == (HeldStatus.HELD, None)


# ---------------------------------------------------------------- guards


@pytest.mark.parametrize(
    ("allow_empty", "expected"),
    [(True, ["source-shrink"]), (False, ["empty-source", "source-shrink"])],
    ids=["empty-allowed", "empty-refused"],
)
def test_an_empty_source_does_not_hide_a_shrunk_one_after_it(
    allow_empty: bool, expected: list[str]
) -> None:
    """Every source is checked: an empty first source (allowed or not) must not end
    the check before a truncated second source is caught."""
    everyone = people("E1", "E2")
    plan = plan_for(desired_state(*everyone), state_view(*everyone))
    safety = SafetyConfig(
        max_leavers=Limit(),
        max_changes=Limit(),
        min_source_ratio=0.8,
        allow_empty_source=allow_empty,
    )

    trips = check(
        plan,
        safety,
        source_rows={"hr": 0, "contractors": 5},
        history={"hr": [100, 100], "contractors": [10, 10]},
    )

    assert [t.guard for t in trips] == expected
    assert "source 'contractors' has 5 rows" in trips[-1].message
