"""The diff at the edges of ownership: who is a leaver, when, and what is never touched.

Archiving someone by mistake is the worst thing the engine can do, so every way a
person can be absent from the synced users is a case here: rejected rows and
pre-hires are held, end dates and absences make leavers (after the grace), the
leaver action decides what happens, returners are restored, and nothing the store
does not hold is ever removed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.config import LeaverConfig
from sync.core.plan import Kind
from tests.support.diffing import (
    NOW,
    Person,
    Stored,
    archive_method,
    desired_state,
    kinds_by_ref,
    leaver_reason,
    plan_for,
    pluvo_id,
    state_view,
)

LEAVERS = (Kind.ARCHIVE_USER, Kind.DEACTIVATE_USER)
BOSS = Person("E1", groups=("sales",), manages=("sales",))
STAFF = [BOSS, Person("E2", groups=("sales",)), Person("E3", groups=("sales",))]


def overdue(person: Person) -> Stored:
    """A user missing for long: due under any grace used here."""
    return Stored(person, missing_runs=30, missing_since=NOW - timedelta(days=90))


def leavers(plan: Any) -> dict[str, Kind]:
    return {op.ref: op.kind for op in plan.operations if op.kind in LEAVERS}


def leaver_ops(plan: Any) -> list[Any]:
    return [op for op in plan.operations if op.kind in LEAVERS]


def removed_managers(plan: Any) -> set[tuple[str, str]]:
    return {
        (op.ref, change.old)
        for op in plan.operations
        if op.kind is Kind.REMOVE_MANAGERS
        for change in op.changes
    }


def archive(**options: Any) -> LeaverConfig:
    """Leaver settings without a grace unless given."""
    return LeaverConfig(**{"grace_runs": 0, **options})


# -- held refs: named by the sources, not synced this run, never leavers -------------


HELD = {
    "rejected-row": ({"rejected": ["E3"]}, archive()),
    "rejected-row-overdue": ({"rejected": ["E3"]}, archive(grace_runs=2, grace_days=7)),
    "pre-hire": ({"pending": ["E3"]}, archive()),
    "pre-hire-overdue": ({"pending": ["E3"]}, archive(grace_runs=2, grace_days=7)),
    "rejected-row-deactivate": ({"rejected": ["E3"]}, archive(action="deactivate")),
    "pre-hire-deactivate": ({"pending": ["E3"]}, archive(action="deactivate")),
}


@pytest.mark.parametrize(("absence", "config"), HELD.values(), ids=HELD.keys())
def test_held_refs_are_never_leavers(absence: dict[str, list[str]], config: LeaverConfig) -> None:
    desired = desired_state(*STAFF[:2], **absence)
    state = state_view(*STAFF[:2], overdue(STAFF[2]))
    plan = plan_for(desired, state, config)
    assert kinds_by_ref(plan) == {}, "a held user is left exactly as it is"


def test_a_warning_does_not_hold() -> None:
    """A warning only dropped a link; it says nothing about whether the person stays."""
    desired = desired_state(*STAFF[:2], warned=["E3", "E2"])
    plan = plan_for(desired, state_view(*STAFF))
    assert leavers(plan) == {"E3": Kind.ARCHIVE_USER}


def test_only_the_rejected_ref_is_held() -> None:
    desired = desired_state(BOSS, rejected=["E2"])
    plan = plan_for(desired, state_view(*STAFF))
    assert leavers(plan) == {"E3": Kind.ARCHIVE_USER}


def test_pre_hire_is_not_created_early() -> None:
    plan = plan_for(desired_state(*STAFF, pending=["E9"]), state_view(*STAFF))
    assert kinds_by_ref(plan) == {}


# -- end dates -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "kind"),
    [("archive", Kind.ARCHIVE_USER), ("deactivate", Kind.DEACTIVATE_USER)],
)
def test_end_date_passed_makes_a_leaver(action: str, kind: Kind) -> None:
    desired = desired_state(BOSS, ended=["E2"])
    plan = plan_for(desired, state_view(*STAFF), archive(action=action))
    assert leavers(plan) == {"E2": kind, "E3": kind}
    reasons = {op.ref: leaver_reason(op) for op in leaver_ops(plan)}
    assert reasons == {"E2": "end date passed", "E3": "gone from the sources"}


def test_end_date_of_someone_already_gone_is_not_acted_on_again() -> None:
    desired = desired_state(BOSS, ended=["E2"])
    state = state_view(BOSS, Stored(STAFF[1], left_action="archive"))
    assert kinds_by_ref(plan_for(desired, state)) == {}


def test_end_date_of_someone_never_synced_is_nothing() -> None:
    plan = plan_for(desired_state(*STAFF, ended=["E9"]), state_view(*STAFF))
    assert kinds_by_ref(plan) == {}


# -- the leaver action ---------------------------------------------------------------


def absent_every_way() -> tuple[Any, Any]:
    """E2 past its end date, E3 gone long ago, E4 gone this run."""
    e4 = Person("E4")
    desired = desired_state(BOSS, ended=["E2"])
    state = state_view(BOSS, STAFF[1], overdue(STAFF[2]), e4)
    return desired, state


def test_deactivate_never_archives() -> None:
    plan = plan_for(*absent_every_way(), archive(action="deactivate"))
    kinds = [op.kind for op in plan.operations]
    assert Kind.ARCHIVE_USER not in kinds
    assert leavers(plan) == dict.fromkeys(("E2", "E3", "E4"), Kind.DEACTIVATE_USER)
    for op in leaver_ops(plan):
        assert [(c.field, c.old, c.new) for c in op.changes] == [("is_active", "true", "false")]


def test_ignore_plans_no_leaver_operation() -> None:
    desired, state = absent_every_way()
    plan = plan_for(desired, state, archive(action="ignore"))
    assert not leaver_ops(plan)
    assert kinds_by_ref(plan) == {}, "not even their manager links go"


# -- archive methods -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["upsert", "update", "bulk"])
def test_archive_method_is_carried_on_the_operation(method: str) -> None:
    plan = plan_for(desired_state(*STAFF[:2]), state_view(*STAFF), archive(archive_method=method))
    (op,) = leaver_ops(plan)
    assert (op.kind, op.ref, archive_method(op)) == (Kind.ARCHIVE_USER, "E3", method)
    assert [(c.field, c.old, c.new) for c in op.changes] == [("archived", "false", "true")]


def test_bulk_archive_carries_pluvo_id() -> None:
    state = state_view(*STAFF[:2], Stored(STAFF[2], pluvo_id="UHJvZmlsZTo0Mg=="))
    plan = plan_for(desired_state(*STAFF[:2]), state, archive(archive_method="bulk"))
    (op,) = leaver_ops(plan)
    assert pluvo_id(op) == "UHJvZmlsZTo0Mg=="


def test_bulk_archive_without_a_known_id_still_plans_the_archive() -> None:
    state = state_view(*STAFF[:2], Stored(STAFF[2], id_known=False))
    plan = plan_for(desired_state(*STAFF[:2]), state, archive(archive_method="bulk"))
    (op,) = leaver_ops(plan)
    assert (op.ref, pluvo_id(op)) == ("E3", None)


# -- grace ---------------------------------------------------------------------------


GRACE_RUNS = {
    # grace_runs, runs already missed before this one, due now
    "no-grace-first-missing-run": (0, 0, True),
    "first-missing-run": (2, 0, False),
    "second-missing-run": (2, 1, False),
    "grace-used-up": (2, 2, True),
    "long-gone": (2, 9, True),
    "one-run-grace-first": (1, 0, False),
    "one-run-grace-second": (1, 1, True),
}


@pytest.mark.parametrize(("grace", "missed", "due"), GRACE_RUNS.values(), ids=GRACE_RUNS.keys())
def test_grace_by_runs(grace: int, missed: int, due: bool) -> None:
    since = None if missed == 0 else NOW - timedelta(days=missed)
    state = state_view(*STAFF[:2], Stored(STAFF[2], missing_runs=missed, missing_since=since))
    plan = plan_for(desired_state(*STAFF[:2]), state, LeaverConfig(grace_runs=grace))
    assert leavers(plan) == ({"E3": Kind.ARCHIVE_USER} if due else {})


GRACE_DAYS = {
    # grace_days, days missing so far (None: first missing run), due now
    "first-missing-run": (3, None, False),
    "within": (3, 2.99, False),
    "exactly-used-up": (3, 3, True),
    "after": (3, 10, True),
    "fractional-within": (0.5, 0.25, False),
    "fractional-after": (0.5, 0.5, True),
}


@pytest.mark.parametrize(("grace", "days", "due"), GRACE_DAYS.values(), ids=GRACE_DAYS.keys())
def test_grace_by_days(grace: float, days: float | None, due: bool) -> None:
    since = None if days is None else NOW - timedelta(days=days)
    missed = 0 if days is None else 1
    state = state_view(*STAFF[:2], Stored(STAFF[2], missing_runs=missed, missing_since=since))
    plan = plan_for(desired_state(*STAFF[:2]), state, LeaverConfig(grace_runs=0, grace_days=grace))
    assert leavers(plan) == ({"E3": Kind.ARCHIVE_USER} if due else {})


BOTH = {
    "runs-used-up-days-not": (5, 1, False),
    "days-used-up-runs-not": (1, 10, False),
    "both-used-up": (5, 10, True),
}


@pytest.mark.parametrize(("missed", "days", "due"), BOTH.values(), ids=BOTH.keys())
def test_grace_needs_both_runs_and_days(missed: int, days: float, due: bool) -> None:
    stored = Stored(STAFF[2], missing_runs=missed, missing_since=NOW - timedelta(days=days))
    state = state_view(*STAFF[:2], stored)
    plan = plan_for(desired_state(*STAFF[:2]), state, LeaverConfig(grace_runs=2, grace_days=7))
    assert leavers(plan) == ({"E3": Kind.ARCHIVE_USER} if due else {})


def test_within_grace_nothing_else_happens_to_the_missing_user() -> None:
    state = state_view(*STAFF[:2], Stored(STAFF[2], missing_runs=1, missing_since=NOW))
    plan = plan_for(desired_state(*STAFF[:2]), state, LeaverConfig(grace_runs=3))
    assert kinds_by_ref(plan) == {}


# -- returning users -----------------------------------------------------------------


@pytest.mark.parametrize("left", ["archive", "deactivate"])
def test_returning_user_is_restored(left: str) -> None:
    state = state_view(*STAFF[:2], Stored(STAFF[2], left_action=left))
    plan = plan_for(desired_state(*STAFF), state)
    assert kinds_by_ref(plan) == {"E3": [str(Kind.RESTORE_USER)]}


def test_restore_shows_the_unarchiving() -> None:
    state = state_view(*STAFF[:2], Stored(STAFF[2], left_action="archive"))
    (op,) = plan_for(desired_state(*STAFF), state).operations
    assert ("archived", "true", "false") in [(c.field, c.old, c.new) for c in op.changes]


def test_returning_user_with_new_details_is_one_restore() -> None:
    state = state_view(*STAFF[:2], Stored(STAFF[2], left_action="archive"))
    back = STAFF[2].but(name="Back Again")
    plan = plan_for(desired_state(*STAFF[:2], back), state)
    assert kinds_by_ref(plan) == {"E3": [str(Kind.RESTORE_USER)]}
    (op,) = plan.operations
    assert ("name", "Person E3", "Back Again") in [(c.field, c.old, c.new) for c in op.changes]


def test_returning_within_grace_is_no_restore() -> None:
    """Never archived, so nothing to restore: the engine just stops counting."""
    state = state_view(*STAFF[:2], Stored(STAFF[2], missing_runs=1, missing_since=NOW))
    plan = plan_for(desired_state(*STAFF), state, LeaverConfig(grace_runs=3))
    assert kinds_by_ref(plan) == {}


# -- manager links of people not synced this run -------------------------------------


UNSYNCED = {
    "rejected": ({"rejected": ["E1"]}, archive(), False),
    "pre-hire": ({"pending": ["E1"]}, archive(), False),
    "within-grace": ({}, LeaverConfig(grace_runs=3), False),
    "ignored-leaver": ({}, archive(action="ignore"), False),
    "leaver": ({}, archive(), True),
    "deactivated-leaver": ({}, archive(action="deactivate"), True),
    "ended": ({"ended": ["E1"]}, archive(), True),
}


@pytest.mark.parametrize(("absence", "config", "loses"), UNSYNCED.values(), ids=UNSYNCED.keys())
def test_manager_links_of_unsynced_people(
    absence: dict[str, list[str]], config: LeaverConfig, loses: bool
) -> None:
    """The manager E1 is absent; E4 manages sales too and stays."""
    e4 = Person("E4", manages=("sales",))
    desired = desired_state(*STAFF[1:], e4, **absence)
    plan = plan_for(desired, state_view(*STAFF, e4), config)
    assert removed_managers(plan) == ({("sales", "E1")} if loses else set())
    assert Kind.ADD_MANAGERS not in [op.kind for op in plan.operations], "E4 is kept as is"


def test_manager_removed_by_hr_while_synced_is_removed() -> None:
    desired = desired_state(BOSS.but(manages=()), *STAFF[1:])
    plan = plan_for(desired, state_view(*STAFF))
    assert removed_managers(plan) == {("sales", "E1")}


# -- nothing is removed that the store does not hold ---------------------------------


def test_removals_name_exactly_what_the_store_holds() -> None:
    stored = [
        Person("E1", groups=("sales", "it"), manages=("sales",), extras={"job_title": "Boss"}),
        Person("E2", groups=("sales",)),
    ]
    # HR now has E1 in no group with no values; Pluvo may hold more, the store does not.
    desired = desired_state(Person("E1"), Person("E2", groups=("sales",)))
    plan = plan_for(desired, state_view(*stored))
    removals = sorted(
        (str(op.kind), op.ref, c.field, c.old, c.new) for op in plan.operations for c in op.changes
    )
    assert removals == [
        (str(Kind.REMOVE_MANAGERS), "sales", "manager", "E1", ""),
        (str(Kind.REMOVE_MEMBERS), "it", "member", "E1", ""),
        (str(Kind.REMOVE_MEMBERS), "sales", "member", "E1", ""),
        (str(Kind.SET_VALUES), "E1", "job_title", "Boss", ""),
    ]


REFS = ["E1", "E2", "E3", "E4", "E5"]
GROUPS = ["sales", "it"]
person_strategy = st.builds(
    Person,
    ref=st.sampled_from(REFS),
    groups=st.lists(st.sampled_from(GROUPS), unique=True).map(tuple),
    manages=st.lists(st.sampled_from(GROUPS), unique=True).map(tuple),
    extras=st.dictionaries(st.sampled_from(["job_title", "site"]), st.sampled_from(["a", "b"])),
)
population = st.lists(person_strategy, unique_by=lambda p: p.ref, max_size=5)


@settings(max_examples=60, deadline=None)
@given(
    stored=population,
    wanted=population,
    left=st.sets(st.sampled_from(REFS)),
    action=st.sampled_from(["archive", "deactivate"]),
)
def test_the_diff_never_removes_what_is_not_in_the_store(
    stored: list[Person], wanted: list[Person], left: set[str], action: str
) -> None:
    state = state_view(*(Stored(p, left_action=action if p.ref in left else None) for p in stored))
    plan = plan_for(desired_state(*wanted), state, archive(action=action))
    members = {(g, p.ref) for p in stored for g in p.groups}
    managers = {(g, p.ref) for p in stored for g in p.manages}
    values = {(p.ref, c, v) for p in stored for c, v in p.extras.items()}
    active = {p.ref for p in stored if p.ref not in left}
    for op in plan.operations:
        if op.kind is Kind.REMOVE_MEMBERS:
            assert {(op.ref, c.old) for c in op.changes} <= members
        elif op.kind is Kind.REMOVE_MANAGERS:
            assert {(op.ref, c.old) for c in op.changes} <= managers
        elif op.kind is Kind.SET_VALUES:
            cleared = {(op.ref, c.field, c.old) for c in op.changes if not c.new}
            assert cleared <= values
        elif op.kind in LEAVERS:
            assert op.ref in active
