"""The sandbox's transport contract: tokens, scopes, trailing slashes, malformed bodies."""

from __future__ import annotations

import time
from collections.abc import Callable

from sync.sandbox import Faults, SandboxServer, Seed
from tests.sandbox_fixture import SandboxHttp

ME = "{ paginatedUsers(first: 1) { count } }"
CREATE = (
    'mutation { createUser(sendInvite: false, user: {name: "A", email: "a@x.nl"}) { user { id } } }'
)


def test_token_flow_grants_requested_scopes(sandbox_http: SandboxHttp) -> None:
    response = sandbox_http.token_response(scope="users.read groups.read")
    assert response.status == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "users.read groups.read"
    assert len(body["access_token"]) >= 32
    status, result = sandbox_http.gql(ME, token=body["access_token"])
    assert (status, result) == (200, {"data": {"paginatedUsers": {"count": 0}}})


def test_token_without_scope_grants_everything_allowed(sandbox_http: SandboxHttp) -> None:
    scopes = sandbox_http.token_response().json()["scope"].split()
    assert {"users.read", "users.write", "groups.read", "groups.write"} <= set(scopes)
    assert "extra_categories.write" in scopes


def test_wrong_secret_and_unknown_client_are_invalid_client(sandbox_http: SandboxHttp) -> None:
    for response in (
        sandbox_http.token_response(client_secret="nope"),
        sandbox_http.token_response(client_id="who"),
    ):
        assert response.status == 401
        assert response.json() == {"error": "invalid_client"}


def test_unsupported_grant_type(sandbox_http: SandboxHttp) -> None:
    response = sandbox_http.request(
        "POST",
        "/oauth/token/",
        body=b"grant_type=password&client_id=sandbox-client&client_secret=sandbox-secret",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_missing_unknown_and_expired_tokens_answer_401(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(token_lifetime=0.3))
    http = SandboxHttp(server.url)
    for token in ("", "not-a-token"):
        response = http.post_graphql(ME, token=token)
        assert response.status == 401
        assert "Auth" in response.json()["errors"][0]["extensions"]["code"]
    body = http.token_response().json()
    assert body["expires_in"] == 0.3
    assert http.post_graphql(ME, token=body["access_token"]).status == 200
    time.sleep(0.4)
    response = http.post_graphql(ME, token=body["access_token"])
    assert response.status == 401
    assert response.json()["errors"][0]["message"] == "Token expired."
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.post_graphql(ME, token=http.token()).status == 200


def test_control_can_expire_every_token(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    token = sandbox_http.token()
    assert sandbox_http.post_graphql(ME, token=token).status == 200
    sandbox.control.expire_tokens()
    assert sandbox_http.post_graphql(ME, token=token).status == 401
    assert sandbox.control.counters()["status"]["401"] == 1


def _limited(make_sandbox: Callable[..., SandboxServer], scopes: list[str]) -> SandboxHttp:
    seed = Seed(clients=[{"clientId": "limited", "clientSecret": "s3", "scopes": scopes}])
    return SandboxHttp(make_sandbox(seed=seed).url)


def test_scope_not_allowed_is_not_granted(make_sandbox: Callable[..., SandboxServer]) -> None:
    http = _limited(make_sandbox, ["users.read"])
    body = http.token_response("limited", "s3", "users.read users.write").json()
    assert body["scope"] == "users.read"
    refused = http.token_response("limited", "s3", "groups.write")
    assert refused.status == 400
    assert refused.json() == {"error": "invalid_scope"}


def test_mutation_without_scope_is_permission_denied(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    http = _limited(make_sandbox, ["users.read"])
    token = http.token(client_id="limited", client_secret="s3")
    response = http.post_graphql(CREATE, token=token)
    # Every root field forbidden: 403, with the GraphQL error in the body.
    assert response.status == 403
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "PermissionDenied"
    assert error["path"] == ["createUser"]
    assert "users.write" in error["message"]


def test_partly_forbidden_document_answers_the_allowed_fields(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    http = _limited(make_sandbox, ["users.read"])
    token = http.token(client_id="limited", client_secret="s3")
    status, body = http.gql("{ paginatedUsers { count } groups { id } }", token=token)
    assert status == 200
    assert body["data"] == {"paginatedUsers": {"count": 0}, "groups": None}
    [error] = body["errors"]
    assert error["path"] == ["groups"]
    assert error["extensions"]["code"] == "PermissionDenied"
    assert "groups.read" in error["message"]


def test_extra_values_need_users_write_and_extra_categories_write(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    http = _limited(make_sandbox, ["users.read", "users.write"])
    token = http.token(client_id="limited", client_secret="s3")
    status, body = http.gql(
        'mutation { updateExtraCategoryValues(contentType: USER, modelRef: "x", '
        'values: [{categoryRef: "department", stringValue: "IT"}]) { __typename } }',
        token=token,
    )
    assert status == 403
    assert "extra_categories.write" in body["errors"][0]["message"]


def test_paths_without_trailing_slash_redirect(sandbox: SandboxServer) -> None:
    http = SandboxHttp(sandbox.url)
    for path, location in (
        ("/graphql", "/graphql/"),
        ("/oauth/token", "/oauth/token/"),
        ("/graphql?x=1", "/graphql/?x=1"),
    ):
        response = http.request("POST", path, body=b"{}")
        assert response.status == 301
        assert response.headers["Location"] == location
    assert http.token_response(path="/oauth/token").status == 301
    counters = sandbox.control.counters()
    assert counters["status"]["301"] == 4
    assert counters["graphql_requests"] == 0
    assert counters["token_requests"] == 0


def test_malformed_documents_answer_400(sandbox_http: SandboxHttp) -> None:
    status, body = sandbox_http.gql("{ paginatedUsers { count ")
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "ParseError"
    status, body = sandbox_http.gql("{ noSuchField }")
    assert status == 400
    assert body["errors"][0]["extensions"]["code"] == "ValidationError"
    response = sandbox_http.request(
        "POST",
        "/graphql/",
        body=b"not json",
        headers={"Authorization": f"Bearer {sandbox_http.token()}"},
    )
    assert response.status == 400
    status, body = sandbox_http.gql(
        "query($id: UUID) { user(id: $id) { id } }", {"id": "not-a-uuid"}
    )
    assert status == 400
    assert "UUID" in body["errors"][0]["message"]


def test_control_answers_json_errors(sandbox: SandboxServer) -> None:
    http = SandboxHttp(sandbox.url)
    response = http.request("POST", "/_sandbox/faults", body=b'{"nope": 1}')
    assert response.status == 400
    assert "nope" in response.json()["error"]
    assert http.request("GET", "/_sandbox/nothing").status == 404
    assert sandbox.control.counters()["requests"] == 0
