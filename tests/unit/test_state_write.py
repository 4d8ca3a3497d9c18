"""What the state store keeps once Pluvo confirmed a change (sync/state/write.py).

A real SQLite store, migrated, written through the functions a run uses and read back.
The hashes stored must be those the diff computes from the same data (sync.hashing),
or the next run would plan changes nobody made.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select

from sync.hashing import extras_hash_at, fields_hash, groups_hash_at
from sync.model import USER_FIELDS
from sync.state.models import ExtraValueRow, GroupRow, ManagerRow, MembershipRow, UserRow
from sync.state.read import read_owned
from sync.state.store import StateStore
from sync.state.write import (
    forget_groups,
    forget_users,
    record_group,
    record_leaver,
    record_links,
    record_pairs,
    record_pluvo_ids,
    record_presence,
    record_users,
    record_values,
)

T0 = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)


def write(store: StateStore, fn: Any, *args: Any, **kwargs: Any) -> None:
    with store.session() as session, session.begin():
        fn(session, *args, **kwargs)


def fields(ref: str, **changes: str) -> dict[str, str]:
    base = {
        "email": f"{ref.lower()}@acme.nl",
        "name": f"Person {ref}",
        "language": "NL",
        "roles": "PARTICIPANT",
        "is_active": "true",
    }
    return {**base, **changes}


def expected_fields_hash(ref: str, values: dict[str, str]) -> int:
    frame = pd.DataFrame([values], index=[ref], columns=list(USER_FIELDS))
    return int(fields_hash(frame).iloc[0])


def user(store: StateStore, ref: str) -> UserRow | None:
    with store.session() as session:
        row = session.get(UserRow, ref)
        if row is not None:
            session.expunge(row)
        return row


def naive(stamp: datetime | None) -> datetime | None:
    return None if stamp is None else stamp.replace(tzinfo=None)


def stored_extras_hash(store: StateStore, ref: str) -> int:
    owned = read_owned(store.engine)
    values = owned.extra_values[["user_ref", "category_ref", "value"]]
    return int(extras_hash_at(values, pd.Index([ref]))[0])


def stored_groups_hash(store: StateStore, ref: str) -> int:
    owned = read_owned(store.engine)
    return int(groups_hash_at(owned.memberships, pd.Index([ref]))[0])


# ---------------------------------------------------------------- users


def test_new_users_are_recorded_as_created_or_adopted(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1", name="Bea"), "p-b1", False)],
        T0,
    )
    owned = read_owned(store.engine).users
    assert owned.loc["A1", "owned"] == "created"
    assert owned.loc["B1", "owned"] == "adopted"
    assert owned.loc["A1", "pluvo_id"] == "p-a1"
    assert owned.loc["B1", "name"] == "Bea"
    for ref, values in (("A1", fields("A1")), ("B1", fields("B1", name="Bea"))):
        row = user(store, ref)
        assert row is not None
        assert row.fields_hash == expected_fields_hash(ref, values)
        assert (row.archived, row.left_action, row.missing_runs) == (False, None, 0)
        assert naive(row.first_seen) == naive(T0) == naive(row.last_seen)
        assert (row.extras_hash, row.groups_hash) == (0, 0)


def test_the_same_ref_twice_in_one_batch_is_inserted_once(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("A1", fields("A1", name="Again"), None, True)],
        T0,
    )
    row = user(store, "A1")
    assert row is not None
    assert (row.name, row.pluvo_id) == ("Again", "p-a1")


def test_an_update_keeps_the_known_pluvo_id_unless_a_new_one_is_given(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1"), "p-b1", True)],
        T0,
    )
    write(
        store,
        record_users,
        [
            ("A1", fields("A1", name="Ann"), None, False),
            ("B1", fields("B1", email="new@acme.nl"), "p-b1-new", False),
        ],
        T1,
    )
    a1, b1 = user(store, "A1"), user(store, "B1")
    assert a1 is not None
    assert b1 is not None
    assert (a1.pluvo_id, a1.name, a1.owned) == ("p-a1", "Ann", "created")
    assert (b1.pluvo_id, b1.email, b1.owned) == ("p-b1-new", "new@acme.nl", "created")
    assert a1.fields_hash == expected_fields_hash("A1", fields("A1", name="Ann"))
    assert b1.fields_hash == expected_fields_hash("B1", fields("B1", email="new@acme.nl"))
    assert naive(a1.first_seen) == naive(T0)
    assert naive(a1.last_seen) == naive(T1)


@pytest.mark.parametrize("action", ["archive", "deactivate"])
def test_a_returning_leaver_is_restored(store: StateStore, action: str) -> None:
    write(store, record_users, [("A1", fields("A1"), "p-a1", True)], T0)
    write(store, record_presence, set(), T0)
    write(store, record_presence, set(), T1)
    write(store, record_leaver, "A1", action, T1)
    gone = user(store, "A1")
    assert gone is not None
    assert gone.left_action == action
    assert gone.missing_runs == 2
    write(store, record_users, [("A1", fields("A1"), None, False)], T2)
    back = user(store, "A1")
    assert back is not None
    assert back.archived is False
    assert back.left_action is None
    assert back.missing_runs == 0
    assert back.missing_since is None
    assert back.is_active == "true"
    assert back.pluvo_id == "p-a1"
    assert back.fields_hash == expected_fields_hash("A1", fields("A1"))
    assert naive(back.last_seen) == naive(T2)


def test_nothing_to_record_writes_nothing(store: StateStore) -> None:
    write(store, record_users, [], T0)
    write(store, record_values, [])
    write(store, record_pairs, MembershipRow, "G1", [], add=True)
    write(store, record_pluvo_ids, [])
    assert read_owned(store.engine).users.empty


# ---------------------------------------------------------------- leavers


def test_an_archived_leaver_keeps_its_fields(store: StateStore) -> None:
    write(store, record_users, [("A1", fields("A1"), "p-a1", True)], T0)
    write(store, record_leaver, "A1", "archive", T1)
    row = user(store, "A1")
    assert row is not None
    assert (row.archived, row.left_action, row.is_active) == (True, "archive", "true")
    assert row.fields_hash == expected_fields_hash("A1", fields("A1"))


def test_a_deactivated_leaver_is_inactive_with_a_matching_hash(store: StateStore) -> None:
    write(store, record_users, [("A1", fields("A1"), "p-a1", True)], T0)
    write(store, record_leaver, "A1", "deactivate", T1)
    row = user(store, "A1")
    assert row is not None
    assert (row.archived, row.left_action, row.is_active) == (False, "deactivate", "false")
    assert row.fields_hash == expected_fields_hash("A1", fields("A1", is_active="false"))


def test_a_leaver_the_store_does_not_know_is_ignored(store: StateStore) -> None:
    write(store, record_leaver, "NOBODY", "archive", T1)
    assert user(store, "NOBODY") is None


# ---------------------------------------------------------------- extra values


def test_values_are_stored_replaced_and_cleared_with_their_hash(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1"), "p-b1", True)],
        T0,
    )
    write(
        store,
        record_values,
        [
            ("A1", [("department", "string", "Sales"), ("job_title", "string", "Rep")]),
            ("B1", [("department", "string", "HR")]),
        ],
    )
    a1 = user(store, "A1")
    assert a1 is not None
    assert a1.extras_hash != 0
    assert a1.extras_hash == stored_extras_hash(store, "A1")
    write(
        store,
        record_values,
        [("A1", [("department", "string", "Support"), ("job_title", "string", None)])],
    )
    values = read_owned(store.engine).extra_values
    a1_values = values[values["user_ref"] == "A1"]
    assert a1_values[["category_ref", "value"]].values.tolist() == [["department", "Support"]]
    a1 = user(store, "A1")
    assert a1 is not None
    assert a1.extras_hash == stored_extras_hash(store, "A1")
    # B1 untouched
    b1 = user(store, "B1")
    assert b1 is not None
    assert b1.extras_hash == stored_extras_hash(store, "B1") != 0


def test_clearing_every_value_leaves_the_hash_of_no_values(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1"), "p-b1", True)],
        T0,
    )
    write(
        store,
        record_values,
        [("A1", [("department", "string", "Sales")]), ("B1", [("department", "string", "HR")])],
    )
    write(store, record_values, [("A1", [("department", "string", None)])])
    a1 = user(store, "A1")
    assert a1 is not None
    assert a1.extras_hash == 0
    write(store, record_values, [("B1", [("department", "string", None)])])
    b1 = user(store, "B1")
    assert b1 is not None
    assert b1.extras_hash == 0
    assert read_owned(store.engine).extra_values.empty


def test_a_value_set_then_cleared_in_one_batch_is_gone(store: StateStore) -> None:
    write(store, record_users, [("A1", fields("A1"), "p-a1", True)], T0)
    write(store, record_values, [("A1", [("department", "string", "Sales")])])
    write(
        store,
        record_values,
        [("A1", [("department", "string", "Ops")]), ("A1", [("department", "string", None)])],
    )
    assert read_owned(store.engine).extra_values.empty
    a1 = user(store, "A1")
    assert a1 is not None
    assert a1.extras_hash == 0


# ---------------------------------------------------------------- memberships, managers


def test_memberships_add_idempotently_and_remove_with_group_hashes(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1"), "p-b1", True)],
        T0,
    )
    write(store, record_group, "G1", "Group 1", "pg-1", "created")
    write(store, record_group, "G2", "Group 2", "pg-2", "created")
    write(store, record_pairs, MembershipRow, "G1", ["A1", "B1"], add=True)
    write(store, record_pairs, MembershipRow, "G1", ["A1"], add=True)  # again: no error
    write(store, record_pairs, MembershipRow, "G2", ["A1"], add=True)
    pairs = read_owned(store.engine).memberships
    assert sorted(map(tuple, pairs[["group_ref", "user_ref"]].values.tolist())) == [
        ("G1", "A1"),
        ("G1", "B1"),
        ("G2", "A1"),
    ]
    a1, b1 = user(store, "A1"), user(store, "B1")
    assert a1 is not None
    assert b1 is not None
    assert a1.groups_hash == stored_groups_hash(store, "A1") != 0
    assert b1.groups_hash == stored_groups_hash(store, "B1") != 0
    assert a1.groups_hash != b1.groups_hash
    write(store, record_pairs, MembershipRow, "G1", ["B1"], add=False)
    b1 = user(store, "B1")
    assert b1 is not None
    assert b1.groups_hash == 0
    assert set(read_owned(store.engine).memberships["user_ref"]) == {"A1"}


def test_several_groups_links_in_one_go_leave_every_hash_matching_its_rows(
    store: StateStore,
) -> None:
    """A batch's links (adds and removals, members and managers, a person in several
    groups) hash each person once at the end: the result must match the rows."""
    people = ("A1", "B1", "C1", "D1")
    users = [(r, fields(r), f"p-{r}", True) for r in people]
    write(store, record_users, users, T0)
    for group in ("G1", "G2", "G3"):
        write(store, record_group, group, group, f"p-{group}", "created")
    write(store, record_pairs, MembershipRow, "G3", ["C1"], add=True)
    links = [
        (MembershipRow, "G1", ["A1", "B1", "D1"], True),
        (MembershipRow, "G2", ["A1"], True),
        (ManagerRow, "G2", ["C1"], True),
        (MembershipRow, "G3", ["C1"], False),
        (MembershipRow, "G3", ["B1"], True),
    ]
    write(store, record_links, links)
    hashes = {r: user(store, r).groups_hash for r in people}  # type: ignore[union-attr]
    assert hashes == {r: stored_groups_hash(store, r) for r in people}
    assert hashes["C1"] == 0  # left G3; managing G2 is not a membership
    assert len({hashes["A1"], hashes["B1"], hashes["C1"]}) == 3


def test_managers_do_not_touch_group_hashes(store: StateStore) -> None:
    write(store, record_users, [("A1", fields("A1"), "p-a1", True)], T0)
    write(store, record_group, "G1", "Group 1", "pg-1", "created")
    write(store, record_pairs, ManagerRow, "G1", ["A1"], add=True)
    write(store, record_pairs, ManagerRow, "G1", ["A1"], add=True)
    managers = read_owned(store.engine).managers
    assert managers[["group_ref", "user_ref"]].values.tolist() == [["G1", "A1"]]
    a1 = user(store, "A1")
    assert a1 is not None
    assert a1.groups_hash == 0
    write(store, record_pairs, ManagerRow, "G1", ["A1"], add=False)
    assert read_owned(store.engine).managers.empty


# ---------------------------------------------------------------- presence


def test_missing_runs_count_up_and_reset_when_the_user_returns(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1"), "p-b1", True)],
        T0,
    )
    write(store, record_presence, {"B1"}, T1)
    a1, b1 = user(store, "A1"), user(store, "B1")
    assert a1 is not None
    assert b1 is not None
    assert (a1.missing_runs, naive(a1.missing_since)) == (1, naive(T1))
    assert naive(a1.last_seen) == naive(T0)
    assert (b1.missing_runs, b1.missing_since, naive(b1.last_seen)) == (0, None, naive(T1))
    write(store, record_presence, {"B1"}, T2)
    a1 = user(store, "A1")
    assert a1 is not None
    assert (a1.missing_runs, naive(a1.missing_since)) == (2, naive(T1))  # since the first
    write(store, record_presence, {"A1", "B1"}, T2 + timedelta(days=1))
    a1 = user(store, "A1")
    assert a1 is not None
    assert (a1.missing_runs, a1.missing_since) == (0, None)
    assert naive(a1.last_seen) == naive(T2 + timedelta(days=1))


def test_leavers_are_not_counted_missing(store: StateStore) -> None:
    write(store, record_users, [("A1", fields("A1"), "p-a1", True)], T0)
    write(store, record_leaver, "A1", "archive", T0)
    write(store, record_presence, set(), T1)
    a1 = user(store, "A1")
    assert a1 is not None
    assert (a1.missing_runs, a1.missing_since, naive(a1.last_seen)) == (0, None, naive(T0))


# ---------------------------------------------------------------- ids, forgetting


def test_pluvo_ids_read_live_replace_the_stored_ones(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-old", True), ("B1", fields("B1"), None, True)],
        T0,
    )
    write(store, record_pluvo_ids, [("A1", "p-new"), ("B1", "p-b1")])
    users = read_owned(store.engine).users
    assert users.loc["A1", "pluvo_id"] == "p-new"
    assert users.loc["B1", "pluvo_id"] == "p-b1"


def _world(store: StateStore) -> None:
    write(
        store,
        record_users,
        [("A1", fields("A1"), "p-a1", True), ("B1", fields("B1"), "p-b1", True)],
        T0,
    )
    write(store, record_group, "G1", "Group 1", "pg-1", "created")
    write(store, record_group, "G2", "Group 2", "pg-2", "created")
    write(store, record_pairs, MembershipRow, "G1", ["A1", "B1"], add=True)
    write(store, record_pairs, MembershipRow, "G2", ["A1"], add=True)
    write(store, record_pairs, ManagerRow, "G1", ["A1"], add=True)
    write(store, record_pairs, ManagerRow, "G2", ["B1"], add=True)
    write(
        store,
        record_values,
        [("A1", [("department", "string", "Sales")]), ("B1", [("department", "string", "HR")])],
    )


def test_forgotten_users_leave_nothing_behind(store: StateStore) -> None:
    _world(store)
    write(store, forget_users, ["A1"])
    owned = read_owned(store.engine)
    assert list(owned.users.index) == ["B1"]
    assert set(owned.memberships["user_ref"]) == {"B1"}
    assert set(owned.managers["user_ref"]) == {"B1"}
    assert set(owned.extra_values["user_ref"]) == {"B1"}
    assert set(owned.groups.index) == {"G1", "G2"}


def test_forgotten_groups_leave_members_with_recomputed_hashes(store: StateStore) -> None:
    _world(store)
    before = user(store, "A1")
    assert before is not None
    write(store, forget_groups, ["G1"])
    owned = read_owned(store.engine)
    assert list(owned.groups.index) == ["G2"]
    assert owned.memberships[["group_ref", "user_ref"]].values.tolist() == [["G2", "A1"]]
    assert owned.managers[["group_ref", "user_ref"]].values.tolist() == [["G2", "B1"]]
    a1, b1 = user(store, "A1"), user(store, "B1")
    assert a1 is not None
    assert b1 is not None
    assert a1.groups_hash == stored_groups_hash(store, "A1") != before.groups_hash
    assert b1.groups_hash == 0
    assert set(owned.users.index) == {"A1", "B1"}
    with store.session() as session:
        assert session.scalars(select(GroupRow.ref)).all() == ["G2"]
        assert len(session.scalars(select(ExtraValueRow.user_ref)).all()) == 2
