"""What the operator sees of the small things: where a file went, a failed run in
`status --json`, a bad store URL's exit code, `held` at the terminal's width.
The commands run in-process against the sandbox (tests/support/cli.py)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sync.sandbox import SandboxServer
from tests.support.cli import invoke, invoke_in
from tests.support.workspace import SECRET_ENV, employees, make_workspace


def test_status_json_says_what_a_failed_run_did_with_zoned_timestamps(
    sandbox: SandboxServer, tmp_path: Path, migrated_template: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", sandbox.url, state_db=migrated_template)
    ws.write_hr(employees(3))
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
