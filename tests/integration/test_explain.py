"""`explain REF` tells HR what `plan` would do for one person, and why when nothing.

Explain plans through the engine's own dry run, so a person whose rows are rejected,
filtered out or missing within the leaver grace is never said to "match"; a ref that
nothing names is a usage error (exit 2), not an empty page. In-process commands on a
real SQLite store against the sandbox over HTTP.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.cli import invoke
from tests.support.workspace import Workspace, employee, employees, make_workspace, ref_of

PEOPLE = 8


@pytest.fixture
def synced(sandbox: SandboxServer, tmp_path: Path, migrated_template: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url, state_db=migrated_template)
    ws.write_hr(employees(PEOPLE))
    first = invoke(ws, "run")
    assert first.exit_code == 0, first.output
    return ws


def planned_now(ws: Workspace, n: int | str) -> str:
    ref = ref_of(n) if isinstance(n, int) else n
    result = invoke(ws, "explain", ref)
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout.split("Planned now", 1)[1].split("\n\n", 1)[0]


def test_a_person_in_line_with_the_sources_matches(synced: Workspace) -> None:
    assert "Pluvo already matches the sources" in planned_now(synced, 3)


def test_a_leaver_within_the_grace_is_told_when_they_go(synced: Workspace) -> None:
    synced.write_config(**{"leavers.grace_runs": 1})
    synced.write_hr([employee(n) for n in range(PEOPLE) if n != 7])
    text = planned_now(synced, 7)
    assert "matches" not in text
    assert "missing from today's sources since today (1 run(s), counting this one)" in text
    assert "within the leaver grace (1 run(s), 0 day(s)): archived by a later run" in text


def test_rejected_rows_are_the_reason_nothing_is_planned(synced: Workspace) -> None:
    # A duplicate employee number: both rows are rejected, the synced person stays.
    rows = [*employees(PEOPLE), employee(5, **{"E-mailadres": "other5@voorbeeld-bv.nl"})]
    synced.write_hr(rows)
    text = planned_now(synced, 5)
    assert "matches" not in text
    assert "its source rows were rejected (above); Pluvo keeps what it has" in text


def test_a_leaver_past_the_grace_is_planned_and_the_guard_that_stops_it_named(
    synced: Workspace,
) -> None:
    synced.write_hr([employee(n) for n in range(PEOPLE) if n != 7])  # grace_runs: 0
    text = planned_now(synced, 7)
    assert "Leaving (1):" in text
    assert "stopped: " in text
    assert "--override leavers" in text


def test_a_filtered_row_is_said_to_be_filtered(synced: Workspace) -> None:
    synced.write_config(**{"leavers.grace_runs": 1})
    synced.write_hr(
        [employee(n, Status="Inactief") if n == 2 else employee(n) for n in range(PEOPLE)]
    )
    text = planned_now(synced, 2)
    assert "filtered out by the mapping's filters since today" in text


def test_a_change_is_planned_as_plan_plans_it(synced: Workspace) -> None:
    synced.write_hr([employee(n, Afdeling="ICT") if n == 4 else employee(n) for n in range(PEOPLE)])
    assert "→ ICT" in planned_now(synced, 4)


def test_a_ref_nothing_names_is_a_usage_error(synced: Workspace) -> None:
    result = invoke(synced, "explain", "99999")
    assert result.exit_code == 2, result.output
    assert "nothing names 99999" in result.stderr
