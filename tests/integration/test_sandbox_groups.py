"""Groups in the sandbox: refs, membership (Ids and Refs fields), managers, delay."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sync.sandbox import Faults, SandboxServer, Seed
from tests.sandbox_fixture import SandboxHttp

PEOPLE = [{"ref": f"P{i}", "name": f"Person {i}", "email": f"p{i}@acme.nl"} for i in range(1, 6)]

ADD = """mutation($group: String, $refs: [String!], $ids: [UUID!]) {
  addUsersToGroup(groupRef: $group, userRefs: $refs, userIds: $ids) {
    addedIds alreadyAddedIds failedIds addedRefs alreadyAddedRefs failedRefs
  }
}"""
REMOVE = """mutation($group: String, $refs: [String!], $ids: [UUID!]) {
  removeUsersFromGroup(groupRef: $group, userRefs: $refs, userIds: $ids) {
    removedIds alreadyRemovedIds failedIds removedRefs alreadyRemovedRefs failedRefs
  }
}"""
MEMBERS = """query($ref: String, $after: String, $first: Int) {
  group(ref: $ref) {
    userCount managerCount
    users(first: $first, after: $after) {
      count pageInfo { hasNextPage endCursor } edges { node { ref } }
    }
    managers { count edges { node { ref } } }
  }
}"""


def _ids(server: SandboxServer) -> dict[str, str]:
    return {u["ref"]: u["id"] for u in server.control.state()["users"]}


def _members(http: SandboxHttp, group: str = "G1") -> list[str]:
    data = http.data(MEMBERS, {"ref": group})["group"]
    return [e["node"]["ref"] for e in data["users"]["edges"]]


def _group(http: SandboxHttp, ref: str = "G1", name: str = "Group one") -> dict[str, Any]:
    data = http.data(
        "mutation($g: CreateGroupInput!) { createGroup(group: $g) "
        "{ group { id ref name maxUsers enableChat isEditable userCount } } }",
        {"g": {"ref": ref, "name": name}},
    )
    result: dict[str, Any] = data["createGroup"]["group"]
    return result


def test_create_update_delete_groups(sandbox_http: SandboxHttp) -> None:
    group = _group(sandbox_http)
    assert group["ref"] == "G1"
    assert group["maxUsers"] == 0
    assert group["enableChat"] is False
    assert group["isEditable"] is True
    assert group["userCount"] == 0
    status, body = sandbox_http.gql(
        'mutation { createGroup(group: {ref: "G1", name: "again"}) { group { id } } }'
    )
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "Conflict"
    assert "ref" in body["errors"][0]["message"]
    updated = sandbox_http.data(
        'mutation { updateGroup(ref: "G1", group: {name: "Renamed", enableChat: true}) '
        "{ group { id name enableChat } } }"
    )["updateGroup"]["group"]
    assert updated == {"id": group["id"], "name": "Renamed", "enableChat": True}
    missing = str(uuid.uuid4())
    deleted = sandbox_http.data(
        "mutation($ids: [UUID!]) { deleteGroups(ids: $ids) { bulkDelete "
        "{ succeededIds failedIds } } }",
        {"ids": [group["id"], missing]},
    )["deleteGroups"]["bulkDelete"]
    assert deleted == {"succeededIds": [group["id"]], "failedIds": [missing]}
    assert sandbox_http.data('{ group(ref: "G1") { id } }')["group"] is None


def test_group_listings(sandbox_http: SandboxHttp) -> None:
    for i in range(3):
        _group(sandbox_http, f"G{i}", f"Team {i}")
    assert [g["ref"] for g in sandbox_http.data("{ groups { ref } }")["groups"]] == [
        "G0",
        "G1",
        "G2",
    ]
    page = sandbox_http.data(
        '{ paginatedGroups(first: 2, q: "team") { count pageInfo { hasNextPage } '
        "edges { node { ref } } } }"
    )["paginatedGroups"]
    assert page["count"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    assert [e["node"]["ref"] for e in page["edges"]] == ["G0", "G1"]


def test_membership_add_and_remove_with_ids_and_refs(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    sandbox.control.seed(users=PEOPLE)
    _group(sandbox_http)
    ids = _ids(sandbox)
    stranger = str(uuid.uuid4())
    added = sandbox_http.data(
        ADD, {"group": "G1", "refs": ["P1", "P2", "ghost"], "ids": [ids["P3"], stranger]}
    )["addUsersToGroup"]
    assert added == {
        "addedIds": [ids["P3"], ids["P1"], ids["P2"]],
        "alreadyAddedIds": [],
        "failedIds": [stranger, "ghost"],
        "addedRefs": ["P3", "P1", "P2"],
        "alreadyAddedRefs": [],
        "failedRefs": [stranger, "ghost"],
    }
    again = sandbox_http.data(ADD, {"group": "G1", "refs": ["P1", "P4"]})["addUsersToGroup"]
    assert again["addedIds"] == [ids["P4"]]
    assert again["alreadyAddedIds"] == [ids["P1"]]
    assert again["alreadyAddedRefs"] == ["P1"]
    assert _members(sandbox_http) == ["P3", "P1", "P2", "P4"]
    removed = sandbox_http.data(REMOVE, {"group": "G1", "refs": ["P1", "P5", "ghost"]})[
        "removeUsersFromGroup"
    ]
    assert removed == {
        "removedIds": [ids["P1"]],
        "alreadyRemovedIds": [ids["P5"]],
        "failedIds": ["ghost"],
        "removedRefs": ["P1"],
        "alreadyRemovedRefs": ["P5"],
        "failedRefs": ["ghost"],
    }
    assert _members(sandbox_http) == ["P3", "P2", "P4"]
    groups = sandbox_http.data('{ user(ref: "P2") { participantGroups { ref } } }')
    assert groups["user"]["participantGroups"] == [{"ref": "G1"}]
    state = sandbox.control.group("G1")
    assert state is not None
    assert state["members"] == ["P3", "P2", "P4"]
    assert state["memberIds"] == [ids["P3"], ids["P2"], ids["P4"]]


def test_unknown_group_is_an_error_on_its_path(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    sandbox.control.seed(users=PEOPLE)
    status, body = sandbox_http.gql(ADD, {"group": "nope", "refs": ["P1"]})
    assert status == 200
    assert body["data"] == {"addUsersToGroup": None}
    assert body["errors"][0]["extensions"]["code"] == "NotFound"
    assert body["errors"][0]["path"] == ["addUsersToGroup"]


def test_group_members_paginate(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    people = [{"ref": f"M{i:03d}", "name": f"M {i}", "email": f"m{i}@x.nl"} for i in range(75)]
    sandbox.control.seed(
        users=people, groups=[{"ref": "G1", "name": "Big", "members": [p["ref"] for p in people]}]
    )
    first = sandbox_http.data(MEMBERS, {"ref": "G1"})["group"]
    assert first["userCount"] == 75
    assert first["users"]["count"] == 75
    assert len(first["users"]["edges"]) == 50
    rest = sandbox_http.data(
        MEMBERS, {"ref": "G1", "after": first["users"]["pageInfo"]["endCursor"]}
    )["group"]["users"]
    assert [e["node"]["ref"] for e in rest["edges"]] == [f"M{i:03d}" for i in range(50, 75)]
    assert rest["pageInfo"]["hasNextPage"] is False
    status, body = sandbox_http.gql(MEMBERS, {"ref": "G1", "first": 60})
    assert status == 200
    assert body["errors"][0]["path"] == ["group", "users"]


def test_managers(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    sandbox.control.seed(users=PEOPLE)
    _group(sandbox_http)
    ids = _ids(sandbox)
    add = """mutation($refs: [String!]) { addManagersToGroup(groupRef: "G1", userRefs: $refs)
      { response { succeededIds failedIds } } }"""
    remove = """mutation($ids: [UUID!]) { removeManagersFromGroup(groupRef: "G1", userIds: $ids)
      { response { succeededIds failedIds } } }"""
    response = sandbox_http.data(add, {"refs": ["P1", "P2", "ghost"]})["addManagersToGroup"]
    assert response["response"] == {"succeededIds": [ids["P1"], ids["P2"]], "failedIds": ["ghost"]}
    data = sandbox_http.data(MEMBERS, {"ref": "G1"})["group"]
    assert data["managerCount"] == 2
    assert data["userCount"] == 0  # managers are a separate relation
    assert [e["node"]["ref"] for e in data["managers"]["edges"]] == ["P1", "P2"]
    groups = sandbox_http.data(
        '{ user(ref: "P1") { managerGroups { ref } participantGroups { ref } } }'
    )
    assert groups["user"] == {"managerGroups": [{"ref": "G1"}], "participantGroups": []}
    response = sandbox_http.data(remove, {"ids": [ids["P1"]]})["removeManagersFromGroup"]
    assert response["response"] == {"succeededIds": [ids["P1"]], "failedIds": []}
    assert sandbox.control.group("G1")["managers"] == ["P2"]  # type: ignore[index]


def test_membership_delay_applies_at_once_and_shows_later(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    # A delay far longer than any request here takes, however loaded the machine:
    # "not visible yet" cannot race the clock.
    server = make_sandbox(
        faults=Faults(membership_delay=60),
        seed=Seed(users=PEOPLE, groups=[{"ref": "G1", "name": "G", "members": ["P5"]}]),
    )
    http = SandboxHttp(server.url)
    added = http.data(ADD, {"group": "G1", "refs": ["P1"]})["addUsersToGroup"]
    assert added["addedRefs"] == ["P1"]
    http.data(REMOVE, {"group": "G1", "refs": ["P5"]})
    assert _members(http) == ["P5"]  # not visible yet
    again = http.data(ADD, {"group": "G1", "refs": ["P1"]})["addUsersToGroup"]
    assert again["alreadyAddedRefs"] == ["P1"]  # but applied
    state = server.control.group("G1")
    assert state is not None
    assert state["members"] == ["P1"]
    assert state["visibleMembers"] == ["P5"]
    assert server.control.counters()["pending_membership_changes"] == 2
    server.control.flush_membership()
    assert _members(http) == ["P1"]

    # Shown by the clock alone: never before the delay, and soon after it.
    server.control.set_faults(membership_delay=0.5)
    before = time.monotonic()
    http.data(ADD, {"group": "G1", "refs": ["P2"]})
    deadline = before + 15
    while _members(http) != ["P1", "P2"]:
        assert time.monotonic() < deadline, "the delayed membership never showed"
        time.sleep(0.05)
    assert time.monotonic() - before >= 0.5


def test_drift_helpers(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    sandbox.control.seed(users=PEOPLE, groups=[{"ref": "G1", "name": "G"}])
    assert sandbox.control.add_member("G1", "P3") is True
    assert sandbox.control.add_member("G1", "P3") is False
    assert sandbox.control.add_manager("G1", "P4") is True
    assert _members(sandbox_http) == ["P3"]
    assert sandbox.control.remove_member("G1", "P3") is True
    assert _members(sandbox_http) == []
    changed = sandbox.control.update_user(
        "P1", name="Renamed", isActive=False, extra={"department": "HR"}
    )
    assert changed["name"] == "Renamed"
    assert changed["extra"] == {"department": "HR"}
    user = sandbox_http.data('{ user(ref: "P1") { name isActive } }')["user"]
    assert user == {"name": "Renamed", "isActive": False}
    # Control calls are not counted as API traffic.
    assert sandbox.control.counters()["queries"] == {"group": 2, "user": 1}
