"""Reconcile's pure parts: canonical live values, the three-set drift (and the rows its
report shows), the owned live view (fed to the real diff: leavers' facts and Pluvo ids
included), the store refresh and adoption from the snapshot."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from sync.commands.reconcile import (
    Owned,
    adoption_from_live,
    compute_drift,
    live_view,
    plan_refresh,
)
from sync.commands.reconcile.live import (
    USER_NODE_SELECTION,
    LiveSnapshot,
    build_snapshot,
    canonical_datetime,
    canonical_user,
    canonical_values,
)
from sync.config import LeaverConfig
from sync.core.adopt import creations
from sync.core.diff import DiffOptions, diff
from sync.core.plan import ExtraValue, Kind, LeaverFacts
from sync.model import USER_FIELDS, Desired
from sync.pluvo.ops import Call
from sync.pluvo.reads import offset_calls
from sync.pluvo.results import GroupInfo, Member
from tests.support.diffing import NOW

FIELDS = {"language": "NL", "roles": "PARTICIPANT", "is_active": "true"}


def person(ref: str, **changes: str) -> dict[str, str]:
    return {
        "ref": ref,
        "email": f"{ref.lower()}@example.nl",
        "name": f"Person {ref}",
        **FIELDS,
        **changes,
    }


def desired(
    users: list[dict[str, str]],
    values: list[tuple[str, str, str, str]] = (),  # type: ignore[assignment]
    members: list[tuple[str, str]] = (),  # type: ignore[assignment]
    groups: list[str] = (),  # type: ignore[assignment]
) -> Desired:
    d = Desired()
    frame = pd.DataFrame(users).set_index("ref")
    frame["_source"], frame["_file"], frame["_line"] = "hr", "hr.csv", 2
    d.users = frame
    d.extra_values = pd.DataFrame(
        [
            {"user_ref": u, "category_ref": c, "category_type": t, "value": v}
            for u, c, t, v in values
        ],
        columns=["user_ref", "category_ref", "category_type", "value"],
    )
    d.memberships = pd.DataFrame(list(members), columns=["group_ref", "user_ref"])
    d.groups = pd.DataFrame(
        {"name": [g.upper() for g in groups], "_source": "static"},
        index=pd.Index(list(groups), name="ref"),
    )
    return d


def owned(
    users: list[dict[str, str]],
    values: list[tuple[str, str, str, str]] = (),  # type: ignore[assignment]
    members: list[tuple[str, str]] = (),  # type: ignore[assignment]
    groups: list[str] = (),  # type: ignore[assignment]
    left: dict[str, str] | None = None,
) -> Owned:
    frame = pd.DataFrame(users).set_index("ref")
    frame["pluvo_id"] = [f"id-{r}" for r in frame.index]
    frame["owned"] = "created"
    left = left or {}
    frame["archived"] = [left.get(r) == "archive" for r in frame.index]
    frame["left_action"] = pd.Series(
        [left.get(r) for r in frame.index], index=frame.index, dtype=object
    )
    frame["missing_since"] = pd.NaT
    frame["missing_runs"] = 0
    return Owned(
        users=frame,
        groups=pd.DataFrame(
            {"pluvo_id": [f"g-{g}" for g in groups], "name": [g.upper() for g in groups]},
            index=pd.Index(list(groups), name="ref"),
        ),
        memberships=pd.DataFrame(list(members), columns=["group_ref", "user_ref"]),
        managers=pd.DataFrame(columns=["group_ref", "user_ref"]),
        extra_values=pd.DataFrame(
            [
                {"user_ref": u, "category_ref": c, "category_type": t, "value": v}
                for u, c, t, v in values
            ],
            columns=["user_ref", "category_ref", "category_type", "value"],
        ),
    )


def node(ref: str | None, **changes: Any) -> dict[str, Any]:
    base = person(ref or "x")
    data: dict[str, Any] = {
        "id": f"id-{ref}",
        "ref": ref,
        "email": base["email"].upper(),
        "name": base["name"],
        "isActive": True,
        "archived": False,
        "roles": ["PARTICIPANT"],
        "language": "NL",
        "extraCategoryValues": [],
    }
    data.update(changes)
    return data


def string_value(category: str, value: str) -> dict[str, Any]:
    return {
        "__typename": "ExtraCategoryStringValue",
        "category": {"ref": category},
        "stringValue": value,
    }


def snapshot(
    nodes: list[dict[str, Any]], groups: dict[str, list[str]] | None = None
) -> LiveSnapshot:
    infos = [
        GroupInfo(
            id=f"g-{ref}",
            ref=ref,
            name=ref.upper(),
            members=tuple(Member(id=f"id-{u}", ref=u) for u in users),
        )
        for ref, users in (groups or {}).items()
    ]
    return build_snapshot(nodes, infos)


# ------------------------------------------------------------------ canonical forms


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("2015-03-01T00:00:00+00:00", "2015-03-01"),
        ("2015-03-01T00:00:00Z", "2015-03-01"),
        ("2015-03-01T01:00:00+01:00", "2015-03-01"),
        ("2015-03-01T09:30:00+00:00", "2015-03-01T09:30:00+00:00"),
        ("2015-03-01T10:30:00.250+01:00", "2015-03-01T09:30:00+00:00"),
        ("2015-03-01T09:30:00", "2015-03-01T09:30:00+00:00"),
    ],
)
def test_datetimes_are_canonical_like_the_mapping(raw: str, canonical: str) -> None:
    assert canonical_datetime(raw) == canonical


def test_user_fields_and_values_are_canonical() -> None:
    user = canonical_user(
        {"id": "u1", "email": "A.B@X.NL", "name": "A", "roles": ["TRAINER", "MANAGER"],
         "language": "EN", "isActive": None, "archived": None}
    )  # fmt: skip
    assert user == {
        "pluvo_id": "u1",
        "email": "a.b@x.nl",
        "name": "A",
        "language": "EN",
        "roles": "MANAGER,TRAINER",
        "is_active": "true",
        "archived": False,
    }
    multi = {"ref": "skills", "categoryType": "MULTISELECT"}
    single = {"ref": "loc", "categoryType": "CHOICE"}

    def option(category: dict[str, str], text: str) -> dict[str, Any]:
        return {
            "__typename": "ExtraCategoryChoiceValue",
            "category": category,
            "choiceValue": {"stringValue": text},
        }

    values = canonical_values(
        "r1",
        [
            option(multi, "SQL"),
            {"__typename": "ExtraCategoryBooleanValue", "category": {"ref": "ext"},
             "booleanValue": False},
            option(multi, "Excel"),
            option(single, "Utrecht"),
            {"__typename": "ExtraCategoryDatetimeValue", "category": {"ref": "start"},
             "datetimeValue": "2015-03-01T00:00:00+00:00"},
            string_value("empty", ""),
        ],
    )  # fmt: skip
    assert sorted((v["category_ref"], v["category_type"], v["value"]) for v in values) == [
        ("ext", "boolean", "false"),
        ("loc", "choice", "Utrecht"),
        ("skills", "multiselect", "Excel\nSQL"),
        ("start", "datetime", "2015-03-01"),
    ]


def page_calls(count: int, *, archived: bool = False) -> list[Call]:
    return offset_calls("paginatedUsers", {"archived": archived}, USER_NODE_SELECTION, count)


def test_pages_cover_the_count_with_offsets() -> None:
    calls = page_calls(101)
    assert [c.args["offset"] for c in calls] == [0, 50, 100]
    assert all(c.args["first"] == 50 and c.args["archived"] is False for c in calls)
    assert "archived: false" in calls[0].render("a0")
    assert [c.args["archived"] for c in page_calls(3, archived=True)] == [True]
    assert page_calls(0) == []
    later = offset_calls("paginatedUsers", {}, "id", 101, start=50, page_size=500)
    assert [(c.args["offset"], c.args["first"]) for c in later] == [(50, 50), (100, 50)]


def test_snapshot_maps_members_by_id_and_keeps_unreffed_apart() -> None:
    # Members come back without their ref on some Pluvo versions: found by id.
    group = GroupInfo(id="g", ref="g1", name="G1", members=(Member(id="id-A", ref=None),))
    live = build_snapshot([node("A"), node(None, id="loose", email="LOOSE@x.nl")], [group])
    assert list(live.users.index) == ["A"]
    assert live.users.loc["A", "email"] == "a@example.nl"
    assert live.unreffed.to_dict(orient="records") == [
        {"pluvo_id": "loose", "email": "loose@x.nl", "name": "Person x", "archived": False}
    ]
    assert live.memberships.to_dict(orient="records") == [{"group_ref": "g1", "user_ref": "A"}]


# ------------------------------------------------------------------ drift


def test_drift_kinds_with_their_counts() -> None:
    want = desired(
        [person("A"), person("B"), person("C")],
        values=[("A", "job", "string", "Dev")],
        members=[("g1", "A"), ("g1", "B")],
        groups=["g1"],
    )
    mine = owned(
        [person("A"), person("B"), person("C"), person("GONE")],
        values=[("A", "job", "string", "Dev")],
        members=[("g1", "A"), ("g1", "B")],
        groups=["g1", "g-gone"],
    )
    live = snapshot(
        [
            node("A", name="Renamed", extraCategoryValues=[string_value("job", "Boss")]),
            node("B", archived=True),
            node("C"),
            node("STRANGER"),
        ],
        {"g1": ["A", "STRANGER"]},
    )
    drift = compute_drift(want, mine, live)
    assert drift.counts() == {
        "unknown_users": 1,
        "field_drift": 2,
        "value_drift": 1,
        "membership_drift": 1,
        "foreign_members": 1,
        "vanished": 2,
    }
    assert drift.field_drift.to_dict(orient="records") == [
        {"ref": "A", "field": "name", "applied": "Person A", "live": "Renamed"},
        {"ref": "B", "field": "archived", "applied": "false", "live": "true"},
    ]
    assert drift.value_drift.iloc[0].to_dict() == {
        "ref": "A", "category": "job", "applied": "Dev", "live": "Boss"
    }  # fmt: skip
    assert drift.membership_drift.to_dict(orient="records") == [
        {"relation": "member", "group_ref": "g1", "user_ref": "B"}
    ]
    assert drift.foreign_members.iloc[0]["user_ref"] == "STRANGER"
    assert set(drift.vanished["ref"]) == {"GONE", "g-gone"}
    assert drift.owned_total == 6


def test_no_drift_when_live_matches_and_unmanaged_language_is_ignored() -> None:
    want = desired([person("A", language="")])
    mine = owned([person("A", language="")])
    live = snapshot([node("A", language="EN")])
    drift = compute_drift(want, mine, live)
    assert drift.owned_total == 0
    plan = diff(want, live_view(want, mine, live))
    assert plan.operations == ()


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


# ------------------------------------------------------------------ the live view + diff


def test_apply_plan_corrects_owned_drift_and_never_removes_foreign() -> None:
    want = desired(
        [person("A"), person("B"), person("C")],
        values=[("A", "job", "string", "Dev")],
        members=[("g1", "A"), ("g1", "B")],
        groups=["g1"],
    )
    mine = owned(
        [person("A"), person("B"), person("C")],
        values=[("A", "job", "string", "Dev"), ("C", "job", "string", "Old")],
        members=[("g1", "A"), ("g1", "B"), ("g1", "C")],
        groups=["g1"],
    )
    live = snapshot(
        [
            node("A", name="Renamed", extraCategoryValues=[
                string_value("job", "Boss"), string_value("hobby", "Chess")]),
            node("B", archived=True),
            node("C", extraCategoryValues=[string_value("job", "Old")]),
            node("STRANGER"),
        ],
        {"g1": ["A", "C", "STRANGER"], "g2": ["A"]},
    )  # fmt: skip
    plan = diff(want, live_view(want, mine, live))
    by_kind = {(op.kind, op.ref): op for op in plan.operations}
    assert set(by_kind) == {
        (Kind.UPDATE_USER, "A"),
        (Kind.RESTORE_USER, "B"),
        (Kind.SET_VALUES, "A"),
        (Kind.SET_VALUES, "C"),
        (Kind.ADD_MEMBERS, "g1"),
        (Kind.REMOVE_MEMBERS, "g1"),
    }
    assert by_kind[(Kind.UPDATE_USER, "A")].send == ("name",)
    assert by_kind[(Kind.UPDATE_USER, "A")].fields.name == "Person A"
    assert by_kind[(Kind.SET_VALUES, "A")].values == (ExtraValue("job", "string", "Dev"),)
    # C's old value was the engine's, HR dropped it: cleared. A's hobby is not ours.
    assert by_kind[(Kind.SET_VALUES, "C")].values == (ExtraValue("job", "string", None),)
    assert by_kind[(Kind.ADD_MEMBERS, "g1")].users == ("B",)
    # C was added by the engine and HR no longer wants it; STRANGER and g2 are foreign.
    assert by_kind[(Kind.REMOVE_MEMBERS, "g1")].users == ("C",)


def test_a_vanished_owned_user_is_created_again_and_undone_leavers_are_due() -> None:
    want = desired([person("A")])
    mine = owned([person("A"), person("LEFT")], left={"LEFT": "archive"})
    live = snapshot([node("LEFT", archived=False)])
    options = DiffOptions(leavers=LeaverConfig(grace_runs=3, grace_days=30))
    plan = diff(want, live_view(want, mine, live), options)
    assert [(op.kind, op.ref) for op in plan.operations] == [
        (Kind.CREATE_USER, "A"),
        (Kind.ARCHIVE_USER, "LEFT"),
    ]


def only(plan: Any, kind: Kind) -> Any:
    (op,) = [op for op in plan.operations if op.kind is kind]
    return op


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


# ------------------------------------------------------------------ refresh and adoption


def test_refresh_learns_what_already_matches_and_forgets_what_vanished() -> None:
    want = desired(
        [person("A", name="New name"), person("B")],
        values=[("A", "job", "string", "Dev")],
        members=[("g1", "A"), ("g1", "B")],
        groups=["g1", "g2"],
    )
    mine = owned(
        [person("A"), person("B"), person("GONE")],
        members=[("g1", "B"), ("g1", "GONE")],
        groups=["g1", "g-old"],
    )
    live = snapshot(
        [
            node("A", name="New name", extraCategoryValues=[string_value("job", "Dev")]),
            node("B", id="id-B-new"),
        ],
        {"g1": ["A", "B"], "g2": []},
    )
    plan = diff(want, live_view(want, mine, live))
    assert plan.operations == (), [op.description for op in plan.operations]
    refresh = plan_refresh(want, mine, live, plan)
    assert [(r, f["name"]) for r, f, _, _ in refresh.users] == [("A", "New name")]
    assert refresh.pluvo_ids == [("B", "id-B-new")]
    assert refresh.groups == [("g2", "G2", "g-g2", "adopted")]
    assert refresh.pairs == [("member", "g1", ["A"], True)]
    assert refresh.values == [("A", [("job", "string", "Dev")])]
    assert refresh.dropped_users == ["GONE"]
    assert refresh.dropped_groups == ["g-old"]


def test_adoption_from_the_snapshot() -> None:
    want = desired([person("NEW"), person("BYMAIL"), person("CLASH"), person("FRESH")])
    mine = owned([person("OTHER")])
    live = snapshot(
        [
            node("NEW", archived=True),
            node(None, id="loose", email="bymail@example.nl"),
            node("OTHER", email="clash@example.nl"),
        ]
    )
    plan = diff(want, live_view(want, mine, live))
    adoption = adoption_from_live(creations(plan), live, ["ref", "email"])
    assert {r: (m.how, m.pluvo_id, m.archived) for r, m in adoption.matches.items()} == {
        "NEW": ("ref", "id-NEW", True),
        "BYMAIL": ("email", "loose", False),
    }
    assert list(adoption.ambiguous) == ["CLASH"]
    assert adoption_from_live(creations(plan), live, ["ref"]).ambiguous == {}


def test_owned_users_frame_has_every_field() -> None:
    mine = owned([person("A")])
    assert set(USER_FIELDS) <= set(mine.users.columns)
