"""Leavers through the library core: `run(config)` against the sandbox over HTTP.

The diff decides whether a missing user is due from the bookkeeping the engine keeps
between runs (runs missed, missing since); these tests drive real runs so that the
bookkeeping, the plan and Pluvo are checked together. A user dropped from the HR
file stays through the grace and is archived in the run that uses it up; a user who
comes back within the grace is never archived, and their clock starts afresh. With
`leavers.action: deactivate`, the store, the journal and a reconcile against Pluvo
agree on what a deactivated leaver is, and nothing is left to do for them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import select, update

from sync.commands.reconcile.command import reconcile
from sync.config import Config, parse_config
from sync.core.engine import Report, run
from sync.core.plan import Kind
from sync.errors import ExitCode
from sync.hashing import fields_hash
from sync.model import USER_FIELDS
from sync.sandbox import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxServer
from sync.state.journal import OpStatus, RunStatus
from sync.state.models import OperationRow, UserRow
from sync.state.store import StateStore, upgrade

TODAY = date(2024, 6, 3)
STAFF = ["E1", "E2", "E3", "E4"]
LEAVERS = (Kind.ARCHIVE_USER, Kind.DEACTIVATE_USER)
MAPPING = """\
version: 1
users:
  ref: {column: id}
  email: email
  name: name
"""


@dataclass
class Install:
    """A config, an HR file and a migrated state store in one folder."""

    root: Path
    config: Config
    sandbox: SandboxServer

    def hr(self, refs: list[str]) -> None:
        with (self.root / "hr.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "email", "name"])
            writer.writerows([r, f"{r.lower()}@example.com", f"Person {r}"] for r in refs)

    def run(self, refs: list[str]) -> Report:
        """One nightly run with these people in the HR file."""
        self.hr(refs)
        report = run(self.config, dry=False, today=TODAY)
        assert report.exit_code == 0, report.message
        return report

    def store(self) -> StateStore:
        return StateStore(self.config.state_url())

    def time_passes(self, days: float) -> None:
        """Move every missing user's clock back, as if `days` passed between runs."""
        store = self.store()
        try:
            with store.engine.begin() as conn:
                rows = conn.execute(
                    select(UserRow.ref, UserRow.missing_since).where(
                        UserRow.missing_since.is_not(None)
                    )
                ).all()
                for ref, since in rows:
                    assert since is not None
                    conn.execute(
                        update(UserRow)
                        .where(UserRow.ref == ref)
                        .values(missing_since=since - timedelta(days=days))
                    )
        finally:
            store.close()

    def missing(self, ref: str) -> tuple[int, bool]:
        """(runs missed, whether a missing-since stamp is set) in the store."""
        store = self.store()
        try:
            with store.engine.connect() as conn:
                runs, since = conn.execute(
                    select(UserRow.missing_runs, UserRow.missing_since).where(UserRow.ref == ref)
                ).one()
        finally:
            store.close()
        return int(runs), since is not None

    def archived(self) -> set[str]:
        return {u["ref"] for u in self.sandbox.control.state()["users"] if u["archived"]}

    def mutations(self) -> int:
        return int(self.sandbox.control.counters()["mutations_total"])


@pytest.fixture
def install(sandbox: SandboxServer, tmp_path: Path) -> Callable[..., Install]:
    def make(**leavers: Any) -> Install:
        (tmp_path / "mapping.yaml").write_text(MAPPING, encoding="utf-8")
        data = {
            "pluvo": {
                "url": sandbox.url,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "backoff_base": 0.05,
                "backoff_max": 0.5,
            },
            "sources": [{"name": "hr", "type": "csv", "path": "hr.csv", "mapping": "mapping.yaml"}],
            "state": {"url": "sqlite:///state.db"},
            "leavers": {"action": "archive", **leavers},
            # A handful of users: one leaver is a large share, one fewer row a large drop.
            "safety": {"max_leavers": {"share": 0.5, "count": 5}, "min_source_ratio": 0.5},
            "report": {"dir": "reports"},
        }
        config = parse_config(data, base_dir=tmp_path, env={})
        store = StateStore(config.state_url())
        try:
            upgrade(store.engine)
        finally:
            store.close()
        return Install(tmp_path, config, sandbox)

    return make


def leavers(report: Report) -> list[tuple[Kind, str]]:
    assert report.plan is not None
    return [(op.kind, op.ref) for op in report.plan.operations if op.kind in LEAVERS]


