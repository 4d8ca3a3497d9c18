"""Work is never sent after its basis failed: a user Pluvo refuses to create gets no
values and no memberships that run (each would be refused too), and the next run,
with the cause fixed, completes it."""

from __future__ import annotations

import pytest

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import mutations
from tests.support.workspace import Workspace, employee, employees, ref_of

pytestmark = pytest.mark.faults


def test_a_refused_creation_sends_nothing_further_for_that_user(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = employees(30)
    # A user made by hand holds the email HR gives employee 7; with adoption off, the
    # creation of 7 is refused (email taken) when the run sends it.
    sandbox.control.seed(
        users=[{"ref": "hand-1", "name": "Hand", "email": "user7@voorbeeld-bv.nl"}]
    )
    ws.write_config(**{"adoption.match": []})
    ws.write_hr(rows)

    result = ws.cli("run", "--out", "run.json")

    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    errors = sandbox.control.counters()["errors"]
    assert errors == {"Conflict": 1}, f"only the creation was refused: {errors}"
    seven = ref_of(7)
    blocked = ws.query(
        "SELECT kind, error_class FROM operations WHERE status = 'skipped' AND ref = ?", seven
    )
    assert blocked == [("set_extra_values", "blocked")]
    partial = ws.query(
        "SELECT error FROM operations WHERE kind = 'add_members' AND status = 'failed'"
    )
    # Each of 7's groups got its members without 7, and says so.
    assert partial
    assert all(
        error.startswith("1 user(s) not sent: their creation failed") for (error,) in partial
    )

    # HR fixes the email: the next run creates 7 with its values and memberships.
    rows[7] = employee(7, **{"E-mailadres": "user7.new@voorbeeld-bv.nl"})
    ws.write_hr(rows)
    assert ws.cli("run").returncode == 0
    created = sandbox.control.user(seven)
    assert created is not None
    assert created["extra"], "its values were sent this time"
    assert seven in members_of_any_group(sandbox)
    sandbox.control.reset_counters()
    assert ws.cli("run").returncode == 0
    assert mutations(sandbox) == 0, "converged"


def members_of_any_group(sandbox: SandboxServer) -> set[str]:
    return {ref for group in sandbox.control.state()["groups"] for ref in group["members"]}
