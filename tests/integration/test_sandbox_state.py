"""The sandbox's lifecycle: seed, reset, state file, another schema, the CLI command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer, Seed
from sync.sandbox.api import SCHEMA_FILE
from tests.sandbox_fixture import SandboxHttp

SETUP = """mutation {
  u1: updateOrCreateUser(ref: "S1", sendInvite: true,
                         user: {name: "Sam", email: "sam@x.nl"}) { created }
  u2: updateOrCreateUser(ref: "S2", sendInvite: false,
                         user: {name: "Sue", email: "sue@x.nl", archived: true}) { created }
  g: createGroup(group: {ref: "G1", name: "Group"}) { group { id } }
  m: addUsersToGroup(groupRef: "G1", userRefs: ["S1", "S2"]) { addedIds }
  k: addManagersToGroup(groupRef: "G1", userRefs: ["S2"]) { response { succeededIds } }
  x: updateExtraCategoryValues(contentType: USER, modelRef: "S1", values: [
    {categoryRef: "location", choiceValues: [{stringValue: "Rotterdam"}]},
    {categoryRef: "skills", choiceValues: [{stringValue: "Python"}, {stringValue: "Sales"}]},
    {categoryRef: "start_date", datetimeValue: "2023-05-01"},
    {categoryRef: "is_external", booleanValue: true}]) { __typename }
}"""


def _comparable(state: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in state.items() if k != "pendingMembershipChanges"}


def test_state_is_persisted_and_reloaded(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    state_file = tmp_path / "sandbox.json"
    first = make_sandbox(state_file=state_file)
    http = SandboxHttp(first.url)
    old_token = http.token()
    http.data(SETUP, token=old_token)
    before = first.control.state()
    first.stop()
    saved = json.loads(state_file.read_text())
    assert [u["ref"] for u in saved["users"]] == ["S1", "S2"]

    second = make_sandbox(state_file=state_file)
    after = second.control.state()
    assert _comparable(after) == _comparable(before)
    http = SandboxHttp(second.url)
    assert (
        http.post_graphql("{ groups { id } }", token=old_token).status == 401
    )  # tokens are not kept
    group = http.data('{ group(ref: "G1") { userCount managers { edges { node { ref } } } } }')
    assert group["group"] == {"userCount": 2, "managers": {"edges": [{"node": {"ref": "S2"}}]}}
    user = second.control.user("S1")
    assert user is not None
    assert user["extra"] == {
        "start_date": "2023-05-01T00:00:00+00:00",
        "is_external": True,
        "location": "Rotterdam",
        "skills": ["Python", "Sales"],
    }
    assert user["invited"] is True


def test_state_file_is_written_soon_after_a_change(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    state_file = tmp_path / "state.json"
    server = make_sandbox(state_file=state_file)
    SandboxHttp(server.url).data(
        'mutation { createGroup(group: {ref: "Q", name: "Q"}) { group { id } } }'
    )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if state_file.exists() and json.loads(state_file.read_text())["groups"]:
            break
        time.sleep(0.1)
    assert [g["ref"] for g in json.loads(state_file.read_text())["groups"]] == ["Q"]


def test_seed_and_reset(make_sandbox: Callable[..., SandboxServer]) -> None:
    seed = Seed(
        users=[
            {"ref": "A", "name": "A", "email": "a@x.nl", "extra": {"department": "Ops"}},
            {"ref": "B", "name": "B", "email": "b@x.nl", "isActive": False},
        ],
        groups=[{"ref": "G", "name": "G", "members": ["A"], "managers": ["B"]}],
        categories=[
            {
                "ref": "team",
                "title": "Team",
                "categoryType": "CHOICE",
                "choiceOptions": ["Red", "Blue"],
            }
        ],
    )
    server = make_sandbox(seed=seed)
    http = SandboxHttp(server.url)
    state = server.control.state()
    assert [u["ref"] for u in state["users"]] == ["A", "B"]
    assert state["groups"][0]["members"] == ["A"]
    assert state["groups"][0]["managers"] == ["B"]
    assert len(state["categories"]) == 7
    http.data('mutation { createGroup(group: {ref: "H", name: "H"}) { group { id } } }')
    server.control.set_faults(error_rate=1.0)
    server.control.reset()
    assert server.control.faults()["error_rate"] == 0.0
    assert server.control.counters()["requests"] == 0
    assert [g["ref"] for g in server.control.state()["groups"]] == ["G"]
    added = server.control.seed(users=[{"ref": "C", "name": "C", "email": "c@x.nl"}])
    assert added == {"users": 3, "groups": 1}


def test_seed_conflicts_are_refused(sandbox: SandboxServer) -> None:
    from sync.sandbox import SandboxControlError

    sandbox.control.seed(users=[{"ref": "A", "name": "A", "email": "a@x.nl"}])
    with pytest.raises(SandboxControlError) as info:
        sandbox.control.seed(users=[{"ref": "A", "name": "A2", "email": "a2@x.nl"}])
    assert "already exists" in info.value.message
    with pytest.raises(SandboxControlError):
        sandbox.control.seed(groups=[{"ref": "G", "name": "G", "members": ["ghost"]}])


def test_session_sandbox_is_reset_by_callers(sandbox_session: SandboxServer) -> None:
    sandbox_session.control.reset()
    sandbox_session.control.seed(users=[{"ref": "Z", "name": "Z", "email": "z@x.nl"}])
    assert len(sandbox_session.control.state()["users"]) == 1
    sandbox_session.control.reset()
    assert sandbox_session.control.state()["users"] == []


def test_another_schema_file_is_served(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    schema = SCHEMA_FILE.read_text().replace(
        '  addedRefs: [String!] @deprecated(reason: "Use addedIds.")\n', ""
    )
    assert "addedRefs" not in schema.split("type RemoveUsersFromGroup")[0]
    path = tmp_path / "old.graphql"
    path.write_text(schema)
    http = SandboxHttp(make_sandbox(schema_file=path).url)
    fields = http.data(
        '{ __type(name: "AddUsersToGroup") { fields(includeDeprecated: true) { name } } }'
    )
    names = {f["name"] for f in fields["__type"]["fields"]}
    assert "addedIds" in names
    assert "addedRefs" not in names


def test_server_refuses_a_busy_port(sandbox: SandboxServer) -> None:
    with pytest.raises(OSError, match="in use"):
        SandboxServer(port=sandbox.port).start()


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    state_file = tmp_path / "cli.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "sync", "sandbox", "--port", "0"]
    command += ["--state-file", str(state_file), "--latency", "0.01"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("Pluvo sandbox listening on http://127.0.0.1:")
            url = first.rsplit(" ", 1)[1].strip()
            banner = [process.stdout.readline() for _ in range(5)]
            assert any("client_id=sandbox-client" in line for line in banner)
            assert any("latency=0.01" in line for line in banner)
            http = SandboxHttp(url)
            http.data('mutation { createGroup(group: {ref: "CLI", name: "cli"}) { group { id } } }')
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert [g["ref"] for g in json.loads(state_file.read_text())["groups"]] == ["CLI"]


def test_cli_rejects_bad_settings() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sync", "sandbox", "--port", "0", "--error-rate", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "error_rate" in result.stderr


def _status(url: str) -> int:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_every_address_the_banner_shows_answers(sandbox: SandboxServer) -> None:
    import re

    from sync.sandbox.faults import Faults
    from sync.sandbox.server import banner

    text = banner(sandbox, Faults(), None)
    control = re.search(r"control:\s+GET (.+?); POST (.+?) there too", text)
    assert control is not None, text
    pages = [url.strip() for url in control.group(1).split(",")]
    assert pages, text
    for url in pages:
        assert _status(url) == 200, url  # a page to open in a browser
    base = f"{sandbox.url}_sandbox/"
    for name in control.group(2).split(", "):
        # A GET on a POST-only endpoint is 405 where the route exists, 404 where it
        # does not (faults answers both).
        assert _status(base + name) in (200, 405), name
    for url in re.findall(r"POST (http://\S+)", text):
        assert _status(url) == 405, url
