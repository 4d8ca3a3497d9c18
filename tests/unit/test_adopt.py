"""Adoption: users Pluvo already has are taken over, not created twice.

`look_up` reads Pluvo (here the in-memory FakePluvo) for the refs and emails a plan
would create; `match_people` is the rule; `adopt_in_plan` turns matched creations into
adoptions; `reject_ambiguous` moves users whose email belongs to someone else into the
rejections.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pandas as pd
import pytest

from sync.core.adopt import (
    Match,
    PluvoUser,
    adopt_in_plan,
    creations,
    look_up,
    match_people,
    reject_ambiguous,
)
from sync.core.plan import AdoptUser, CreateUser, Kind, Plan
from sync.model import ERROR
from tests.support.diffing import Person, desired_state, plan_for, state_view
from tests.support.fake_pluvo import FakePluvo, Fault


def pluvo_id(fake: FakePluvo, *, ref: str | None = None, email: str | None = None) -> str:
    for user in fake.state()["users"]:
        if (ref is not None and user["ref"] == ref) or (
            email is not None and user["email"] == email
        ):
            return str(user["id"])
    raise AssertionError(f"no seeded user {ref or email}")


def seeded(*users: dict[str, Any]) -> FakePluvo:
    fake = FakePluvo()
    fake.seed(users=users)
    fake.clear_records()
    return fake


def run_look_up(fake: FakePluvo, people: list[tuple[str, str]], match: list[str]) -> Any:
    return asyncio.run(look_up(fake, people, match))


# ---------------------------------------------------------------- look_up against Pluvo


def test_a_user_pluvo_has_under_our_ref_is_adopted_by_ref() -> None:
    fake = seeded({"ref": "E1", "name": "Eve", "email": "eve@acme.nl"})
    found = run_look_up(fake, [("E1", "other@acme.nl"), ("E2", "new@acme.nl")], ["ref", "email"])
    assert found.ambiguous == {}
    assert found.matches == {
        "E1": Match("E1", "ref", pluvo_id(fake, ref="E1"), "E1", False),
    }


def test_a_user_without_a_ref_is_adopted_by_email() -> None:
    fake = seeded({"ref": None, "name": "Hand", "email": "hand@acme.nl"})
    found = run_look_up(fake, [("H1", "hand@acme.nl")], ["ref", "email"])
    assert found.ambiguous == {}
    match = found.matches["H1"]
    assert (match.how, match.pluvo_id, match.pluvo_ref, match.archived) == (
        "email",
        pluvo_id(fake, email="hand@acme.nl"),
        None,
        False,
    )


def test_an_email_held_by_a_user_with_another_ref_is_ambiguous_not_adopted() -> None:
    fake = seeded({"ref": "OLD-7", "name": "Eve", "email": "eve@acme.nl"})
    found = run_look_up(fake, [("E1", "eve@acme.nl")], ["ref", "email"])
    assert found.matches == {}
    reason = found.ambiguous["E1"]
    assert "eve@acme.nl" in reason
    assert "'OLD-7'" in reason
    assert "not adopted" in reason


def test_an_archived_match_is_reported_archived() -> None:
    fake = seeded(
        {"ref": "E1", "name": "Eve", "email": "eve@acme.nl", "archived": True},
        {"ref": None, "name": "Hand", "email": "hand@acme.nl", "archived": True},
    )
    found = run_look_up(fake, [("E1", "eve@acme.nl"), ("H1", "hand@acme.nl")], ["ref", "email"])
    assert found.matches["E1"].archived is True
    assert found.matches["H1"].archived is True
    assert found.matches["H1"].how == "email"


def test_matching_by_ref_only_ignores_emails() -> None:
    fake = seeded(
        {"ref": "E1", "name": "Eve", "email": "eve@acme.nl"},
        {"ref": None, "name": "Hand", "email": "hand@acme.nl"},
    )
    found = run_look_up(fake, [("E1", "x@acme.nl"), ("H1", "hand@acme.nl")], ["ref"])
    assert set(found.matches) == {"E1"}
    assert found.matches["E1"].how == "ref"
    assert all(c.field == "user" for c in fake.sent())
    assert len(fake.sent()) == 2  # one read per ref, none per email


def test_matching_by_email_only_ignores_refs() -> None:
    fake = seeded(
        {"ref": "E1", "name": "Eve", "email": "eve@acme.nl"},
        {"ref": None, "name": "Hand", "email": "hand@acme.nl"},
    )
    found = run_look_up(fake, [("E1", "e1-new@acme.nl"), ("H1", "hand@acme.nl")], ["email"])
    assert set(found.matches) == {"H1"}
    assert found.matches["H1"].how == "email"
    # Our own ref on the email's owner is not ambiguous.
    same = run_look_up(fake, [("E1", "eve@acme.nl")], ["email"])
    assert same.matches["E1"].how == "email"
    assert same.ambiguous == {}


def test_no_match_kinds_reads_nothing_and_adopts_nobody() -> None:
    fake = seeded({"ref": "E1", "name": "Eve", "email": "eve@acme.nl"})
    found = run_look_up(fake, [("E1", "eve@acme.nl")], [])
    assert (found.matches, found.ambiguous) == ({}, {})
    assert fake.sent() == []


def test_nobody_to_create_reads_nothing() -> None:
    fake = seeded({"ref": "E1", "name": "Eve", "email": "eve@acme.nl"})
    found = run_look_up(fake, [], ["ref", "email"])
    assert (found.matches, found.ambiguous) == ({}, {})
    assert fake.sent() == []


def test_an_empty_email_is_not_looked_up() -> None:
    fake = seeded({"ref": None, "name": "Hand", "email": "hand@acme.nl"})
    found = run_look_up(fake, [("H1", "")], ["ref", "email"])
    assert found.matches == {}
    assert len(fake.sent()) == 1  # the ref only


def test_a_failed_lookup_is_raised_not_taken_for_no_match() -> None:
    fake = seeded({"ref": "E1", "name": "Eve", "email": "eve@acme.nl"})
    fake.inject(Fault.transient("lookup gave up"))
    with pytest.raises(Exception, match="lookup gave up"):
        run_look_up(fake, [("E1", "eve@acme.nl")], ["ref", "email"])


# ---------------------------------------------------------------- the matching rule


def test_match_people_prefers_ref_and_checks_everyone() -> None:
    by_ref = {"A": PluvoUser("p-a", "A", False), "C": PluvoUser("p-c", "C", True)}
    by_email = {
        "a@x.nl": PluvoUser("p-other", "Z", False),
        "b@x.nl": PluvoUser("p-b", None, False),
        "d@x.nl": PluvoUser("p-d", "Q", False),
    }
    people = [("A", "a@x.nl"), ("B", "b@x.nl"), ("C", "c@x.nl"), ("D", "d@x.nl"), ("E", "")]
    result = match_people(people, by_ref, by_email, ["ref", "email"])
    # A matched by ref wins over its email held by someone else; users after it are
    # still matched.
    assert result.matches == {
        "A": Match("A", "ref", "p-a", "A", False),
        "B": Match("B", "email", "p-b", None, False),
        "C": Match("C", "ref", "p-c", "C", True),
    }
    assert set(result.ambiguous) == {"D"}
    assert "'Q'" in result.ambiguous["D"]


def test_match_people_without_match_kinds_matches_nobody() -> None:
    by_ref = {"A": PluvoUser("p-a", "A", False)}
    by_email = {"a@x.nl": PluvoUser("p-a", None, False)}
    result = match_people([("A", "a@x.nl")], by_ref, by_email, [])
    assert (result.matches, result.ambiguous) == ({}, {})


# ---------------------------------------------------------------- the plan


def create_plan(*persons: Person, known: tuple[Person, ...] = ()) -> Plan:
    return plan_for(desired_state(*persons, *known), state_view(*known))


def test_creations_lists_only_the_users_the_plan_creates() -> None:
    known = Person("K1", name="Kept")
    plan = create_plan(
        Person("N1", email="n1@acme.nl"), Person("N2"), known=(known.but(name="Renamed"),)
    )
    assert sorted(creations(plan)) == [("N1", "n1@acme.nl"), ("N2", "n2@example.com")]


def test_adopt_in_plan_turns_matched_creations_into_adoptions() -> None:
    plan = create_plan(Person("N1"), Person("N2"), Person("N3"))
    matches = {
        "N1": Match("N1", "ref", "p-1", "N1", False),
        "N3": Match("N3", "email", "p-3", None, True),
    }
    adopted = adopt_in_plan(plan, matches)
    assert adopted is not plan
    by_ref = {op.ref: op for op in adopted if op.kind in (Kind.CREATE_USER, Kind.ADOPT_USER)}
    original = {op.ref: op for op in plan if isinstance(op, CreateUser)}
    assert isinstance(by_ref["N2"], CreateUser)
    for ref, how, pid, unarchive in (("N1", "ref", "p-1", False), ("N3", "email", "p-3", True)):
        op = by_ref[ref]
        assert isinstance(op, AdoptUser)
        assert (op.matched_by, op.pluvo_id, op.unarchive) == (how, pid, unarchive)
        assert op.fields == original[ref].fields
        assert op.send == original[ref].send
        assert op.changes == original[ref].changes
    assert sorted(adopted.adopted) == ["N1", "N3"]
    assert len(adopted) == len(plan)
    # The original plan is untouched.
    assert all(not isinstance(op, AdoptUser) for op in plan)
    assert plan.adopted == ()


def test_adopt_in_plan_without_matches_keeps_the_plan() -> None:
    plan = create_plan(Person("N1"))
    assert adopt_in_plan(plan, {}) is plan


def test_adopt_in_plan_leaves_other_operations_of_a_matched_ref_alone() -> None:
    known = Person("K1")
    plan = create_plan(Person("N1"), known=(known.but(name="New name"),))
    adopted = adopt_in_plan(plan, {"K1": Match("K1", "ref", "p-k", "K1", False)})
    assert [op.kind for op in adopted] == [op.kind for op in plan]
    assert adopted.adopted == ()


# ---------------------------------------------------------------- ambiguous users


def test_reject_ambiguous_moves_the_user_into_the_rejections() -> None:
    desired = desired_state(
        Person("A1", groups=("G1",), manages=("G2",), extras={"department": "Sales"}),
        Person("B1", groups=("G1",), extras={"department": "HR"}),
    )
    reject_ambiguous(desired, {"A1": "email a1@example.com already belongs to someone"})
    assert list(desired.users.index) == ["B1"]
    assert set(desired.extra_values["user_ref"]) == {"B1"}
    assert set(desired.memberships["user_ref"]) == {"B1"}
    assert desired.managers.empty
    (row,) = desired.rejections.to_dict("records")
    assert row == {
        "source": "hr",
        "file": "hr.csv",
        "line": 2,
        "column": "email",
        "ref": "A1",
        "severity": ERROR,
        "reason": "email a1@example.com already belongs to someone",
    }


def test_reject_ambiguous_keeps_earlier_rejections_and_orders_by_ref() -> None:
    desired = desired_state(Person("A1"), Person("B1"), Person("C1"), rejected=["X9"])
    before = len(desired.rejections)
    reject_ambiguous(desired, {"C1": "c", "A1": "a"})
    new = desired.rejections.iloc[before:]
    assert list(new["ref"]) == ["A1", "C1"]
    assert list(new["line"]) == [2, 4]
    assert "X9" in set(desired.rejections["ref"])
    assert list(desired.users.index) == ["B1"]


def test_reject_ambiguous_with_nothing_changes_nothing() -> None:
    desired = desired_state(Person("A1"))
    users = desired.users
    reject_ambiguous(desired, {})
    assert desired.users is users
    assert desired.rejections.empty
    pd.testing.assert_frame_equal(desired.users, users)


def test_reject_ambiguous_without_provenance_gives_blank_origin() -> None:
    desired = desired_state(Person("A1"))
    desired.users = desired.users.drop(columns=["_source", "_file", "_line"])
    reject_ambiguous(desired, {"A1": "taken"})
    (row,) = desired.rejections.to_dict("records")
    assert (row["source"], row["file"], row["line"]) == ("", "", 0)
