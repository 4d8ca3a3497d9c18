"""Users in the sandbox: upsert, uniqueness, the three ways to archive, pagination."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.sandbox_fixture import SandboxHttp

UPSERT = """
mutation($ref: String, $email: String, $invite: Boolean, $user: UserInput!) {
  updateOrCreateUser(ref: $ref, email: $email, sendInvite: $invite, user: $user) {
    created
    user { id ref email name isActive archived archivedAt roles language }
  }
}
"""


def upsert(http: SandboxHttp, user: dict[str, Any], **selector: Any) -> dict[str, Any]:
    variables = {"user": user, "invite": False, **selector}
    result: dict[str, Any] = http.data(UPSERT, variables)["updateOrCreateUser"]
    return result


def test_upsert_by_ref_creates_then_updates(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    first = upsert(sandbox_http, {"name": "Ann", "email": "ann@acme.nl"}, ref="E1")
    assert first["created"] is True
    user = first["user"]
    assert user["ref"] == "E1"
    assert user["language"] == "NL"
    assert user["roles"] == ["PARTICIPANT"]
    assert user["isActive"] is True
    assert user["archived"] is False
    assert uuid.UUID(user["id"])
    second = upsert(sandbox_http, {"name": "Ann B", "roles": ["MANAGER"]}, ref="E1")
    assert second["created"] is False
    assert second["user"]["id"] == user["id"]
    assert second["user"]["name"] == "Ann B"
    assert second["user"]["email"] == "ann@acme.nl"  # not passed: kept
    assert second["user"]["roles"] == ["MANAGER"]
    assert len(sandbox.control.state()["users"]) == 1


def test_upsert_by_email_finds_case_insensitively_and_sets_ref(sandbox_http: SandboxHttp) -> None:
    created = upsert(sandbox_http, {"name": "Bo", "language": "EN"}, email="Bo@Acme.nl")
    assert created["created"] is True
    assert created["user"]["email"] == "Bo@Acme.nl"
    assert created["user"]["language"] == "EN"
    found = upsert(sandbox_http, {"ref": "E2", "name": "Bo"}, email="bo@acme.NL")
    assert found["created"] is False
    assert found["user"]["id"] == created["user"]["id"]
    assert found["user"]["ref"] == "E2"
    # ref first, then email: an unknown ref with a known email is that user.
    again = upsert(sandbox_http, {"name": "Bo"}, ref="E9", email="bo@acme.nl")
    assert again["created"] is False
    assert again["user"]["id"] == created["user"]["id"]


def test_ref_only_upsert_does_not_fall_back_to_email(sandbox_http: SandboxHttp) -> None:
    upsert(sandbox_http, {"name": "C", "email": "c@acme.nl"}, ref="E3")
    status, body = sandbox_http.gql(
        UPSERT, {"ref": "E4", "invite": False, "user": {"name": "C2", "email": "C@acme.nl"}}
    )
    assert status == 200
    assert body["data"]["updateOrCreateUser"] is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "Conflict"
    assert error["message"].startswith("email:")
    assert error["path"] == ["updateOrCreateUser"]


def test_ref_and_email_are_unique(sandbox_http: SandboxHttp) -> None:
    create = """mutation($user: UserInput!) {
      createUser(sendInvite: false, user: $user) { user { id } } }"""
    sandbox_http.data(create, {"user": {"ref": "R1", "name": "A", "email": "a@acme.nl"}})
    status, body = sandbox_http.gql(
        create, {"user": {"ref": "R1", "name": "B", "email": "b@acme.nl"}}
    )
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "Conflict"
    assert "ref" in body["errors"][0]["message"]
    status, body = sandbox_http.gql(
        create, {"user": {"ref": "R2", "name": "B", "email": "A@ACME.NL"}}
    )
    assert body["errors"][0]["extensions"]["code"] == "Conflict"
    assert "email" in body["errors"][0]["message"]
    # An update may not take another user's ref either.
    sandbox_http.data(create, {"user": {"ref": "R3", "name": "C", "email": "c@acme.nl"}})
    status, body = sandbox_http.gql(
        'mutation { updateUser(ref: "R3", user: {ref: "R1"}) { user { ref } } }'
    )
    assert body["errors"][0]["extensions"]["code"] == "Conflict"


def test_creation_needs_name_and_valid_email(sandbox_http: SandboxHttp) -> None:
    for user, field in (
        ({"email": "x@acme.nl"}, "name"),
        ({"name": "X"}, "email"),
        ({"name": "X", "email": "not-an-email"}, "email"),
    ):
        status, body = sandbox_http.gql(UPSERT, {"ref": "X", "invite": False, "user": user})
        assert status == 200
        assert body["errors"][0]["message"].startswith(f"{field}:"), body


def test_invites_are_counted_on_creation_only(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    for ref, invite in (("I1", True), ("I2", False), ("I3", None)):
        variables = {"ref": ref, "invite": invite, "user": {"name": ref, "email": f"{ref}@x.nl"}}
        sandbox_http.data(UPSERT, variables)
    sandbox_http.data(UPSERT, {"ref": "I1", "invite": True, "user": {"name": "again"}})
    # An omitted sendInvite invites, as Pluvo's newest docs say.
    assert sandbox.control.counters()["invites"] == 2
    invited = {u["ref"]: u["invited"] for u in sandbox.control.state()["users"]}
    assert invited == {"I1": True, "I2": False, "I3": True}


ARCHIVED = "query($ref: String) { user(ref: $ref) { id isActive archived archivedAt } }"


def _user(http: SandboxHttp, ref: str) -> dict[str, Any]:
    result: dict[str, Any] = http.data(ARCHIVED, {"ref": ref})["user"]
    return result


def test_three_ways_to_archive_and_restore(sandbox_http: SandboxHttp) -> None:
    ids = {
        ref: upsert(sandbox_http, {"name": ref, "email": f"{ref}@x.nl"}, ref=ref)["user"]["id"]
        for ref in ("L1", "L2", "L3")
    }
    # 1. the newest recipe: upsert with archived: true
    result = upsert(sandbox_http, {"archived": True}, ref="L1")
    assert result["user"]["archived"] is True
    assert result["user"]["archivedAt"]
    # 2. bulk by id; unknown ids come back in failedIds
    unknown = str(uuid.uuid4())
    response = sandbox_http.data(
        "mutation($ids: [UUID!]!) { archiveUsers(archive: true, ids: $ids) "
        "{ response { succeededIds failedIds } } }",
        {"ids": [ids["L2"], unknown]},
    )["archiveUsers"]["response"]
    assert response == {"succeededIds": [ids["L2"]], "failedIds": [unknown]}
    assert _user(sandbox_http, "L2")["archived"] is True
    # 3. the oldest: deactivate
    sandbox_http.data('mutation { updateUser(ref: "L3", user: {isActive: false}) { user { id } } }')
    assert _user(sandbox_http, "L3") == {
        "id": ids["L3"],
        "isActive": False,
        "archived": False,
        "archivedAt": None,
    }
    # Restore each way back.
    restored = sandbox_http.data(
        "mutation($ids: [UUID!]!) { archiveUsers(archive: false, ids: $ids) "
        "{ response { succeededIds failedIds } } }",
        {"ids": [ids["L2"]]},
    )["archiveUsers"]["response"]
    assert restored == {"succeededIds": [ids["L2"]], "failedIds": []}
    assert upsert(sandbox_http, {"archived": False}, ref="L1")["user"]["archivedAt"] is None
    sandbox_http.data(
        "mutation($id: UUID) { updateUser(id: $id, user: {isActive: true}) { user { id } } }",
        {"id": ids["L3"]},
    )
    for ref in ids:
        assert _user(sandbox_http, ref)["archived"] is False
        assert _user(sandbox_http, ref)["isActive"] is True


def test_update_of_unknown_user_is_not_found(sandbox_http: SandboxHttp) -> None:
    status, body = sandbox_http.gql(
        'mutation { updateUser(ref: "nobody", user: {name: "x"}) { user { id } } }'
    )
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "NotFound"


PAGE = """query($first: Int, $after: String, $archived: Boolean, $q: String) {
  paginatedUsers(first: $first, after: $after, archived: $archived, q: $q) {
    count
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { ref } }
  }
}"""


def _seed_users(server: SandboxServer, count: int, archived_every: int = 0) -> None:
    server.control.seed(
        users=[
            {
                "ref": f"U{i:04d}",
                "name": f"User {i}",
                "email": f"u{i}@acme.nl",
                "archived": bool(archived_every) and i % archived_every == 0,
            }
            for i in range(count)
        ]
    )


def test_pagination_over_many_users(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    _seed_users(sandbox, 123)
    refs: list[str] = []
    after = None
    pages = 0
    while True:
        assert pages < 5, "pagination never reported its last page"
        page = sandbox_http.data(PAGE, {"first": 50, "after": after})["paginatedUsers"]
        pages += 1
        assert page["count"] == 123
        refs += [edge["node"]["ref"] for edge in page["edges"]]
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert after == page["edges"][-1]["cursor"]
    assert pages == 3
    assert refs == [f"U{i:04d}" for i in range(123)]  # creation order
    # No `first`: the default page is the maximum, 50.
    assert len(sandbox_http.data(PAGE)["paginatedUsers"]["edges"]) == 50
    # Past the end: an empty page.
    last = sandbox_http.data(PAGE, {"after": after, "first": 50})["paginatedUsers"]
    empty = sandbox_http.data(PAGE, {"after": last["pageInfo"]["endCursor"]})["paginatedUsers"]
    assert empty["edges"] == []
    assert empty["pageInfo"]["hasNextPage"] is False


def test_first_over_50_is_an_error(sandbox_http: SandboxHttp) -> None:
    status, body = sandbox_http.gql(PAGE, {"first": 51})
    assert status == 200
    assert body["data"] == {"paginatedUsers": None}
    [error] = body["errors"]
    assert error["path"] == ["paginatedUsers"]
    assert "exceeds the `first` limit of 50" in error["message"]


def test_bad_cursor_is_an_error(sandbox_http: SandboxHttp) -> None:
    _status, body = sandbox_http.gql(PAGE, {"after": "bogus"})
    assert "invalid cursor" in body["errors"][0]["message"]


def test_archived_filter_and_search(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    _seed_users(sandbox, 30, archived_every=3)
    counts = {
        archived: sandbox_http.data(PAGE, {"archived": archived})["paginatedUsers"]["count"]
        for archived in (None, True, False)
    }
    assert counts == {None: 30, True: 10, False: 20}
    found = sandbox_http.data(PAGE, {"q": "user 2"})["paginatedUsers"]
    assert [e["node"]["ref"] for e in found["edges"]] == ["U0002"] + [
        f"U{i:04d}" for i in range(20, 30)
    ]
    by_email = sandbox_http.data(PAGE, {"q": "U7@ACME"})["paginatedUsers"]
    assert [e["node"]["ref"] for e in by_email["edges"]] == ["U0007"]


def test_user_lookup_by_id_ref_and_email(sandbox_http: SandboxHttp) -> None:
    user = upsert(sandbox_http, {"name": "D", "email": "d@acme.nl"}, ref="D1")["user"]
    query = (
        "query($id: UUID, $ref: String, $email: String) "
        "{ user(id: $id, ref: $ref, email: $email) { id } }"
    )
    for variables in ({"id": user["id"]}, {"ref": "D1"}, {"email": "D@acme.nl"}):
        assert sandbox_http.data(query, variables)["user"] == {"id": user["id"]}
    assert sandbox_http.data(query, {"ref": "nope"})["user"] is None


def test_aliased_document_fails_per_alias(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    upserts = [
        ("a", "A1", '{name: "A", email: "a@x.nl"}'),
        ("b", "B1", '{name: "B", email: "A@X.NL"}'),
        ("c", "C1", '{name: "C", email: "c@x.nl"}'),
        ("d", "D1", '{email: "d@x.nl"}'),
    ]
    fields = "\n".join(
        f'{alias}: updateOrCreateUser(ref: "{ref}", sendInvite: false, user: {user}) {{ created }}'
        for alias, ref, user in upserts
    )
    document = "mutation {\n" + fields + "\n}"
    status, body = sandbox_http.gql(document)
    assert status == 200
    assert body["data"] == {"a": {"created": True}, "b": None, "c": {"created": True}, "d": None}
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["b"], "Conflict"),
        (["d"], "InvalidInput"),
    ]
    assert sorted(u["ref"] for u in sandbox.control.state()["users"]) == ["A1", "C1"]
    # Each alias counts once.
    assert sandbox.control.counters()["mutations"] == {"updateOrCreateUser": 4}


@pytest.mark.parametrize("active", [True, False])
def test_users_list_filters_on_active(sandbox_http: SandboxHttp, active: bool) -> None:
    upsert(sandbox_http, {"name": "On", "email": "on@x.nl"}, ref="ON")
    upsert(sandbox_http, {"name": "Off", "email": "off@x.nl", "isActive": False}, ref="OFF")
    users = sandbox_http.data("query($a: Boolean) { users(active: $a) { ref } }", {"a": active})
    assert users["users"] == [{"ref": "ON" if active else "OFF"}]
