"""SIGKILL at many points of a run, chosen from the journal's progress, then run again.

The kill points are shares of the running run's journaled plan, so they land in
different phases (planning, groups, users, values, memberships) whatever the plan's
size. Between kills, the crash-safety invariant must hold: the store never records
what Pluvo does not have, and Pluvo never holds a user twice.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged, assert_store_within_pluvo
from tests.support.waiting import kill_when
from tests.support.workspace import Progress, Workspace, employees

pytestmark = pytest.mark.faults

USERS = 2000
# (share of the running run's journal finished, lowest phase reached, sandbox latency)
# before the kill; a share of None = as soon as the run row exists, before any operation
# is journaled (reading and planning). The second point is the groups phase (0): its few
# requests are done in milliseconds, so a latency longer than a poll holds the run there
# (the first finished operation is a group; the first user waits out the latency). The
# last point waits for the memberships phase (3), with a little latency so the short
# last phases do not finish between two polls.
KILL_POINTS: tuple[tuple[float | None, int, float], ...] = (
    (None, 0, 0.0),
    (0.0, 0, 0.5),
    (0.15, 0, 0.0),
    (0.4, 0, 0.0),
    (0.6, 0, 0.0),
    (0.0, 3, 0.02),
)


def _reached(share: float | None, min_phase: int) -> Callable[[Progress], bool]:
    def reached(p: Progress) -> bool:
        if share is None:
            return p.total == 0
        return (
            p.total > 0 and p.done > 0 and p.done >= share * p.total and (p.phase or 0) >= min_phase
        )

    return reached


def test_sigkill_at_many_points_converges(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    # Small batches and one request at a time: results trickle into the journal, so a
    # kill point is hit with some precision instead of by a whole phase at once.
    ws.write_config(**{"pluvo.batch_size": 10, "pluvo.concurrency": 2})

    kills: list[Progress] = []
    for share, min_phase, latency in KILL_POINTS:
        sandbox.control.set_faults(latency=latency)
        what = f"the kill point (share {share}, phase {min_phase}+)"
        kills.append(kill_when(ws, _reached(share, min_phase), what=what))
        assert_store_within_pluvo(sandbox, ws)

    distinct = {(k.done, k.total) for k in kills}
    assert len(distinct) >= 5, kills
    phases = {k.phase for k in kills if k.phase is not None}
    assert phases >= {0, 1, 2, 3}, f"kills missed a phase: {kills}"
    # Each run settles the one killed before it; the last killed run is still open.
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(1,)]
    print("kill points (done, journaled, phase):", kills)

    final = ws.cli("run")
    assert final.returncode == 0, final.stdout[-2000:] + final.stderr[-2000:]
    assert "settled" in final.stderr
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'aborted'") == [(len(kills),)]
    statuses = ws.operation_statuses()
    assert "pending" not in statuses, statuses
    assert "started" not in statuses, statuses
    assert statuses.get("abandoned", 0) > 0, f"the killed runs' open operations: {statuses}"
    assert_converged(sandbox, ws, rows)
    # Users whose creation a killed run sent are still the engine's own, not "adopted".
    assert ws.query("SELECT DISTINCT owned FROM users") == [("created",)]
