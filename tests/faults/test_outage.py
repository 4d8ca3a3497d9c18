"""Pluvo answers 503 to everything from the middle of a run: a clear partial failure.

The run must end with exit 1 or 3 (never 0, never a traceback), say in its output and
report what it applied and what it did not, journal nothing as done that Pluvo did not
acknowledge, and leave the rest to the next healthy run, which completes it.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged, assert_store_within_pluvo
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults

USERS = 2000


def test_outage_mid_run_is_reported_and_healed(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    # Few retries: an outage is not worth a long wait, and the test stays short.
    ws.write_config(**{"pluvo.max_retries": 1, "pluvo.backoff_max": 0.1, "pluvo.batch_size": 25})

    process = ws.start("run", "--out", "outage.json")
    try:
        deadline = time.monotonic() + 120
        while ws.journal_progress() < 300:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the run never got going"
            time.sleep(0.01)
        sandbox.control.set_faults(fail_all=True)
        out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode in (1, 3), out[-2000:] + err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    assert sandbox.control.counters()["faults"].get("fail_all", 0) > 0
    # What was applied, and what was not, in words and in the report.
    assert re.search(r"applied: .*create_user \d+", out), out[-2000:]
    assert "failed:" in out or "not attempted:" in out, out[-2000:]
    report = json.loads((ws.root / "outage.json").read_text(encoding="utf-8"))
    assert report["exit_code"] == process.returncode
    applied = sum(report["applied"].values())
    not_applied = len(report["failed"]) + report["skipped"]
    assert applied >= 300
    assert not_applied > 0
    assert applied + not_applied == sum(report["planned"].values())
    assert ws.query("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") in (
        [("failed",)],
        [("partial",)],
    )
    assert_store_within_pluvo(sandbox, ws)

    sandbox.control.set_faults(fail_all=False)
    healed = ws.cli("run")
    assert healed.returncode == 0, healed.stdout[-2000:] + healed.stderr[-2000:]
    assert_converged(sandbox, ws, rows)
