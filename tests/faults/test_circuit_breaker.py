"""A total outage ends the run within `pluvo.outage_timeout`, with a report, and heals.

Pluvo answers 503 to everything from the middle of the users phase, with retries and
backoff generous enough that, without a circuit breaker, each batch would be retried
for minutes. With `outage_timeout: 3`, the client stops sending once no request got an
answer for three seconds: the run ends failed (exit 1) and says so, the operations it
never sent are journaled skipped, and the next healthy run converges without a
duplicate.
"""

from __future__ import annotations

import json

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged, assert_store_within_pluvo
from tests.support.pluvo_state import heal
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults

USERS = 600


def test_an_outage_trips_the_breaker_and_the_next_run_converges(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    ws.write_config(
        **{
            "pluvo.batch_size": 10,
            "pluvo.concurrency": 2,
            "pluvo.max_retries": 20,
            "pluvo.backoff_base": 1.0,
            "pluvo.backoff_max": 60.0,
            "pluvo.outage_timeout": 3,
        }
    )
    plan = ws.cli("plan")
    assert plan.returncode == 0, plan.stderr[-2000:]
    reads = sandbox.control.counters()["graphql_requests"]
    sandbox.control.set_faults(outage_after=reads + 10)  # groups and a few user batches

    result = ws.cli("run", "--out", "outage.json")

    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Pluvo has not answered for" in result.stdout + result.stderr
    report = json.loads((ws.root / "outage.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert "Pluvo has not answered for" in (report["message"] or "")
    assert report["skipped"] > 0
    statuses = ws.operation_statuses()
    assert set(statuses) <= {"done", "failed", "skipped"}, statuses
    assert statuses.get("skipped", 0) == report["skipped"]
    # Twenty retries of 1-60 s backoff per batch would take many minutes; the breaker
    # stopped after a handful of refused requests instead.
    refused = sandbox.control.counters()["faults"]["fail_all"]
    assert 0 < refused < 40, refused
    assert_store_within_pluvo(sandbox, ws)

    heal(sandbox)
    healed = ws.cli("run")
    assert healed.returncode == 0, healed.stdout[-2000:] + healed.stderr[-2000:]
    assert_converged(sandbox, ws, rows)
