"""The executor on its own: a plan from the diff, journaled and executed against a fake.

`Sync` plans with the diff against what a real SQLite store holds, journals the plan
and executes it through the Executor against an in-memory Pluvo
(tests/support/fake_pluvo.py), and reads the run's journal back (`Run`), so a test
states what HR says and checks what the journal, the store and the fake were left with.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sync.config import LeaverConfig
from sync.core.executor import Execution, Executor, ProgressHook, journal_plan
from sync.core.plan import Kind, Plan
from sync.state import journal
from sync.state.journal import OpStatus
from sync.state.models import OperationRow
from sync.state.read import read_state
from sync.state.store import StateStore
from tests.support.diffing import Person, desired_state, plan_for
from tests.support.fake_pluvo import FakePluvo


@dataclass
class Run:
    execution: Execution
    rows: list[OperationRow]
    """The run's journal, in plan order."""

    def row(self, kind: Kind, ref: str) -> OperationRow:
        (row,) = [r for r in self.rows if r.kind == kind and r.ref == ref]
        return row

    def outcome(self, kind: Kind, ref: str) -> tuple[OpStatus, str | None]:
        row = self.row(kind, ref)
        return OpStatus(row.status), row.error


@dataclass
class Sync:
    store: StateStore
    fake: FakePluvo
    membership_fields: str = "ids"
    runs: int = 0

    def plan(self, *persons: Person) -> Plan:
        leavers = LeaverConfig(grace_runs=0)
        plan: Plan = plan_for(desired_state(*persons), read_state(self.store.engine), leavers)
        return plan

    def apply(self, plan: Plan, progress: ProgressHook | None = None) -> Run:
        self.runs += 1
        run_id = f"run-{self.runs}"
        self.store.start_run(run_id, "run")
        with self.store.session() as session, session.begin():
            journal_plan(session, run_id, plan)
        executor = Executor(
            self.store,
            self.fake,
            run_id,
            membership_fields=self.membership_fields,
            progress=progress,
        )
        execution = asyncio.run(executor.execute(plan))
        with self.store.session() as session:
            _, rows = journal.run_operations(session, run_id)
            for row in rows:
                session.expunge(row)
        return Run(execution, rows)


def team(*refs: str, group: str = "G1") -> list[Person]:
    return [Person(ref, groups=(group,)) for ref in refs]
