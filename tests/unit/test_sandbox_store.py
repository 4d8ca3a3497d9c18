"""The sandbox store's rules, without HTTP."""

from __future__ import annotations

import pytest

from sync.sandbox.api import cursor_for, index_of
from sync.sandbox.store import CONFLICT, SandboxError, Seed, Store, parse_datetime


@pytest.fixture
def store() -> Store:
    store = Store()
    store.load(Seed().as_data())
    return store


def test_default_seed(store: Store) -> None:
    assert list(store.clients) == ["sandbox-client"]
    assert store.clients["sandbox-client"].scopes is None
    assert [c.ref for c in store.categories.values()] == [
        "department",
        "job_title",
        "start_date",
        "is_external",
        "location",
        "skills",
    ]
    assert store.users == {}


def test_client_grants_only_allowed_scopes(store: Store) -> None:
    client = store.add_client({"clientId": "c", "clientSecret": "s", "scopes": "users.read"})
    assert client.grant(["users.read", "users.write"]) == ["users.read"]
    assert client.grant(None) == ["users.read"]
    assert store.clients["sandbox-client"].grant(["x.y", "users.read"]) == ["x.y", "users.read"]


def test_upsert_rules(store: Store) -> None:
    user, created = store.upsert_user(
        ref="E1", email=None, fields={"name": "A", "email": "a@x.nl"}, send_invite=True
    )
    assert created
    assert user.invited
    assert store.invites == 1
    same, created = store.upsert_user(
        ref=None, email="A@X.NL", fields={"ref": "E2"}, send_invite=True
    )
    assert same is user
    assert not created
    assert store.find_user(ref="E2") is user
    assert store.find_user(ref="E1") is None  # the old ref is no longer indexed
    with pytest.raises(SandboxError, match="give ref or email"):
        store.upsert_user(ref=None, email=None, fields={}, send_invite=False)


def test_refused_update_changes_nothing(store: Store) -> None:
    store.create_user({"ref": "A", "name": "A", "email": "a@x.nl"}, send_invite=False)
    b = store.create_user({"ref": "B", "name": "B", "email": "b@x.nl"}, send_invite=False)
    with pytest.raises(SandboxError) as info:
        store.update_user(b, {"name": "Changed", "email": "a@x.nl"})
    assert info.value.code == CONFLICT
    assert b.name == "B"
    assert store.find_user(email="b@x.nl") is b


def test_explicit_null_clears_optional_text(store: Store) -> None:
    user = store.create_user(
        {"ref": "A", "name": "A", "email": "a@x.nl", "afasEmployeeId": "9"}, send_invite=False
    )
    store.update_user(user, {"afasEmployeeId": None, "isActive": None})
    assert user.afas_employee_id is None
    assert user.is_active is True


def test_list_cache_follows_changes(store: Store) -> None:
    a = store.create_user({"ref": "A", "name": "A", "email": "a@x.nl"}, send_invite=False)
    assert store.list_users(archived=True) == []
    store.archive_users(True, [a.id])
    assert store.list_users(archived=True) == [a]
    assert a.archived_at is not None
    store.archive_users(False, [a.id])
    assert store.list_users(archived=True) == []
    assert a.archived_at is None


def test_membership_delay_keeps_order(store: Store) -> None:
    group = store.create_group({"ref": "G", "name": "G"})
    user = store.create_user({"ref": "A", "name": "A", "email": "a@x.nl"}, send_invite=False)
    store.change_relation(group, "members", "add", [user], now=0.0, delay=10.0)
    # A later removal with a shorter delay must not overtake the add.
    store.change_relation(group, "members", "remove", [user], now=1.0, delay=0.0)
    assert group.members == {}
    store.flush(5.0)
    assert group.visible_members == {}
    store.flush(10.0)
    assert group.visible_members == {}
    assert store.pending_changes == 0


def test_delete_group_drops_its_pending_changes(store: Store) -> None:
    group = store.create_group({"ref": "G", "name": "G"})
    user = store.create_user({"ref": "A", "name": "A", "email": "a@x.nl"}, send_invite=False)
    store.change_relation(group, "managers", "add", [user], now=0.0, delay=1.0)
    assert store.delete_groups([group.id]) == ([group.id], [])
    store.flush(None)
    assert store.groups_of(user, "managers") == []


def test_extra_values_merge_replace_and_readable_dump(store: Store) -> None:
    user = store.create_user({"ref": "A", "name": "A", "email": "a@x.nl"}, send_invite=False)
    store.set_extra_values(
        "USER",
        user,
        [
            {"categoryRef": "department", "stringValue": "HR"},
            {"categoryRef": "skills", "choiceValues": ["SQL", {"stringValue": "Excel"}, "SQL"]},
        ],
    )
    store.set_extra_values("USER", user, [{"categoryRef": "is_external", "booleanValue": False}])
    dumped = store.dump()["users"][0]["extra"]
    assert dumped == {"department": "HR", "skills": ["SQL", "Excel"], "is_external": False}
    store.set_extra_values(
        "USER", user, [{"categoryRef": "location", "choiceValues": ["Utrecht"]}], mode="replace"
    )
    assert store.dump()["users"][0]["extra"] == {"location": "Utrecht"}


def test_dump_reloads_identically(store: Store) -> None:
    a = store.create_user({"ref": "A", "name": "A", "email": "a@x.nl"}, send_invite=True)
    group = store.create_group({"ref": "G", "name": "G", "maxUsers": 3})
    store.change_relation(group, "members", "add", [a], now=0.0, delay=0.0)
    store.set_extra_values(
        "USER", a, [{"categoryRef": "start_date", "datetimeValue": "2020-01-01"}]
    )
    copy = Store()
    copy.load(store.dump())
    assert copy.dump() == store.dump()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("2024-01-02", "2024-01-02T00:00:00+00:00"),
        ("2024-01-02T03:04:05Z", "2024-01-02T03:04:05+00:00"),
        ("2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05+02:00"),
    ],
)
def test_datetimes_are_normalised(given: str, expected: str) -> None:
    assert parse_datetime(given) == expected


def test_cursors_round_trip() -> None:
    assert index_of(cursor_for(41)) == 41
    with pytest.raises(SandboxError, match="invalid cursor"):
        index_of("Zm9vOjE=")  # "foo:1"


@pytest.mark.parametrize(
    ("remote", "allowed"),
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("10.0.0.1", False), (None, False)],
)
def test_control_api_is_for_loopback_peers_only(remote: str | None, allowed: bool) -> None:
    from sync.sandbox.server import _is_loopback

    assert _is_loopback(remote) is allowed
