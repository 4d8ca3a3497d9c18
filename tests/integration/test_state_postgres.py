"""The whole loop with its state store on a real PostgreSQL server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from sync.sandbox import SandboxServer
from tests.integration.conftest import scratch_database
from tests.support.pluvo_state import assert_pluvo_matches, mutations
from tests.support.workspace import employee, make_workspace

pytestmark = pytest.mark.postgres


@pytest.fixture
def state_db(pg_url: str) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    with scratch_database(pg_url, "pluvo_state") as url:
        yield url


def test_sync_loop_on_postgres(sandbox: SandboxServer, tmp_path: Path, state_db: str) -> None:
    # Not migrated: the first run must refuse an empty store.
    ws = make_workspace(tmp_path / "ws", sandbox.url, upgrade=False, **{"state.url": state_db})
    rows = [employee(n) for n in range(300)]
    ws.write_hr(rows)

    refused = ws.cli("run")
    assert refused.returncode == 1
    assert "pluvo-sync db upgrade" in refused.stderr
    assert secrets_free(refused.stderr, state_db)

    upgraded = ws.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded from empty" in upgraded.stdout

    first = ws.cli("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert_pluvo_matches(sandbox, rows)

    changed = [
        employee(n, Functie="Teamleider") if n % 10 == 0 else employee(n) for n in range(290)
    ]
    ws.write_hr(changed)
    second = ws.cli("run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert_pluvo_matches(sandbox, changed)

    sandbox.control.reset_counters()
    third = ws.cli("run")
    assert third.returncode == 0, third.stderr
    assert mutations(sandbox) == 0
    status = ws.cli("status")
    assert "users: 290 active, 10 archived" in status.stdout


def secrets_free(text_: str, url: str) -> bool:
    password = make_url(url).password
    return not password or password not in text_


def test_held_changes_on_postgres(sandbox: SandboxServer, tmp_path: Path, state_db: str) -> None:
    """Holding, listing and releasing with the held table on PostgreSQL."""
    ws = make_workspace(
        tmp_path / "ws", sandbox.url, **{"state.url": state_db, "safety.on_exceed": "hold"}
    )
    ws.write_hr(employee(n) for n in range(40))
    assert ws.cli("run").returncode == 0
    ws.write_hr(employee(n) for n in range(20))
    held_run = ws.cli("run")
    assert held_run.returncode == 7, held_run.stdout + held_run.stderr
    listed = ws.cli("held", "--json")
    assert len(json.loads(listed.stdout)) == 20
    release = ws.cli("release", "10030", "--reason", "confirmed")
    assert release.returncode == 0, release.stdout + release.stderr
    archived = {u["ref"] for u in sandbox.control.state()["users"] if u["archived"]}
    assert archived == {"10030"}
    assert len(json.loads(ws.cli("held", "--json").stdout)) == 19
