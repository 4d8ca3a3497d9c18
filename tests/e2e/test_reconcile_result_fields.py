"""`reconcile --apply` against a Pluvo that only has the older membership result fields.

Pluvo's membership mutations answered `addedRefs alreadyAddedRefs failedRefs` before
they answered `addedIds ...`; an organisation on the older API needs
`pluvo.membership_result_fields: refs`. The sandbox here serves the bundled schema with
the Ids fields taken out of both membership results, so a document selecting them is
refused as Pluvo would refuse it. Each test syncs a small organisation, then changes
Pluvo behind the engine's back (a member removed, a name changed) and corrects it
through the CLI: with the setting the correction goes through; without it the
membership correction fails, and says why, which shows the setting is what is honoured
on the reconcile path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import expected_name, members
from tests.support.workspace import ROOT, Workspace, employee, employees, make_workspace, ref_of

N = 12
REFS: dict[str, Any] = {"pluvo.membership_result_fields": "refs"}
REMOVED = ref_of(0)
"""Taken out of its department group in Pluvo by hand."""
RENAMED = ref_of(1)
"""Renamed in Pluvo by hand."""
GROUP = "dept-hr"
REFUSAL = "Cannot query field 'addedIds' on type 'AddUsersToGroup'"


def older_schema(folder: Path) -> Path:
    """The bundled contract with the membership results of the older generation: only
    the Refs fields, not yet deprecated."""
    text = (ROOT / "sync" / "pluvo" / "schema.graphql").read_text(encoding="utf-8")
    dropped = 0

    def older(block: re.Match[str]) -> str:
        nonlocal dropped
        body, count = re.subn(r"\n  \w+Ids: \[\w+!\]!", "", block.group(0))
        dropped += count
        return re.sub(r' @deprecated\(reason: "[^"]*"\)', "", body)

    text, types = re.subn(r"type (AddUsersToGroup|RemoveUsersFromGroup) \{[^}]*\}", older, text)
    assert (types, dropped) == (2, 6), "the bundled membership result types changed shape"
    path = folder / "older.graphql"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def older(make_sandbox: Callable[..., SandboxServer], tmp_path: Path) -> SandboxServer:
    """A sandbox serving the older membership results."""
    server = make_sandbox(schema_file=older_schema(tmp_path))
    status, body = server.control.graphql(
        f'mutation {{ addUsersToGroup(groupRef: "{GROUP}", userRefs: []) {{ addedIds }} }}'
    )
    assert status == 400, body  # the sandbox really lacks the newer fields
    return server


@pytest.fixture
def ws(older: SandboxServer, tmp_path: Path) -> Workspace:
    """An organisation synced with `refs`, then drifted in Pluvo: one member removed from
    an owned group, one user renamed."""
    ws = make_workspace(tmp_path / "ws", older.url, **REFS)
    ws.write_hr(employees(N))
    synced = ws.cli("run")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert REMOVED in members(older, GROUP)
    assert older.control.remove_member(GROUP, REMOVED)
    older.control.update_user(RENAMED, name="Changed By Hand")
    older.control.reset_counters()
    return ws


def reconcile(ws: Workspace, *args: str) -> tuple[int, dict[str, Any], str]:
    """Exit code, JSON report and everything printed of one `reconcile`."""
    out = ws.root / "reconcile.json"
    out.unlink(missing_ok=True)
    result = ws.cli("reconcile", "--out", str(out), *args)
    printed = result.stdout + result.stderr
    assert out.is_file(), printed
    return result.returncode, json.loads(out.read_text(encoding="utf-8")), printed


def name_of(sandbox: SandboxServer, ref: str) -> str:
    user = sandbox.control.user(ref)
    assert user is not None, f"no user {ref} in Pluvo"
    return str(user["name"])


def test_apply_with_refs_corrects_drift(older: SandboxServer, ws: Workspace) -> None:
    code, report, printed = reconcile(ws, "--apply")
    assert code == 0, printed
    drift = report["drift_counts"]
    assert (drift["field_drift"], drift["membership_drift"]) == (1, 1)
    assert report["failed"] == []
    assert report["planned"] == {"update_user": 1, "add_members": 1}
    assert REMOVED in members(older, GROUP)
    assert name_of(older, RENAMED) == expected_name(employee(1))
    counters = older.control.counters()
    assert counters["mutations"]["addUsersToGroup"] == 1
    assert counters["errors"] == {}, "Pluvo refused something"
    assert (GROUP, REMOVED) in set(ws.query("SELECT group_ref, user_ref FROM memberships"))

    older.control.reset_counters()
    code, report, printed = reconcile(ws)
    assert code == 0, printed
    assert report["drift_counts"] == dict.fromkeys(report["drift_counts"], 0)
    assert report["planned"] == {}
    assert older.control.counters()["mutations_total"] == 0


def test_apply_without_the_setting_fails_on_the_membership_then_succeeds_with_it(
    older: SandboxServer, ws: Workspace
) -> None:
    ws.write_config()  # membership_result_fields left at its default, ids
    code, report, printed = reconcile(ws, "--apply")
    assert code == 1, printed
    assert report["status"] == "failed"
    (failed,) = report["failed"]
    assert (failed["kind"], failed["ref"], failed["class"]) == ("add_members", GROUP, "fatal")
    assert REFUSAL in failed["error"]
    assert f"failed add_members {GROUP}: " in printed
    assert REFUSAL in report["message"]
    assert REMOVED not in members(older, GROUP)
    # Exit 1 is "nothing or only part applied": the users phase went before the refusal.
    assert name_of(older, RENAMED) == expected_name(employee(1))
    assert older.control.counters()["mutations"].get("addUsersToGroup", 0) == 0

    ws.write_config(**REFS)
    code, report, printed = reconcile(ws, "--apply")
    assert code == 0, printed
    assert report["planned"] == {"add_members": 1}
    assert REMOVED in members(older, GROUP)
    code, report, printed = reconcile(ws)
    assert code == 0, printed
    assert report["planned"] == {}


def test_the_refusal_names_the_setting_to_change(ws: Workspace) -> None:
    ws.write_config()
    code, _report, printed = reconcile(ws, "--apply")
    assert code == 1, printed
    assert "membership_result_fields" in printed
