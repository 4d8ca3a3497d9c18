"""Details of the plan and of reconcile's drift that people read or that Pluvo receives.

Each case pins one thing the broader diff and reconcile tests pass over: the field a
group rename names, what a leaver's facts say when an end date decided, when the user
was never missed before or when its fields cannot be read, what a restore sends, the
group name on a removal, where an archive's Pluvo id comes from, and the archived,
vanished, value and membership rows of the drift report.
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
from tests.unit.test_reconcile import desired, node, owned, person, snapshot, string_value

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


def test_leaver_never_seen_missing_is_missing_since_today() -> None:
    """The live view has no "missing since" (NaT) for someone who was present until now:
    this run starts the clock, so the facts say today rather than an unreadable date."""
    want = desired([person("A")])
    mine = owned([person("A"), person("LEFT")])
    live = snapshot([node("A"), node("LEFT")])
    options = DiffOptions(leavers=LeaverConfig(grace_runs=0), now=NOW)
    op = only(diff(want, live_view(want, mine, live), options), Kind.ARCHIVE_USER)
    assert (op.ref, op.who) == (
        "LEFT",
        LeaverFacts(
            name="Person LEFT", email="left@example.nl", since="2024-06-03", missing_runs=1
        ),
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


def test_vanished_users_are_of_kind_user_and_name_their_new_ref() -> None:
    """Owned users Pluvo no longer has are listed as users: one HR still wants (to be
    re-created), and one whose Pluvo id now carries another ref (re-keyed by hand)."""
    want = desired([person("A"), person("GONE")])
    mine = owned([person("A"), person("GONE"), person("OLD")])
    live = snapshot([node("A"), node("NEW", id="id-OLD")])
    drift = compute_drift(want, mine, live)
    assert drift.vanished.to_dict(orient="records") == [
        {"kind": "user", "ref": "GONE", "pluvo_id": "id-GONE", "desired": True, "now_ref": ""},
        {"kind": "user", "ref": "OLD", "pluvo_id": "id-OLD", "desired": False, "now_ref": "NEW"},
    ]


def test_value_pluvo_no_longer_has_is_drift_with_an_empty_live_value() -> None:
    """A value the engine set that was removed in Pluvo is drift like a changed one; the
    live side reads as empty (not a missing cell) in the report."""
    want = desired([person("A")], values=[("A", "job", "string", "Dev")])
    mine = owned(
        [person("A")], values=[("A", "job", "string", "Dev"), ("A", "team", "string", "Red")]
    )
    live = snapshot([node("A", extraCategoryValues=[string_value("team", "Blue")])])
    drift = compute_drift(want, mine, live)
    assert drift.value_drift.to_dict(orient="records") == [
        {"ref": "A", "category": "job", "applied": "Dev", "live": ""},
        {"ref": "A", "category": "team", "applied": "Red", "live": "Blue"},
    ]


def test_memberships_of_a_vanished_user_or_group_are_not_membership_drift() -> None:
    """A membership whose user or group vanished from Pluvo is covered by the vanished
    row (re-creating the object restores it), so only B, whose user and group both
    exist in Pluvo, is a membership gone from Pluvo."""
    want = desired([person("A"), person("B")], groups=["g1"])
    mine = owned(
        [person("A"), person("B"), person("GONE")],
        members=[("g1", "A"), ("g1", "B"), ("g1", "GONE"), ("lost", "A")],
        groups=["g1", "lost"],
    )
    live = snapshot([node("A"), node("B")], {"g1": ["A"]})
    drift = compute_drift(want, mine, live)
    assert drift.membership_drift.to_dict(orient="records") == [
        {"relation": "member", "group_ref": "g1", "user_ref": "B"}
    ]
    assert drift.vanished[["kind", "ref"]].to_dict(orient="records") == [
        {"kind": "group", "ref": "lost"},
        {"kind": "user", "ref": "GONE"},
    ]
