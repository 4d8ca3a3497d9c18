"""The state store locked or unwritable, the report path failing, two runs at once.

Local failures must end as one clear line and a non-zero exit, never a traceback,
and never a store that disagrees with Pluvo: the next healthy run converges.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged, assert_store_within_pluvo
from tests.support.pluvo_state import heal, mutations
from tests.support.waiting import finish, running, wait_for_progress
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults


def _clean_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The run failed with `code` and one readable error line; returns stderr."""
    assert result.returncode == code, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert "pluvo-sync: error:" in result.stderr, result.stderr[-2000:]
    return result.stderr


@contextmanager
def exclusive_lock(db: Path) -> Iterator[None]:
    """Another process's write transaction on the store, held until the block ends."""
    conn = sqlite3.connect(db, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_locked_state_store_fails_before_any_change(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(200)
    ws.write_hr(rows)
    with exclusive_lock(ws.state_db):
        result = ws.cli("run")
    err = _clean_failure(result)
    assert "state store" in err, err
    assert "locked" in err, err
    assert mutations(sandbox) == 0
    assert ws.cli("run").returncode == 0
    assert_converged(sandbox, ws, rows)


def test_state_store_locked_mid_run_is_a_clear_error(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(1000)
    ws.write_hr(rows)
    ws.write_config(**{"pluvo.batch_size": 10, "pluvo.concurrency": 2})
    sandbox.control.set_faults(latency=0.01)
    with running(ws, "run") as process:
        wait_for_progress(ws, process, lambda p: p.done >= 100, what="100 finished operations")
        # Held past the store's 10 s busy timeout, so the run cannot just wait it out.
        with exclusive_lock(ws.state_db):
            result = finish(process)
    err = _clean_failure(result)
    assert "state store" in err, err
    # The run died mid-apply: whatever it recorded, Pluvo has.
    assert_store_within_pluvo(sandbox, ws)
    heal(sandbox)
    healed = ws.cli("run")
    assert healed.returncode == 0, healed.stdout[-2000:] + healed.stderr[-2000:]
    assert_converged(sandbox, ws, rows)


def _make_immutable(path: Path, on: bool) -> bool:
    """Root ignores file modes; the immutable attribute stops root too (if supported)."""
    chattr = shutil.which("chattr")
    if chattr is None:
        return False
    flag = "+i" if on else "-i"
    return subprocess.run([chattr, flag, str(path)], capture_output=True).returncode == 0


def test_unwritable_state_store_fails_before_any_change(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = employees(200)
    ws.write_hr(rows)
    before = ws.state_db.read_bytes()
    if not _make_immutable(ws.state_db, True):
        ws.state_db.chmod(0o400)
        probe = ws.root / "probe"
        probe.write_text("x")
        probe.chmod(0o400)
        try:
            probe.write_text("y")
            pytest.skip("cannot make a file unwritable here (root without chattr)")
        except PermissionError:
            pass
    try:
        result = ws.cli("run")
    finally:
        _make_immutable(ws.state_db, False)
        ws.state_db.chmod(0o600)
    err = _clean_failure(result)
    assert "state store" in err, err
    assert mutations(sandbox) == 0
    assert ws.state_db.read_bytes() == before
    assert ws.cli("run").returncode == 0
    assert_converged(sandbox, ws, rows)


def test_report_dir_unusable_is_a_clear_error(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(200)
    ws.write_hr(rows)
    (ws.root / "reports").write_text("a file where the report folder should be")
    result = ws.cli("run")
    err = _clean_failure(result)
    assert "cannot write" in err, err
    assert "reports" in err, err
    # Found before anything was applied: nothing sent, nothing recorded.
    assert sandbox.control.counters()["mutations_total"] == 0
    assert ws.query("SELECT count(*) FROM users") == [(0,)]
    (ws.root / "reports").unlink()
    healed = ws.cli("run")
    assert healed.returncode == 0, healed.stdout[-2000:] + healed.stderr[-2000:]
    assert_converged(sandbox, ws, rows)


def test_disk_full_on_report_file_is_a_clear_error(sandbox: SandboxServer, ws: Workspace) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    rows = employees(200)
    ws.write_hr(rows)
    result = ws.cli("run", "--out", "/dev/full")
    err = _clean_failure(result)
    assert "/dev/full" in err, err
    assert "space" in err.lower(), err
    planned = ws.cli("plan", "--out", "/dev/full")
    _clean_failure(planned)
    assert_converged(sandbox, ws, rows)


def test_two_runs_started_at_once(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(1000)
    ws.write_hr(rows)
    gate = threading.Barrier(2)
    results: list[subprocess.CompletedProcess[str]] = []

    def launch() -> None:
        gate.wait()
        results.append(ws.cli("run"))

    threads = [threading.Thread(target=launch) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    codes = sorted(r.returncode for r in results)
    assert codes == [0, 5], [(r.returncode, r.stderr[-1500:]) for r in results]
    loser = next(r for r in results if r.returncode == 5)
    assert "holds the lock" in loser.stderr
    assert "Traceback" not in loser.stderr
    # The refused run left no trace in the journal.
    assert ws.query("SELECT count(*) FROM runs") == [(1,)]
    assert_converged(sandbox, ws, rows)
