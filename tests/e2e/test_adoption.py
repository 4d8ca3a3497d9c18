"""First run against a populated organisation: adopt, never duplicate, never guess."""

from __future__ import annotations

import json
from pathlib import Path

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import mutations, users_by_ref
from tests.support.workspace import employee, make_workspace, ref_of


def test_adoption_by_ref_and_email_rejects_ambiguous(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    rows = [employee(n) for n in range(40)]
    sandbox.control.seed(
        users=[
            # Same ref: adopted by ref (and restored: it was archived by hand).
            {"ref": ref_of(1), "email": "old1@elders.nl", "name": "Old One", "archived": True},
            # No ref, same email: adopted by email and given our ref.
            {"email": "user2@voorbeeld-bv.nl", "name": "Hand Made Two"},
            # Same email, another ref: ambiguous, must be rejected, not guessed.
            {"ref": "LEGACY-3", "email": "user3@voorbeeld-bv.nl", "name": "Legacy Three"},
            # Someone else entirely: left alone.
            {"ref": "EXT-9", "email": "ext9@else.nl", "name": "External"},
        ]
    )
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr(rows)

    plan = ws.cli("plan", "--out", "plan.json")
    assert plan.returncode == 3, plan.stdout + plan.stderr  # the ambiguous row is rejected
    assert mutations(sandbox) == 0
    assert "(10001): existing Pluvo account taken over (matched by ref;" in plan.stdout
    assert "(10002): existing Pluvo account taken over (matched by email;" in plan.stdout
    assert "taken over: 2 (matched 1 by email, 1 by ref)" in plan.stdout
    assert "already belongs to Pluvo user with ref 'LEGACY-3'" in plan.stdout
    planned = json.loads((ws.root / "plan.json").read_text())
    assert sorted(planned["plan"]["adopted"]) == [ref_of(1), ref_of(2)]
    assert planned["planned"]["create_user"] == 37

    run = ws.cli("run")
    assert run.returncode == 3, run.stdout + run.stderr
    users = users_by_ref(sandbox)  # asserts no duplicate ref or email
    assert len(users) == 40 - 1 + 2  # 39 synced (one rejected) + LEGACY-3 + EXT-9
    assert users[ref_of(1)]["email"] == "user1@voorbeeld-bv.nl"
    assert users[ref_of(1)]["archived"] is False
    assert users[ref_of(2)]["name"] == "Zoë van der Tester2"
    assert users["LEGACY-3"]["name"] == "Legacy Three"
    assert users["EXT-9"]["name"] == "External"
    owned = dict(ws.query("SELECT ref, owned FROM users"))
    assert owned[ref_of(1)] == owned[ref_of(2)] == "adopted"
    assert owned[ref_of(4)] == "created"
    assert ref_of(3) not in owned
    assert "EXT-9" not in owned

    sandbox.control.reset_counters()
    again = ws.cli("run")
    assert again.returncode == 3  # the ambiguous row stays rejected until HR fixes it
    assert mutations(sandbox) == 0
