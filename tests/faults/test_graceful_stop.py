"""SIGTERM mid-run (cron timeout, `systemctl stop`, Kubernetes) is a graceful stop.

No new request leaves, the ones in flight finish, and the run ends like any run that
stops early: exit 1 with "stopped by signal", its report written, its journal settled
(nothing left started or pending), its lock released. A second signal stops at once.
Either way the next run converges.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged, assert_store_within_pluvo
from tests.support.pluvo_state import heal
from tests.support.waiting import finish, running, wait_for_progress
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults

USERS = 300


@pytest.fixture
def slow_ws(sandbox: SandboxServer, ws: Workspace) -> tuple[Workspace, list[dict[str, str]]]:
    rows = employees(USERS)
    ws.write_hr(rows)
    ws.write_config(**{"pluvo.batch_size": 5, "pluvo.concurrency": 2})
    sandbox.control.set_faults(latency=0.05)
    return ws, rows


def test_sigterm_stops_gracefully_and_the_next_run_converges(
    sandbox: SandboxServer, slow_ws: tuple[Workspace, list[dict[str, str]]]
) -> None:
    ws, rows = slow_ws
    with running(ws, "run") as process:
        wait_for_progress(ws, process, lambda p: p.done >= 20, what="the run under way")
        process.send_signal(signal.SIGTERM)
        result = finish(process)

    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "stopped by signal SIGTERM" in result.stdout + result.stderr
    (report_file,) = (ws.root / "reports").glob("run-*.json")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert report["message"] == "stopped by signal SIGTERM"
    assert report["skipped"] > 0
    statuses = ws.operation_statuses()
    assert set(statuses) <= {"done", "failed", "skipped"}, statuses  # nothing left open
    assert statuses["skipped"] == report["skipped"]
    assert ws.query("SELECT status, exit_code FROM runs") == [("failed", 1)]
    assert ws.query("SELECT count(*) FROM lock") == [(0,)]
    assert_store_within_pluvo(sandbox, ws)

    heal(sandbox)
    again = ws.cli("run")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "settled" not in again.stderr  # the stopped run needed no settling
    assert_converged(sandbox, ws, rows)


def test_a_second_signal_stops_at_once_and_the_next_run_settles_it(
    sandbox: SandboxServer, slow_ws: tuple[Workspace, list[dict[str, str]]]
) -> None:
    ws, rows = slow_ws
    with running(ws, "run") as process:
        wait_for_progress(ws, process, lambda p: p.done >= 20, what="the run under way")
        # Requests in flight now take seconds to finish, so the graceful stop is still
        # waiting for them when the second signal comes (two signals sent back to back
        # could reach the process as one).
        sandbox.control.set_faults(latency=5.0)
        time.sleep(0.5)  # the next requests are out, and slow
        process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGTERM
    assert ws.query("SELECT status FROM runs") == [("running",)], "not settled by itself"
    heal(sandbox)
    again = ws.cli("run")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert "settled 1 interrupted run(s)" in again.stderr, again.stderr[-3000:]
    assert_converged(sandbox, ws, rows)
