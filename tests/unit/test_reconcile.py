"""Reconcile's pure parts: canonical live values, the three-set drift, the owned live view
(fed to the real diff), the store refresh and adoption from the snapshot."""

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
from sync.core.plan import ExtraValue, Kind
from sync.model import USER_FIELDS, Desired
from sync.pluvo.ops import Call
from sync.pluvo.reads import offset_calls
from sync.pluvo.results import GroupInfo, Member

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
