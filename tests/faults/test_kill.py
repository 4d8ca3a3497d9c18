"""SIGKILL at many points of a run, chosen from the journal's progress, then run again.

The kill points are shares of the running run's journaled plan, so they land in
different phases (planning, groups, users, values, memberships) whatever the plan's
size. Between kills, the crash-safety invariant must hold: the store never records
what Pluvo does not have, and Pluvo never holds a user twice.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from dataclasses import dataclass

import pytest

from sync.sandbox import SandboxServer
from tests.e2e.workspace import Workspace
from tests.faults.checks import assert_converged, assert_store_within_pluvo, rows_for

pytestmark = pytest.mark.faults

USERS = 2000
# (share of the running run's journal finished, lowest phase reached) before the kill;
# a share of None = as soon as the run row exists, before any operation is journaled
# (reading and planning). The last point waits for the memberships phase (3).
KILL_POINTS: tuple[tuple[float | None, int], ...] = (
    (None, 0),
    (0.0, 0),
    (0.15, 0),
    (0.4, 0),
    (0.6, 0),
    (0.0, 3),
)


@dataclass(frozen=True)
class Kill:
    done: int
    total: int
    phase: int | None


def _progress(ws: Workspace) -> tuple[bool, int, int, int | None]:
    """(a run is open, ops finished, ops journaled, phase of the last finished op)."""
    try:
        running = ws.query("SELECT id FROM runs WHERE status = 'running'")
        if not running:
            return False, 0, 0, None
        (run_id,) = running[0]
        done, total = ws.query(
            "SELECT sum(status IN ('done', 'failed')), count(*) FROM operations WHERE run_id = ?",
            run_id,
        )[0]
        phase = ws.query(
            "SELECT max(phase) FROM operations WHERE run_id = ? AND status IN ('done', 'failed')",
            run_id,
        )[0][0]
    except sqlite3.OperationalError:
        return False, 0, 0, None
    return True, int(done or 0), int(total), phase


def _reached(share: float | None, min_phase: int, done: int, total: int, phase: int | None) -> bool:
    if share is None:
        return total == 0
    return total > 0 and done > 0 and done >= share * total and (phase or 0) >= min_phase


def kill_at_share(
    ws: Workspace, share: float | None, min_phase: int = 0, timeout: float = 120
) -> Kill:
    """Start `run` and SIGKILL it once `share` of its journal is finished in `min_phase`+."""
    process = ws.start("run")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            assert process.poll() is None, (
                f"run ended (exit {process.returncode}) before the kill point {share}"
            )
            open_run, done, total, phase = _progress(ws)
            if open_run and _reached(share, min_phase, done, total, phase):
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=30)
                return Kill(done, total, phase)
            time.sleep(0.01)
        raise AssertionError(f"run did not reach the kill point {share} in time")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_sigkill_at_many_points_converges(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = rows_for(USERS)
    ws.write_hr(rows)
    # Small batches and one request at a time: results trickle into the journal, so a
    # kill point is hit with some precision instead of by a whole phase at once.
    ws.write_config(**{"pluvo.batch_size": 10, "pluvo.concurrency": 2})

    kills: list[Kill] = []
    for share, min_phase in KILL_POINTS:
        if min_phase:
            # A little latency so the short last phases do not finish between two polls.
            sandbox.control.set_faults(latency=0.02)
        kills.append(kill_at_share(ws, share, min_phase))
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
    assert ws.query("SELECT count(*) FROM operations WHERE status IN ('pending', 'started')") == [
        (0,)
    ]
    assert_converged(sandbox, ws, rows)
    # Users whose creation a killed run sent are still the engine's own, not "adopted".
    assert ws.query("SELECT DISTINCT owned FROM users") == [("created",)]
