"""What a planned operation carries, for the people who read the plan and for Pluvo.

Each case pins one detail the broader diff tests pass over: the field a group rename
names, the group name on a removal, what a restore sends, what a leaver's facts say
when an end date decided or when its fields cannot be read, and where an archive's
Pluvo id comes from when the store offers none.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sync.config import LeaverConfig
from sync.core.plan import Kind, LeaverFacts
from tests.support.diffing import NOW, Person, Stored, desired_state, plan_for, state_view

SALES = Person("E1", groups=("sales",))


def changes(op: Any) -> list[tuple[str, str, str]]:
    return [(c.field, c.old, c.new) for c in op.changes]


def only(plan: Any, kind: Kind) -> Any:
    (op,) = [op for op in plan.operations if op.kind is kind]
    return op


# -- groups --------------------------------------------------------------------------


def test_group_rename_shows_the_name_field_old_and_new() -> None:
    """The plan reader sees which field of the group changes, from what to what."""
    want = desired_state(SALES)
    want.groups.loc["sales", "name"] = "Sales & Marketing"
    plan = plan_for(want, state_view(SALES))
    op = only(plan, Kind.UPDATE_GROUP)
    assert (op.ref, op.name) == ("sales", "Sales & Marketing")
    assert changes(op) == [("name", "Group sales", "Sales & Marketing")]


def test_removal_from_a_group_the_store_has_no_name_for_has_an_empty_name() -> None:
    """A group the engine never created (HR names its ref only) has no name on record:
    the removal says so with an empty name rather than an invented one."""
    stored = Person("E1", groups=("sales", "it"))
    state = state_view(stored)
    state = replace(state, groups=state.groups.drop(index="it"))
    plan = plan_for(desired_state(Person("E1")), state)
    names = {op.ref: op.group_name for op in plan.operations if op.kind is Kind.REMOVE_MEMBERS}
    assert names == {"it": "", "sales": "Group sales"}


# -- restores ------------------------------------------------------------------------


def test_restore_always_sends_is_active_with_the_changed_fields() -> None:
    """A returning user must be made active again in Pluvo even though HR's is_active
    did not change; the other unchanged fields are not sent."""
    back = SALES.but(name="Back Again")
    state = state_view(
        Stored(SALES, left_action="archive"), Stored(Person("E2"), left_action="deactivate")
    )
    plan = plan_for(desired_state(back, Person("E2")), state)
    sent = {op.ref: op.send for op in plan.operations if op.kind is Kind.RESTORE_USER}
    assert sent == {"E1": ("name", "is_active"), "E2": ("is_active",)}


# -- leavers -------------------------------------------------------------------------


def test_leaver_by_end_date_reports_the_end_date_and_no_grace() -> None:
    """An end date decides at once: no grace was served and no run was missed, unlike
    someone gone from the sources, whose facts count the runs and name the grace."""
    e2, e3 = Person("E2", name="Ended"), Person("E3")
    gone = Stored(e3, missing_runs=30, missing_since=NOW - timedelta(days=90))
    want = desired_state(SALES, ended=["E2"])
    plan = plan_for(want, state_view(SALES, e2, gone), LeaverConfig(grace_runs=2, grace_days=7))
    facts = {op.ref: op.who for op in plan.operations if op.kind is Kind.ARCHIVE_USER}
    assert facts["E2"] == LeaverFacts(
        name="Ended", email="e2@example.com", since="2024-05-31", missing_runs=0, grace=""
    )
    assert (facts["E3"].since, facts["E3"].missing_runs, facts["E3"].grace) == (
        "2024-03-05",
        31,
        "2 run(s) and 7 day(s)",
    )


def test_leaver_whose_fields_cannot_be_loaded_has_an_empty_name_and_email() -> None:
    """A leaver whose stored fields are gone by the time they are read (a store view
    that returns no row for it) is still archived; its facts leave name and email empty
    rather than inventing them."""
    state = state_view(SALES, Person("E2"))
    load_fields = state.load_fields
    state = replace(state, load_fields=lambda refs: load_fields([]))
    op = only(plan_for(desired_state(SALES), state), Kind.ARCHIVE_USER)
    assert (op.ref, op.who.name, op.who.email) == ("E2", "", "")


def test_archive_without_any_way_to_read_pluvo_ids_has_no_id() -> None:
    """A store view that offers no Pluvo ids still plans the archive, id unknown."""
    state = replace(state_view(SALES, Person("E2")), load_ids=None)
    plan = plan_for(desired_state(SALES), state, LeaverConfig(grace_runs=0, archive_method="bulk"))
    op = only(plan, Kind.ARCHIVE_USER)
    assert (op.ref, op.pluvo_id) == ("E2", None)
