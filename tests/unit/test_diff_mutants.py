"""Details of the plan and of reconcile's drift that people read or that Pluvo receives.

Each case pins one thing the broader diff and reconcile tests pass over: the field a
group rename names, what a leaver's facts say when an end date decided, what a
restore sends, the group name on a removal, where an archive's Pluvo id comes from,
and the archived and vanished rows of the drift report.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from sync.commands.reconcile import compute_drift, live_view
from sync.config import LeaverConfig
from sync.core.diff import DiffOptions, diff
from sync.core.plan import Kind, LeaverFacts
from tests.support.diffing import NOW, Person, Stored, desired_state, plan_for, state_view
from tests.unit.test_reconcile import desired, node, owned, person, snapshot

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


def test_archive_without_any_way_to_read_pluvo_ids_has_no_id() -> None:
    """A store view that offers no Pluvo ids still plans the archive, id unknown."""
    state = replace(state_view(SALES, Person("E2")), load_ids=None)
    plan = plan_for(desired_state(SALES), state, LeaverConfig(grace_runs=0, archive_method="bulk"))
    op = only(plan, Kind.ARCHIVE_USER)
    assert (op.ref, op.pluvo_id) == ("E2", None)


def test_reconcile_archive_uses_the_live_pluvo_id() -> None:
    """The live view carries Pluvo's ids with its users: a leaver undone by hand is
    archived again under the id Pluvo has now."""
    want = desired([person("A")])
    mine = owned([person("A"), person("LEFT")], left={"LEFT": "archive"})
    live = snapshot([node("A"), node("LEFT", id="live-LEFT", archived=False)])
    options = DiffOptions(leavers=LeaverConfig(archive_method="bulk"))
    plan = diff(want, live_view(want, mine, live), options)
    op = only(plan, Kind.ARCHIVE_USER)
    assert (op.ref, op.pluvo_id) == ("LEFT", "live-LEFT")


# -- drift ---------------------------------------------------------------------------


def test_archived_drift_of_a_user_unarchived_in_pluvo() -> None:
    """The store archived B, someone brought it back in Pluvo: applied true, live false."""
    want = desired([person("A")])
    mine = owned([person("A"), person("B")], left={"B": "archive"})
    live = snapshot([node("A"), node("B", archived=False)])
    drift = compute_drift(want, mine, live)
    assert drift.field_drift.to_dict(orient="records") == [
        {"ref": "B", "field": "archived", "applied": "true", "live": "false"}
    ]


def test_vanished_groups_say_whether_hr_still_wants_them() -> None:
    """A vanished group HR still names is re-created by --apply; one it dropped is not."""
    want = desired([person("A")], groups=["kept"])
    mine = owned([person("A")], groups=["kept", "dropped"])
    drift = compute_drift(want, mine, snapshot([node("A")]))
    assert drift.vanished.to_dict(orient="records") == [
        {
            "kind": "group",
            "ref": "dropped",
            "pluvo_id": "g-dropped",
            "desired": False,
            "now_ref": "",
        },
        {"kind": "group", "ref": "kept", "pluvo_id": "g-kept", "desired": True, "now_ref": ""},
    ]
