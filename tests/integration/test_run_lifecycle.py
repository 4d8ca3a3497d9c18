"""Every command that records a run meets a failing store the same way.

`run`, `release`, `discard` and `reconcile --apply` share one lifecycle
(sync/core/lifecycle.py). A store that fails under any of them (here: a table gone
from a store whose schema revision still reads current) is a state error naming the
store, exit 1, with no traceback and no password, and the lock is free afterwards.
Before the lifecycle was one, only `run` said so; the others ended in a traceback.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.cli import invoke
from tests.support.workspace import Workspace, employees, make_workspace

COMMANDS = (
    ("run",),
    ("release", "--all", "--reason", "r"),
    ("discard", "--all", "--reason", "r"),
    ("reconcile", "--apply"),
)


@pytest.fixture
def broken(sandbox: SandboxServer, tmp_path: Path, migrated_template: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url, state_db=migrated_template)
    ws.write_hr(employees(3))
    with sqlite3.connect(ws.state_db) as db:
        db.execute("DROP TABLE held")
    return ws


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_store_failing_under_a_command_is_a_state_error(
    broken: Workspace, command: tuple[str, ...]
) -> None:
    result = invoke(broken, *command)

    assert result.exit_code == 1, result.output
    assert "state store" in result.stderr, result.stderr
    assert f"failed during the {command[0]}" in result.stderr, result.stderr
    assert "no such table: held" in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert broken.query("SELECT count(*) FROM lock") == [(0,)], "the lock is free again"
