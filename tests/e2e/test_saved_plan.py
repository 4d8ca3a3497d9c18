"""Saved plans through the CLI, against the sandbox: `plan --out` / `run --plan`.

A saved plan is applied exactly (the run's journal holds its operations and nothing
else, and the runs table its hash), or refused with exit 4 and a message naming what
changed since it was made: a source file, the store (a run in between), a mapping
file, the config, or the plan file itself. The file holds no secret. `plan
--detailed-exitcode` says whether there is anything to review.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import assert_pluvo_matches, mutations, users_by_ref
from tests.support.workspace import SECRET_ENV, Workspace, employee, make_workspace, ref_of

N = 60


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr(employee(n) for n in range(N))
    first = ws.cli("run")
    assert first.returncode == 0, first.stdout + first.stderr
    return ws


def _day2() -> list[dict[str, str]]:
    """Joiners, a leaver, renames and a department move on top of day 1."""
    rows = {n: employee(n) for n in range(N)}
    del rows[7]
    for n in range(N, N + 3):
        rows[n] = employee(n)
    for n in (11, 12):
        rows[n]["Achternaam"] = f"Getrouwd{n}"
    rows[20]["Afdeling"] = "Marketing" if rows[20]["Afdeling"] != "Marketing" else "ICT"
    return list(rows.values())


def _saved(ws: Workspace, name: str = "plan.json") -> dict[str, Any]:
    result = ws.cli("plan", "--out", name)
    assert result.returncode == 0, result.stdout + result.stderr
    data: dict[str, Any] = json.loads((ws.root / name).read_text(encoding="utf-8"))
    return data


def _refused(ws: Workspace, sandbox: SandboxServer, *, recorded: bool = True) -> str:
    """`run --plan` refused: exit 4, nothing sent, nothing journaled; its error line.

    A refusal under the run lock is recorded as a guarded run; an edited file is
    refused before any run starts."""
    runs = ws.query("SELECT count(*) FROM runs")
    operations = ws.query("SELECT count(*) FROM operations")
    sandbox.control.reset_counters()
    result = ws.cli("run", "--plan", "plan.json")
    assert result.returncode == 4, result.stdout + result.stderr
    assert mutations(sandbox) == 0
    assert ws.query("SELECT count(*) FROM operations") == operations
    if recorded:
        status = ws.query("SELECT status, exit_code FROM runs ORDER BY started_at DESC LIMIT 1")
        assert status == [("guarded", 4)]
    else:
        assert ws.query("SELECT count(*) FROM runs") == runs
    (line,) = [line for line in result.stderr.splitlines() if "pluvo-sync: error:" in line]
    assert "nothing was applied" in line
    return line


def test_run_plan_applies_exactly_the_saved_operations(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    day2 = _day2()
    ws.write_hr(day2)
    saved = _saved(ws)
    planned = [(op["kind"], op["ref"]) for op in saved["plan"]["operations"]]
    assert {kind for kind, _ in planned} >= {"create_user", "update_user", "archive_user"}
    assert saved["plan_hash"].startswith("sha256:")

    result = ws.cli("run", "--plan", "plan.json")
    assert result.returncode == 0, result.stdout + result.stderr
    ((run_id, plan_hash),) = ws.query(
        "SELECT id, plan_hash FROM runs ORDER BY started_at DESC LIMIT 1"
    )
    assert plan_hash == saved["plan_hash"], "the journal records which plan the run applied"
    journal = ws.query(
        "SELECT kind, ref, status FROM operations WHERE run_id = ? ORDER BY seq", run_id
    )
    assert sorted((kind, ref) for kind, ref, _ in journal) == sorted(planned)
    assert {status for _, _, status in journal} == {"done"}
    assert_pluvo_matches(sandbox, day2)
    assert users_by_ref(sandbox)[ref_of(7)]["archived"] is True

    # Converged: nothing left to plan, and the applied plan cannot be applied twice.
    again = ws.cli("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    message = _refused(ws, sandbox)
    assert f"the state store was changed by run {run_id}" in message


def test_stale_after_the_source_file_changed(sandbox: SandboxServer, ws: Workspace) -> None:
    ws.write_hr(_day2())
    _saved(ws)
    rows = _day2()
    rows[0]["Functie"] = "Directeur"
    ws.write_hr(rows)
    message = _refused(ws, sandbox)
    assert "source hr: hr/hr.csv changed since the plan was made" in message
    assert "state store" not in message
    assert "mapping" not in message


def test_stale_after_a_run_changed_the_store(sandbox: SandboxServer, ws: Workspace) -> None:
    ws.write_hr(_day2())
    _saved(ws)
    between = ws.cli("run")
    assert between.returncode == 0, between.stdout + between.stderr
    ((run_id,),) = ws.query("SELECT id FROM runs ORDER BY started_at DESC LIMIT 1")
    message = _refused(ws, sandbox)
    assert f"the state store was changed by run {run_id} since the plan was made" in message
    assert "source hr" not in message


def test_stale_after_the_mapping_or_config_changed(sandbox: SandboxServer, ws: Workspace) -> None:
    ws.write_hr(_day2())
    _saved(ws)
    mapping = ws.root / "mapping.yaml"
    original = mapping.read_bytes()
    mapping.write_bytes(original + b"\n# reviewed\n")
    message = _refused(ws, sandbox)
    assert "mapping mapping.yaml changed since the plan was made" in message
    assert "source hr" not in message

    mapping.write_bytes(original)
    ws.write_config(**{"leavers.grace_runs": 3})
    message = _refused(ws, sandbox)
    assert "config: leavers changed since the plan was made" in message

    # Only what can change the operations counts: logging and the report's folder do not.
    ws.write_config(**{"logging.level": "WARNING"})
    result = ws.cli("run", "--plan", "plan.json")
    assert result.returncode == 0, result.stdout + result.stderr


def test_an_edited_plan_file_is_refused(sandbox: SandboxServer, ws: Workspace) -> None:
    ws.write_hr(_day2())
    saved = _saved(ws)
    saved["plan"]["operations"] = [
        op for op in saved["plan"]["operations"] if op["kind"] != "archive_user"
    ]
    (ws.root / "plan.json").write_text(json.dumps(saved), encoding="utf-8")
    message = _refused(ws, sandbox, recorded=False)
    assert "was edited after it was made" in message

    (ws.root / "not-a-plan.json").write_text('{"run_id": "x"}', encoding="utf-8")
    result = ws.cli("run", "--plan", "not-a-plan.json")
    assert result.returncode == 2, result.stderr
    assert "is not a saved plan" in result.stderr


def test_the_plan_file_holds_no_secret(sandbox: SandboxServer, ws: Workspace) -> None:
    ws.write_hr(_day2())
    _saved(ws)
    text = (ws.root / "plan.json").read_text(encoding="utf-8")
    secret = ws.env()[SECRET_ENV]
    assert secret not in text
    tokens = set(sandbox._tokens)
    assert tokens, "the plan read Pluvo, so a token was issued"
    assert not [t for t in tokens if t in text]
    assert "fingerprint" in text
    assert SECRET_ENV not in text


def test_detailed_exitcode(sandbox: SandboxServer, ws: Workspace) -> None:
    unchanged = ws.cli("plan", "--detailed-exitcode")
    assert unchanged.returncode == 0, unchanged.stdout + unchanged.stderr
    assert ws.cli("plan").returncode == 0

    ws.write_hr(_day2())
    pending = ws.cli("plan", "--detailed-exitcode")
    assert pending.returncode == 6, pending.stdout + pending.stderr
    assert ws.cli("plan").returncode == 0, "without the flag a plan with changes exits 0"

    # A guard keeps its own code.
    ws.write_hr(employee(n) for n in range(N // 2))
    guarded = ws.cli("plan", "--detailed-exitcode")
    assert guarded.returncode == 4, guarded.stdout + guarded.stderr