def test_grace_by_runs(install: Callable[..., Install]) -> None:
    ws = install(grace_runs=2)
    ws.run(STAFF)
    assert ws.archived() == set()

    # E3 and E4 drop out; E3 is back in the next run.
    assert leavers(ws.run(["E1", "E2"])) == []
    assert ws.missing("E4") == (1, True)
    back = ws.run(["E1", "E2", "E3"])
    assert back.plan is not None
    assert list(back.plan.operations) == [], "nothing to restore: E3 was never archived"
    assert ws.missing("E3") == (0, False), "a returner's count is reset"
    assert ws.missing("E4") == (2, True)
    assert ws.archived() == set(), "two missed runs are the grace, not yet past it"

    # The third missed run uses the grace up; E3 is missing for the first time again.
    report = ws.run(["E1", "E2"])
    assert leavers(report) == [(Kind.ARCHIVE_USER, "E4")]
    assert ws.archived() == {"E4"}
    assert report.plan is not None
    assert {op.ref for op in report.plan.operations} == {"E4"}

    # E3 has now missed two runs in a row, not three: still within the grace.
    before = ws.mutations()
    assert leavers(ws.run(["E1", "E2"])) == []
    assert ws.archived() == {"E4"}
    assert ws.missing("E3") == (2, True)
    assert ws.mutations() == before, "an archived leaver is not archived again"


def test_grace_by_days(install: Callable[..., Install]) -> None:
    ws = install(grace_runs=0, grace_days=3)
    ws.run(STAFF)

    # E3 and E4 drop out; two days later E3 is back.
    assert leavers(ws.run(["E1", "E2"])) == []
    ws.time_passes(2)
    assert leavers(ws.run(["E1", "E2", "E3"])) == [], "two days are within the grace"
    assert ws.missing("E3") == (0, False), "a returner's clock is reset"
    assert ws.archived() == set()

    # A day later both are gone: E4's three days are up, E3's clock starts now.
    ws.time_passes(1.01)
    report = ws.run(["E1", "E2"])
    assert leavers(report) == [(Kind.ARCHIVE_USER, "E4")]
    assert ws.archived() == {"E4"}
    assert ws.missing("E3") == (1, True)

    ws.time_passes(2.9)
    assert leavers(ws.run(["E1", "E2"])) == []
    assert ws.archived() == {"E4"}


def test_a_deactivated_leaver_is_recorded_as_such_and_reconciles_clean(
    install: Callable[..., Install],
) -> None:
    ws = install(action="deactivate", grace_runs=0)
    ws.run(STAFF)
    report = ws.run(["E1", "E2", "E3"])
    assert leavers(report) == [(Kind.DEACTIVATE_USER, "E4")]

    live = ws.sandbox.control.user("E4")
    assert live is not None
    assert (live["isActive"], live["archived"]) == (False, False)

    # The store: deactivated, not archived, and its hash that of the fields it now holds.
    store = ws.store()
    try:
        with store.engine.connect() as conn:
            row = conn.execute(select(UserRow).where(UserRow.ref == "E4")).one()
            journaled = conn.execute(
                select(OperationRow.kind, OperationRow.ref, OperationRow.status).where(
                    OperationRow.run_id == report.run_id
                )
            ).all()
    finally:
        store.close()
    assert (row.left_action, row.archived, row.is_active) == ("deactivate", False, "false")
    stored = pd.DataFrame([{f: getattr(row, f) for f in USER_FIELDS}], index=["E4"])
    assert row.fields_hash == int(fields_hash(stored).iloc[0])

    # The journal: the one operation of that run, done.
    assert journaled == [(str(Kind.DEACTIVATE_USER), "E4", str(OpStatus.DONE))]

    # Reconcile reads Pluvo and finds it as the store says; nothing is left to do.
    checked = reconcile(ws.config, apply=False, today=TODAY)
    assert checked.drift is not None
    assert checked.drift.counts() == dict.fromkeys(checked.drift.counts(), 0)
    assert (checked.report.status, checked.report.exit_code) == (RunStatus.IN_SYNC, ExitCode.OK)
    assert checked.report.plan is not None
    assert list(checked.report.plan.operations) == []

    planned = run(ws.config, dry=True, today=TODAY)
    assert planned.plan is not None
    assert list(planned.plan.operations) == []
    before = ws.mutations()
    ws.run(["E1", "E2", "E3"])
    assert ws.mutations() == before, "a deactivated leaver is not deactivated again"
