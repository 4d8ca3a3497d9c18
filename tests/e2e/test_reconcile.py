"""`reconcile [--apply]` through the CLI, against the sandbox over HTTP.

Each test syncs a small organisation, then changes Pluvo behind the engine's back with
the sandbox's control API, and checks that reconcile finds each kind of drift with the
right count without sending a mutation, and that `--apply` corrects exactly what the
engine owns: foreign users and members stay, and afterwards plan and reconcile agree
that nothing is left.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import expected_name, mutations
from tests.support.workspace import Workspace, employee, make_workspace, ref_of

N = 60


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr([employee(n) for n in range(N)])
    result = ws.cli("run")
    assert result.returncode == 0, result.stdout + result.stderr
    return ws


def reconcile(ws: Workspace, *args: str, expect: int) -> tuple[dict[str, Any], str]:
    """Run reconcile, which must exit `expect` (0: in sync, 3: drift); (report, stdout)."""
    out = ws.root / "reconcile.json"
    out.unlink(missing_ok=True)
    result = ws.cli("reconcile", "--out", str(out), *args)
    assert result.returncode == expect, result.stdout + result.stderr
    return json.loads(out.read_text(encoding="utf-8")), result.stdout


def group_of(sandbox: SandboxServer, ref: str) -> dict[str, Any]:
    group = sandbox.control.group(ref)
    assert group is not None, ref
    return group


def test_in_sync_after_a_run_reports_nothing(sandbox: SandboxServer, ws: Workspace) -> None:
    before = mutations(sandbox)
    report, text = reconcile(ws, expect=0)
    kinds = ("unknown_users", "field_drift", "value_drift", "membership_drift")
    kinds += ("foreign_members", "vanished")
    assert report["drift_counts"] == dict.fromkeys(kinds, 0)
    assert report["planned"] == {}
    assert report["live"]["users"] == N
    assert mutations(sandbox) == before
    assert "Reconcile (report only, nothing sent)" in text


def test_drift_reported_then_corrected_and_foreign_left_alone(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    control = sandbox.control
    hr_members = set(group_of(sandbox, "dept-hr")["members"])
    assert ref_of(0) in hr_members
    assert ref_of(6) in hr_members
    # Drift on owned things.
    control.update_user(ref_of(1), name="Changed By Hand")
    control.update_user(ref_of(2), email="hand@elsewhere.nl")
    control.update_user(ref_of(3), extra={"job_title": "Directeur"})
    control.update_user(ref_of(4), archived=True)
    assert control.remove_member("dept-hr", ref_of(0))
    # A user whose ref and email were changed by hand: the owned ref vanished.
    status, body = control.graphql(
        f'mutation {{ updateUser(ref: "{ref_of(5)}", user: {{ref: "RENAMED-5", '
        'email: "renamed5@elsewhere.nl"}) { user { id } } }'
    )
    assert status == 200, body
    assert not body.get("errors"), body
    # Foreign things: a user HR does not know, and foreign members of an owned group.
    control.seed(users=[{"ref": "FOREIGN-1", "email": "f1@else.nl", "name": "Foreign One"}])
    assert control.add_member("dept-hr", "FOREIGN-1")
    assert control.add_member("dept-hr", ref_of(7))  # an owned user, in a group not its own
    before = mutations(sandbox)

    report, text = reconcile(ws, expect=3)
    assert mutations(sandbox) == before, "reconcile without --apply sent a mutation"
    counts = report["drift_counts"]
    assert counts["unknown_users"] == 2  # FOREIGN-1 and RENAMED-5
    assert counts["value_drift"] == 1
    assert counts["membership_drift"] == 1
    foreign = {
        (f["relation"], f["group_ref"], f["user_ref"]) for f in report["drift"]["foreign_members"]
    }
    # The re-keyed user's memberships now belong to a user the engine does not know.
    renamed = {
        ("member", "all-staff", "RENAMED-5"),
        ("member", "dept-financien", "RENAMED-5"),
        ("member", "loc-amsterdam", "RENAMED-5"),
        ("manager", "dept-financien", "RENAMED-5"),
    }
    assert (
        foreign == {("member", "dept-hr", "FOREIGN-1"), ("member", "dept-hr", ref_of(7))} | renamed
    )
    assert counts["vanished"] == 1
    fields = {
        (d["ref"], d["field"]): (d["applied"], d["live"]) for d in report["drift"]["field_drift"]
    }
    assert fields == {
        (ref_of(1), "name"): (expected_name(employee(1)), "Changed By Hand"),
        (ref_of(2), "email"): ("user2@voorbeeld-bv.nl", "hand@elsewhere.nl"),
        (ref_of(4), "archived"): ("false", "true"),
    }
    assert report["drift"]["value_drift"][0] == {
        "ref": ref_of(3),
        "category": "job_title",
        "applied": employee(3)["Functie"],
        "live": "Directeur",
    }
    assert report["drift"]["membership_drift"] == [
        {"relation": "member", "group_ref": "dept-hr", "user_ref": ref_of(0)}
    ]
    assert report["drift"]["vanished"][0]["ref"] == ref_of(5)
    assert report["drift"]["vanished"][0]["now_ref"] == "RENAMED-5"
    assert report["planned"] == {
        "update_user": 2,  # name of 1, email of 2
        "restore_user": 1,  # 4
        "create_user": 1,  # 5, re-created under its ref
        "set_extra_values": 2,  # job title of 3, all values of 5
        "add_members": 4,  # 0 back into dept-hr, 5 into its three groups
        "add_managers": 1,  # 5 manages its department again
    }
    assert "Changed By Hand" in text
    assert "→" in text

    report, text = reconcile(ws, "--apply", expect=0)
    assert report["failed"] == []
    users = {u["ref"]: u for u in control.state()["users"]}
    assert users[ref_of(1)]["name"] == expected_name(employee(1))
    assert users[ref_of(2)]["email"] == "user2@voorbeeld-bv.nl"
    assert users[ref_of(3)]["extra"]["job_title"] == employee(3)["Functie"]
    assert users[ref_of(4)]["archived"] is False
    assert ref_of(5) in users
    assert users[ref_of(5)]["email"] == "user5@voorbeeld-bv.nl"
    # Foreign things are untouched.
    assert users["FOREIGN-1"]["name"] == "Foreign One"
    assert users["RENAMED-5"]["email"] == "renamed5@elsewhere.nl"
    members = set(group_of(sandbox, "dept-hr")["members"])
    assert {ref_of(0), "FOREIGN-1", ref_of(7)} <= members
    runs = ws.query("SELECT mode, status FROM runs WHERE mode = 'reconcile'")
    assert runs == [("reconcile", "succeeded")]

    before = mutations(sandbox)
    plan = ws.cli("plan", "--out", "plan.json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert json.loads((ws.root / "plan.json").read_text())["planned"] == {}
    report, text = reconcile(ws, expect=0)
    assert report["planned"] == {}
    counts = report["drift_counts"]
    assert counts["unknown_users"] == 2
    assert counts["foreign_members"] == 6
    assert sum(counts[k] for k in ("field_drift", "value_drift", "membership_drift")) == 0
    assert counts["vanished"] == 0
    assert mutations(sandbox) == before
