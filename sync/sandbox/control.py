"""A small synchronous client of the sandbox's control API, for tests and benches.

Plain urllib with proxies switched off (the sandbox is on loopback; an `http_proxy` in
the environment must not reroute it). Every call is one HTTP request to `/_sandbox/...`;
the server does the work on its own loop, so this is safe from any thread.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sync.sandbox.store import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


class SandboxControlError(RuntimeError):
    """The control API refused a call (bad seed, unknown user, ...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"sandbox control: HTTP {status}: {message}")
        self.status = status
        self.message = message


class SandboxControl:
    """Drive a running sandbox: counters, state, faults, reset, seed, drift."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, method: str, path: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.base_url + "_sandbox/" + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")
            try:
                message = str(json.loads(body).get("error", body))
            except (ValueError, AttributeError):
                message = body
            raise SandboxControlError(exc.code, message) from None

    # ----------------------------------------------------------- observation

    def counters(self) -> dict[str, Any]:
        """Requests, statuses, queries/mutations by field, faults, errors, invites."""
        result: dict[str, Any] = self._call("GET", "counters")
        return result

    def reset_counters(self) -> None:
        self._call("POST", "counters/reset", {})

    def state(self) -> dict[str, Any]:
        """Full dump: users, groups (members/managers by ref and id), categories, clients."""
        result: dict[str, Any] = self._call("GET", "state")
        return result

    def user(self, ref: str) -> dict[str, Any] | None:
        """One user of `state()` by ref (None if absent)."""
        return next((u for u in self.state()["users"] if u["ref"] == ref), None)

    def group(self, ref: str) -> dict[str, Any] | None:
        return next((g for g in self.state()["groups"] if g["ref"] == ref), None)

    # -------------------------------------------------------------- settings

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "faults")
        return result

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault settings (names of `Faults` fields); returns all of them."""
        result: dict[str, Any] = self._call("POST", "faults", changes)
        return result

    def reset(self) -> None:
        """Back to the seed, the server's initial faults, zero counters (tokens stay valid)."""
        self._call("POST", "reset", {})

    def seed(
        self,
        users: list[dict[str, Any]] | None = None,
        groups: list[dict[str, Any]] | None = None,
        categories: list[dict[str, Any]] | None = None,
        clients: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Add data in the dump format (see store.py); categories first, groups last."""
        payload = {
            "users": users or [],
            "groups": groups or [],
            "categories": categories or [],
            "clients": clients or [],
        }
        result: dict[str, Any] = self._call("POST", "seed", payload)
        return result

    # ----------------------------------------------------------------- drift

    def update_user(self, ref: str, **fields: Any) -> dict[str, Any]:
        """Change a user behind the sync's back (camelCase fields; `extra={ref: value}`)."""
        result: dict[str, Any] = self._call("POST", "users/update", {"ref": ref, "fields": fields})
        return result

    def _membership(self, group_ref: str, user_ref: str, relation: str, op: str) -> bool:
        payload = {"group": group_ref, "user": user_ref, "relation": relation, "op": op}
        return bool(self._call("POST", "membership", payload)["changed"])

    def add_member(self, group_ref: str, user_ref: str) -> bool:
        """Make a user a member at once (visible immediately); False if already one."""
        return self._membership(group_ref, user_ref, "members", "add")

    def remove_member(self, group_ref: str, user_ref: str) -> bool:
        return self._membership(group_ref, user_ref, "members", "remove")

    def add_manager(self, group_ref: str, user_ref: str) -> bool:
        return self._membership(group_ref, user_ref, "managers", "add")

    def remove_manager(self, group_ref: str, user_ref: str) -> bool:
        return self._membership(group_ref, user_ref, "managers", "remove")

    def flush_membership(self) -> None:
        """Make every delayed membership change visible now."""
        self._call("POST", "membership/flush", {})

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (the next call gets 401)."""
        self._call("POST", "tokens/expire", {})

    def save(self) -> None:
        """Write the state file now (the server also writes it on changes and on stop)."""
        self._call("POST", "save", {})

    # ------------------------------------------------- plain API conveniences

    def token(
        self,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        scopes: str | None = None,
    ) -> str:
        """An access token from the token endpoint (counted like any client's request)."""
        form = {"grant_type": "client_credentials", "client_id": client_id}
        form["client_secret"] = client_secret
        if scopes is not None:
            form["scope"] = scopes
        request = urllib.request.Request(
            self.base_url + "oauth/token/", data=urllib.parse.urlencode(form).encode()
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return str(json.loads(response.read())["access_token"])
        except urllib.error.HTTPError as exc:
            raise SandboxControlError(exc.code, exc.read().decode(errors="replace")) from None

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """POST one document; returns (HTTP status, JSON body). Gets a token if none given."""
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(
            self.base_url + "graphql/",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {token or self.token()}",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = {"raw": raw.decode(errors="replace")}
            return exc.code, parsed
