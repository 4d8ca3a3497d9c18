"""One run at a time: the run lock, as `pluvo-sync run` meets it.

A second run while another holds the lock exits 5 before it reads or sends anything;
a holder that died frees the lock with its process (the kernel drops its file lock),
so the row it left behind does not block the next run. The command runs in-process
(tests/support/cli.py) on a real SQLite store, against the sandbox over HTTP; the
holders are a store of the test's own and a process that is killed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from sync.sandbox import SandboxServer
from sync.state.store import StateStore, holder_id
from tests.support.cli import invoke
from tests.support.workspace import Workspace, employees, make_workspace

HOLDER = """\
import os, signal, sys
from sync.state.store import StateStore

StateStore(sys.argv[1]).acquire_lock("r-dead")
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def workspace(sandbox: SandboxServer, tmp_path: Path, template: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url, state_db=template)
    ws.write_hr(employees(3))
    return ws


def test_a_run_while_another_holds_the_lock_exits_5_and_touches_nothing(
    sandbox: SandboxServer, tmp_path: Path, migrated_template: Path
) -> None:
    ws = workspace(sandbox, tmp_path, migrated_template)
    holder = StateStore(f"sqlite:///{ws.state_db}")
    holder.acquire_lock("r-holding")
    try:
        refused = invoke(ws, "run")
    finally:
        holder.release_lock("r-holding")
        holder.close()

    assert refused.exit_code == 5, refused.output
    assert f"another run (r-holding, {holder_id()}) holds the lock since" in refused.stderr
    assert "wait for it to finish" in refused.stderr
    assert sandbox.control.counters()["graphql_requests"] == 0, "nothing read, nothing sent"
    assert ws.query("SELECT count(*) FROM runs") == [(0,)], "the refused run left no trace"
    assert ws.query("SELECT run_id FROM lock") == []

    # The lock was all that stood in the way: once it is free, the same run goes through.
    after = invoke(ws, "run")
    assert after.exit_code == 0, after.output
    assert ws.query("SELECT status FROM runs") == [("succeeded",)]


def test_a_dead_holders_lock_is_free(
    sandbox: SandboxServer, tmp_path: Path, migrated_template: Path
) -> None:
    ws = workspace(sandbox, tmp_path, migrated_template)
    dead = subprocess.run(
        [sys.executable, "-c", HOLDER, f"sqlite:///{ws.state_db}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    pid = dead.stdout.strip()
    ((run_id, holder),) = ws.query("SELECT run_id, holder FROM lock")
    assert (run_id, holder.rsplit(":", 1)[1]) == ("r-dead", pid), "its row is left behind"

    result = invoke(ws, "run")

    assert result.exit_code == 0, result.output
    assert "holds the lock" not in result.stderr
    assert ws.query("SELECT count(*) FROM lock") == [(0,)]
    assert ws.query("SELECT status FROM runs") == [("succeeded",)]
    assert len(sandbox.control.state()["users"]) == 3
