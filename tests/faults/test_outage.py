"""Pluvo answers 503 to everything from the middle of a run: a clear failed run, then healed.

The outage is counted, not timed: the sandbox serves a set number of requests and then
answers 503 to all, so it begins after exactly twelve batches of users, whatever the
machine's speed. The users phase then ends partly applied, the next phase fails
entirely, and the run stops there: exit 1 (never 0, never a traceback), saying in its
output and report what it applied, what failed and what it did not attempt, with the
journal and store holding nothing Pluvo did not acknowledge. The next healthy run
completes it.
"""

from __future__ import annotations

import json
import math
import re

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged, assert_store_within_pluvo
from tests.support.pluvo_state import heal, users_by_ref
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults

USERS = 2000
BATCH = 25
USER_BATCHES_SERVED = 12


def test_outage_mid_run_is_reported_and_healed(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    # Few retries: an outage is not worth a long wait, and the test stays short.
    ws.write_config(**{"pluvo.max_retries": 1, "pluvo.backoff_max": 0.1, "pluvo.batch_size": BATCH})
    # A plan makes the run's reads without writing: they, the groups' batches and twelve
    # batches of users are served, then the outage begins.
    planned_run = ws.cli("plan", "--out", "plan.json")
    assert planned_run.returncode == 0, planned_run.stdout[-2000:] + planned_run.stderr[-2000:]
    planned = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))["planned"]
    reads = sandbox.control.counters()["graphql_requests"]
    served = reads + math.ceil(planned["create_group"] / BATCH) + USER_BATCHES_SERVED
    sandbox.control.set_faults(outage_after=served)

    result = ws.cli("run", "--out", "outage.json")

    out, err = result.stdout, result.stderr
    assert "Traceback" not in err, err[-3000:]
    assert result.returncode == 1, out[-2000:] + err[-2000:]
    assert sandbox.control.counters()["faults"].get("fail_all", 0) > 0
    applied_users = USER_BATCHES_SERVED * BATCH
    # What was applied, what failed and what was not attempted: in words ...
    assert re.search(rf"applied: .*create_user {applied_users}\b", out), out[-2000:]
    not_created = planned["create_user"] - applied_users
    # Values go out only for the users that were created (each has values); those of the
    # users Pluvo never got are not sent at all (blocked), nor is any later phase.
    failed_ops = not_created + applied_users
    blocked = planned["set_extra_values"] - applied_users
    not_attempted = blocked + planned["add_members"] + planned["add_managers"]
    assert f"failed: {failed_ops} operation(s)" in out, out[-2000:]
    assert f"not attempted: {not_attempted} operation(s)" in out, out[-2000:]
    assert "stopping until Pluvo recovers" in out + err, out[-2000:] + err[-2000:]
    # ... and in the report: every failure transient, the later phases never sent.
    report = json.loads((ws.root / "outage.json").read_text(encoding="utf-8"))
    assert report["exit_code"] == 1
    assert report["status"] == "failed"
    assert report["applied"] == {
        "create_group": planned["create_group"],
        "create_user": applied_users,
    }
    assert len(report["failed"]) == failed_ops
    assert {f["class"] for f in report["failed"]} == {"transient"}
    assert {f["kind"] for f in report["failed"]} == {"create_user", "set_extra_values"}
    assert report["skipped"] == not_attempted
    # The journal says the same, with nothing left open.
    assert ws.operation_statuses() == {
        "done": planned["create_group"] + applied_users,
        "failed": failed_ops,
        "skipped": not_attempted,
    }
    assert ws.query("SELECT status, exit_code FROM runs") == [("failed", 1)]
    # Pluvo holds exactly the acknowledged users, and the store records exactly those.
    assert len(users_by_ref(sandbox)) == applied_users
    assert ws.query("SELECT count(*) FROM users") == [(applied_users,)]
    assert_store_within_pluvo(sandbox, ws)

    heal(sandbox)
    healed = ws.cli("run")
    assert healed.returncode == 0, healed.stdout[-2000:] + healed.stderr[-2000:]
    assert_converged(sandbox, ws, rows)
