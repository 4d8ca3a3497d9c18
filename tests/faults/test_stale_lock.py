"""A run lock never strands: its holder killed on "another host" does not block the next run.

A container or pod killed mid-run comes back with a new hostname; the lock row still
names the old one, which no run can look at. The lock itself is held by the database
(PostgreSQL advisory lock) or the kernel (a file lock beside the SQLite store), so the
next run takes it, on either backend.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged
from tests.faults.conftest import FAST_RETRIES
from tests.integration.conftest import pg_url  # noqa: F401  (fixture)
from tests.integration.test_state_postgres import state_db  # noqa: F401  (fixture)
from tests.support.waiting import running, wait_until
from tests.support.workspace import employees, make_workspace

pytestmark = pytest.mark.faults

ELSEWHERE = "pluvo-sync-7f9c4-xk2lp:4242"
"""The lock row's holder as a pod that is gone would have left it."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        yield "sqlite:///state.db"  # beside the workspace's config
    else:
        yield request.getfixturevalue("state_db")


def finished_operations(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM operations o JOIN runs r ON r.id = o.run_id "
                    "WHERE r.status = 'running' AND o.status IN ('done', 'failed')"
                )
            ).scalar()
            or 0
        )


def test_a_holder_killed_on_another_host_does_not_block_the_next_run(
    sandbox: SandboxServer, tmp_path: Path, state_url: str
) -> None:
    ws = make_workspace(tmp_path / "ws", sandbox.url, **FAST_RETRIES, **{"state.url": state_url})
    rows = employees(300)
    ws.write_hr(rows)
    ws.write_config(
        **FAST_RETRIES,
        **{"state.url": state_url, "pluvo.batch_size": 5, "pluvo.concurrency": 1},
    )
    sandbox.control.set_faults(latency=0.05)
    engine = create_engine(state_url.replace("sqlite:///", f"sqlite:///{ws.root}/"))
    try:
        with running(ws, "run") as process:
            wait_until(
                lambda: finished_operations(engine) >= 5, what="the run under way", process=process
            )
            with engine.begin() as conn:
                moved = conn.execute(text("UPDATE lock SET holder = :h"), {"h": ELSEWHERE})
                assert moved.rowcount == 1
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
        sandbox.control.set_faults(latency=0.0)

        after = ws.cli("run")
        assert after.returncode == 0, after.stdout[-2000:] + after.stderr[-2000:]
        assert "settled 1 interrupted run(s)" in after.stderr
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM lock")).scalar() == 0
            statuses = dict(
                conn.execute(text("SELECT status, count(*) FROM runs GROUP BY status")).all()
            )
        assert statuses == {"aborted": 1, "succeeded": 1}
    finally:
        engine.dispose()
    if state_url.startswith("sqlite"):
        assert_converged(sandbox, ws, rows)


def test_unlock_force_clears_the_lock_and_is_journaled(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr(employees(3))
    assert ws.cli("run").returncode == 0
    with sqlite3.connect(ws.state_db) as conn:
        conn.execute(
            "INSERT INTO lock (name, run_id, holder, acquired_at) "
            "VALUES ('run', 'r-stuck', ?, '2026-11-30 01:00:00')",
            (ELSEWHERE,),
        )
    refused = ws.cli("unlock")
    assert refused.returncode == 2
    assert "--force" in refused.stderr
    cleared = ws.cli("unlock", "--force")
    assert cleared.returncode == 0, cleared.stderr
    assert f"the lock of run r-stuck ({ELSEWHERE}" in cleared.stdout
    assert ws.query("SELECT count(*) FROM lock") == [(0,)]
    ((mode, status, message),) = ws.query(
        "SELECT mode, status, message FROM runs WHERE mode = 'unlock'"
    )
    assert (mode, status) == ("unlock", "succeeded")
    assert "r-stuck" in message
