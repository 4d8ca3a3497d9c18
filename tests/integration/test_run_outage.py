"""An outage ends the run within `pluvo.outage_timeout`: the client's circuit breaker.

Pluvo (the sandbox, over HTTP) answers 503 to everything from mid-run on, and
retries and backoff are set so that, without the breaker, each batch would be retried
for minutes. With `outage_timeout: 0.5` the run stops about half a second after the
last answer: exit 1 with the breaker's reason, what was never sent journaled skipped, and
the next healthy run completes the rest. The command runs in-process
(tests/support/cli.py); the reliability suite does the same at scale
(tests/faults/test_circuit_breaker.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from sync.sandbox import SandboxServer
from tests.support.cli import invoke
from tests.support.pluvo_state import heal
from tests.support.workspace import employees, make_workspace

OUTAGE_TIMEOUT = 0.5


def test_an_outage_ends_the_run_within_the_outage_timeout(
    sandbox: SandboxServer, tmp_path: Path, migrated_template: Path
) -> None:
    ws = make_workspace(
        tmp_path / "ws",
        sandbox.url,
        state_db=migrated_template,
        **{
            "pluvo.batch_size": 2,
            "pluvo.concurrency": 1,
            "pluvo.max_retries": 20,
            "pluvo.backoff_base": 0.5,
            "pluvo.backoff_max": 30.0,
            "pluvo.outage_timeout": OUTAGE_TIMEOUT,
        },
    )
    rows = employees(12)
    ws.write_hr(rows)
    planned = invoke(ws, "plan")
    assert planned.exit_code == 0, planned.output
    reads = sandbox.control.counters()["graphql_requests"]
    # The run reads what the plan read and sends two batches; every later request is a 503.
    sandbox.control.set_faults(outage_after=reads + 2)

    started = time.monotonic()
    result = invoke(ws, "run", "--out", "outage.json")
    elapsed = time.monotonic() - started

    assert result.exit_code == 1, result.output
    assert "Pluvo has not answered for" in result.stderr
    assert "pluvo.outage_timeout" in result.stderr
    assert elapsed < OUTAGE_TIMEOUT + 3.0, f"the run took {elapsed:.1f} s"
    refused = sandbox.control.counters()["faults"]["fail_all"]
    assert 0 < refused <= 4, "a few refused requests, then nothing more was sent"
    report = json.loads((ws.root / "outage.json").read_text(encoding="utf-8"))
    assert report["status"] == "failed"
    assert "Pluvo has not answered for" in (report["message"] or "")
    assert report["skipped"] > 0
    statuses = ws.operation_statuses()
    assert set(statuses) <= {"done", "failed", "skipped"}, statuses
    assert statuses.get("skipped") == report["skipped"]
    assert ws.query("SELECT status, exit_code FROM runs WHERE mode = 'run'") == [("failed", 1)]

    heal(sandbox)
    healed = invoke(ws, "run")
    assert healed.exit_code == 0, healed.output
    assert {u["ref"] for u in sandbox.control.state()["users"]} == {
        row["Personeelsnummer"] for row in rows
    }
