"""Fixtures for tests that need the local Pluvo sandbox (a pytest plugin module).

Registered in tests/conftest.py (`pytest_plugins`), so every test can ask for:

- `sandbox`: a fresh, started `SandboxServer` for this test (default seed: the
  `sandbox-client` / `sandbox-secret` client and the six USER categories; no faults),
  stopped afterwards. The simplest choice; starting one takes a few milliseconds.
- `make_sandbox`: a factory for servers with your own settings, all stopped after the
  test: `make_sandbox(faults=Faults(error_rate=0.2, seed=1), seed=Seed(users=[...]))`.
- `sandbox_session`: one server shared by the whole session. A test that uses it must
  call `sandbox_session.control.reset()` first (store back to the seed, faults back to
  none, counters zero; tokens stay valid). Worth it only for many tiny tests.
- `sandbox_http`: a raw HTTP client of the `sandbox` fixture's server (`SandboxHttp`):
  no redirects followed, no proxies, a dropped connection raises `ConnectionError`.

Every server listens on 127.0.0.1 on a free port; `server.url` ends with a slash, and
`server.control` (a `SandboxControl`) reads counters and state, sets faults, seeds data
and injects drift. The project's own Pluvo client is deliberately not used here.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from sync.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class SandboxHttp:
    """Plain HTTP to a sandbox, one connection per request, for protocol-level tests."""

    url: str
    timeout: float = 30.0
    _token: str | None = field(default=None, repr=False)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> RawResponse:
        parts = urllib.parse.urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return RawResponse(response.status, dict(response.getheaders()), data)
        finally:
            connection.close()

    def token_response(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        scope: str | None = None,
        *,
        path: str = "/oauth/token/",
    ) -> RawResponse:
        form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if scope is not None:
            form["scope"] = scope
        return self.request(
            "POST",
            path,
            body=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def token(self, **kwargs: Any) -> str:
        response = self.token_response(**kwargs)
        assert response.status == 200, response.body
        return str(response.json()["access_token"])

    def post_graphql(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        path: str = "/graphql/",
    ) -> RawResponse:
        if token is None:
            if self._token is None:
                self._token = self.token()
            token = self._token
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        payload = json.dumps({"query": query, "variables": variables or {}}).encode()
        return self.request("POST", path, body=payload, headers=headers)

    def gql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) of one GraphQL document, with a cached default token."""
        response = self.post_graphql(query, variables, token=token)
        return response.status, response.json()

    def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        """The `data` of a document that must succeed entirely."""
        status, body = self.gql(query, variables, token=token)
        assert status == 200, body
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]
        return result


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox for one test, stopped after it."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., SandboxServer]]:
    """Start sandboxes with custom settings (SandboxServer's keywords); all stopped after."""
    started: list[SandboxServer] = []

    def make(**kwargs: Any) -> SandboxServer:
        server = SandboxServer(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session")
def sandbox_session() -> Iterator[SandboxServer]:
    """One sandbox for the whole session; call `.control.reset()` before using it."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def sandbox_http(sandbox: SandboxServer) -> SandboxHttp:
    """Raw HTTP to the `sandbox` fixture's server (see `SandboxHttp`)."""
    return SandboxHttp(sandbox.url)
