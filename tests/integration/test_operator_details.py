"""What the operator sees of the small things: where a file went, a failed run in
`status --json`, a bad store URL's exit code, `held` at the terminal's width.
The commands run in-process against the sandbox (tests/support/cli.py)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.cli import invoke, invoke_in
from tests.support.workspace import SECRET_ENV, Workspace, employee, employees, make_workspace


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path, migrated_template: Path) -> Workspace:
    """A workspace with a migrated store and an export of three people."""
    ws = make_workspace(tmp_path / "ws", sandbox.url, state_db=migrated_template)
    ws.write_hr(employees(3))
    return ws


def test_status_json_says_what_a_failed_run_did_with_zoned_timestamps(
    ws: Workspace,
) -> None:
    assert invoke(ws, "run").exit_code == 0
    failed = invoke_in(ws.root, "run", "-c", str(ws.config_file), env={SECRET_ENV: "wrong"})
    assert failed.exit_code == 1, failed.stderr
    status = invoke(ws, "status", "--json")
    assert status.exit_code == 0, status.stderr
    last, first = json.loads(status.stdout)["runs"]
    assert (last["status"], last["exit_code"]) == ("failed", 1)
    assert last["failed"] == 0  # nothing was sent, so nothing failed: never null
    assert "refused the client credentials" in last["message"]
    assert first["failed"] == 0
    for run in (last, first):
        for key in ("started_at", "finished_at"):
            stamp = datetime.fromisoformat(run[key])
            assert stamp.utcoffset() is not None, (key, run[key])
            assert run[key].endswith("+00:00"), run[key]


def test_out_and_html_refuse_a_missing_folder_and_say_where_files_went(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    requests = sandbox.control.counters()["graphql_requests"]
    for args in (
        ("plan", "--out", "missing/plan.json"),
        ("plan", "--html", "missing/deeper/plan.html"),
        ("run", "--out", "missing/run.json"),
        ("run", "--html", "missing/run.html"),
        ("reconcile", "--out", "missing/drift.json"),
    ):
        refused = invoke(ws, *args)
        assert refused.exit_code == 2, (args, refused.output)
        assert "the folder missing" in refused.stderr, refused.stderr
        assert "does not exist" in refused.stderr, refused.stderr
        assert not (ws.root / "missing").exists(), args
    assert sandbox.control.counters()["graphql_requests"] == requests  # refused before running

    planned = invoke(ws, "plan", "--out", "plan.json", "--html", "plan.html")
    assert planned.exit_code == 0, planned.stderr
    assert f"saved plan written to {ws.root / 'plan.json'}" in planned.stderr
    assert f"HTML report written to {ws.root / 'plan.html'}" in planned.stderr
    ran = invoke(ws, "run", "--out", "run.json")
    assert ran.exit_code == 0, ran.stderr
    assert f"JSON report written to {ws.root / 'run.json'}" in ran.stderr
    drift = invoke(ws, "reconcile", "--out", "drift.json")
    assert f"drift report written to {ws.root / 'drift.json'}" in drift.stderr
    for name in ("plan.json", "plan.html", "run.json", "drift.json"):
        assert (ws.root / name).is_file(), name


def test_reconcile_says_why_it_exits_3_when_no_drift_count_is_above_0(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    assert invoke(ws, "run").exit_code == 0
    assert invoke(ws, "reconcile").exit_code == 0  # in sync: no why line
    ws.write_hr(employees(4))  # a joiner no run has created yet: no drift in Pluvo
    result = invoke(ws, "reconcile")
    assert result.exit_code == 3, result.stderr
    lines = result.stdout.splitlines()
    counts = {line.split()[0]: line.split()[1] for line in lines if line.startswith("  ")}
    assert {counts[k] for k in ("unknown_users", "field_drift", "vanished")} == {"0"}
    assert counts["not_yet_synced"] == "7"
    outcome = lines.index(next(line for line in lines if line.startswith("Reconcile 2")))
    assert "drift (exit 3)" in lines[outcome]
    assert lines[outcome + 1] == (
        "  no drift in Pluvo: 7 change(s) from HR are not applied yet "
        "(`pluvo-sync run` or `reconcile --apply` sends them)"
    )
    sandbox.control.update_user("10000", name="Changed by hand")
    drifted = invoke(ws, "reconcile")
    assert drifted.exit_code == 3, drifted.stderr
    assert "  drift: 1 difference(s) in what the engine owns; --apply sends 8" in drifted.stdout
    assert "not_yet_synced" not in drifted.stdout


def test_held_fits_the_terminal(
    ws: Workspace,
) -> None:
    ws.write_config(**{"safety.hold": ["leavers"], "safety.on_exceed": "hold"})
    people = employees(4)
    people[3]["Voornaam"] = "[bold]Zoë:smile:"  # HR text that looks like markup stays text
    ws.write_hr(people)
    assert invoke(ws, "run").exit_code == 0
    ws.write_hr(people[:2])
    assert invoke(ws, "run").exit_code == 7
    for columns in ("80", "120"):
        held = invoke_in(
            ws.root, "held", "-c", str(ws.config_file), env={SECRET_ENV: "x", "COLUMNS": columns}
        )
        assert held.exit_code == 0, held.stderr
        lines = held.stdout.splitlines()
        assert lines[0] == "Held for release: 2 change(s)"
        table = lines[3:]
        assert table[0].split() == ["ref", "who", "what", "since", "why"]
        assert max(len(line) for line in lines) <= int(columns), held.stdout
        text = " ".join(held.stdout.split())
        assert "[bold]Zoë:smile:" in text
        for ref in ("10002", "10003"):
            assert sum(line.startswith(ref) for line in table) == 1  # ref on one line
        for word in ("archived,", "gone", "sources", "Eindhoven", "leavers"):
            assert word in held.stdout.split(), word  # wrapped, never cut


def test_a_wrong_secret_is_said_once_and_never_shown(ws: Workspace) -> None:
    result = invoke_in(
        ws.root, "run", "-c", str(ws.config_file), env={SECRET_ENV: "wrong-secret-4711"}
    )
    assert result.exit_code != 0, result.output
    said = result.stdout + result.stderr
    assert "wrong-secret-4711" not in said
    lines = [line for line in said.splitlines() if "invalid_client" in line]
    assert len(lines) == 1, said


@pytest.mark.parametrize("grace", [0, 2])
def test_a_synced_person_a_filter_drops_is_named_as_leaving(ws: Workspace, grace: int) -> None:
    """A status emptied or changed makes a synced person look gone: the plan names them,
    with the filter and the line, whether they leave at this run or after the grace."""
    ws.write_config(**{"leavers.grace_runs": grace})
    assert invoke(ws, "run").exit_code == 0
    ws.write_hr([employee(0), employee(1, Status=""), employee(2, Functie="Stagiair HR")])
    plan = invoke(ws, "plan")
    text = plan.stdout
    assert "2 synced people filtered out by the mapping: will leave" in text, text
    assert "10001: filtered out by filters.include Status in [Actief] (any case)" in text, text
    assert ":3): will leave" in text, text  # line 3 of hr.csv: employee 1
    assert "10002: filtered out by filters.exclude Functie ~ (?i)stagiair.*" in text, text
    leaving = "(10001): archived, filtered out by filters.include Status in [Actief]" in text
    assert leaving == (grace == 0), text


def test_leavers_within_the_grace_are_named_on_the_first_day(ws: Workspace) -> None:
    """Day 2 with the default grace of one run: nobody is archived yet, and the plan says
    who is missing since when, and that the next run archives them unless they return."""
    ws.write_config(**{"leavers.grace_runs": 1})
    assert invoke(ws, "run").exit_code == 0
    ws.write_hr([employee(0)])
    text = invoke(ws, "plan").stdout
    assert "2 people missing from today's sources, within the leaver grace:" in text, text
    assert "10001: missing from today's sources since " in text, text
    assert "archived at the next run unless they return" in text, text
    assert "archive leaver" not in text
    ran = invoke(ws, "run", "--override", "source-shrink")
    assert ran.exit_code == 0, ran.output
    after = invoke(ws, "plan").stdout
    assert "(10001): archived" in after, after  # the next run is the one that archives
