"""The diff engine and executor loop on a real SQLite store, with an in-process fake Pluvo.

The fake (tests/support/fake_pluvo.py) answers with the sandbox's schema and store, so
a plan that converges here also applied cleanly to a Pluvo that checks what it is
sent; end-to-end behaviour over HTTP is covered in tests/e2e. Here the point is the
diff's own properties: convergence, ownership, order independence, leaver grace.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.config import LeaverConfig
from sync.core.diff import DiffOptions, diff
from sync.core.executor import Executor, journal_plan
from sync.core.plan import ExtraValue, Kind, Plan, UpdateUser
from sync.model import Desired
from sync.state.read import read_state
from sync.state.store import StateStore
from tests.support.fake_pluvo import FakePluvo
from tests.support.state_store import fresh_store


def make_desired(
    people: list[tuple[str, str, str]], extra: dict[str, str] | None = None
) -> Desired:
    """people: (ref, department, manager_ref)."""
    users = pd.DataFrame(
        {
            "email": [f"{r.lower()}@example.com" for r, _, _ in people],
            "name": [f"Person {r}" for r, _, _ in people],
            "language": ["NL"] * len(people),
            "roles": ["PARTICIPANT"] * len(people),
            "is_active": ["true"] * len(people),
            "_source": ["hr"] * len(people),
            "_file": ["hr.csv"] * len(people),
            "_line": [int(r[1:]) + 1 for r, _, _ in people],
        },
        index=pd.Index([r for r, _, _ in people], name="ref", dtype=object),
    )
    depts = sorted({d for _, d, _ in people})
    groups = pd.DataFrame(
        {"name": [d.title() for d in depts], "_source": ["dept"] * len(depts)},
        index=pd.Index([f"dept-{d}" for d in depts], name="ref", dtype=object),
    )
    memberships = pd.DataFrame(
        {"group_ref": [f"dept-{d}" for _, d, _ in people], "user_ref": [r for r, _, _ in people]}
    )
    managers = pd.DataFrame(
        {
            "group_ref": [f"dept-{d}" for _, d, m in people if m],
            "user_ref": [m for _, _, m in people if m],
        }
    ).drop_duplicates()
    extra = extra or {}
    values = pd.DataFrame(
        {
            "user_ref": list(extra),
            "category_ref": ["job_title"] * len(extra),
            "category_type": ["string"] * len(extra),
            "value": list(extra.values()),
            "_source": ["hr"] * len(extra),
            "_file": ["hr.csv"] * len(extra),
            "_line": [1] * len(extra),
        }
    )
    desired = Desired()
    desired.users = users
    desired.groups = groups
    desired.memberships = memberships
    desired.managers = managers.reset_index(drop=True)
    if extra:
        desired.extra_values = values
    return desired


def apply(
    store: StateStore, plan: Plan, run_id: str = "r1", fake: FakePluvo | None = None
) -> FakePluvo:
    """Apply `plan` to `fake` (a new, empty Pluvo when None); returns the Pluvo applied to."""
    from sync.state.models import RunRow
    from sync.state.store import now

    fake = fake or FakePluvo()
    with store.session() as session, session.begin():
        session.add(
            RunRow(
                id=run_id,
                mode="run",
                status="running",
                started_at=now(),
                holder="t",
                source_rows={},
                summary={},
            )
        )
        journal_plan(session, run_id, plan)
    result = asyncio.run(Executor(store, fake, run_id).execute(plan))
    assert not result.failed
    return fake


PEOPLE = [("E1", "sales", ""), ("E2", "sales", "E1"), ("E3", "it", "E1")]


def test_initial_plan_then_converges(store: StateStore) -> None:
    desired = make_desired(PEOPLE, {"E1": "Boss", "E2": "Seller"})
    plan = diff(desired, read_state(store.engine))
    counts = plan.counts()
    assert counts == {
        "create_group": 2,
        "create_user": 3,
        "set_extra_values": 2,
        "add_members": 2,
        "add_managers": 2,
    }
    # Dependency order: groups, users, values, memberships, managers.
    phases = [op.phase for op in plan.operations]
    assert phases == sorted(phases)
    apply(store, plan)
    assert len(diff(desired, read_state(store.engine))) == 0


def test_field_change_sends_only_changed_fields_with_origin(store: StateStore) -> None:
    apply(store, diff(make_desired(PEOPLE), read_state(store.engine)))
    desired = make_desired(PEOPLE)
    desired.users.loc["E2", "email"] = "new.e2@example.com"
    plan = diff(desired, read_state(store.engine))
    assert [(op.kind, op.ref) for op in plan] == [(Kind.UPDATE_USER, "E2")]
    (op,) = plan.operations
    assert isinstance(op, UpdateUser)
    assert op.send == ("email",)
    assert op.to_call(send_invite=False).args["user"] == {"email": "new.e2@example.com"}
    (change,) = op.changes
    assert (change.old, change.new, change.origin) == (
        "e2@example.com",
        "new.e2@example.com",
        "hr.csv:3",
    )


def test_department_move_and_value_removal(store: StateStore) -> None:
    fake = apply(store, diff(make_desired(PEOPLE, {"E2": "Seller"}), read_state(store.engine)))
    moved = [("E1", "sales", ""), ("E2", "it", "E1"), ("E3", "it", "E1")]
    plan = diff(make_desired(moved), read_state(store.engine))
    kinds = {(op.kind, op.ref, getattr(op, "users", ())) for op in plan}
    assert (Kind.REMOVE_MEMBERS, "dept-sales", ("E2",)) in kinds
    assert (Kind.ADD_MEMBERS, "dept-it", ("E2",)) in kinds
    assert (Kind.REMOVE_MANAGERS, "dept-sales", ("E1",)) in kinds
    values = [op for op in plan if op.kind is Kind.SET_VALUES]
    assert values[0].values == (ExtraValue("job_title", "string", None),)
    apply(store, plan, "r2", fake)
    assert len(diff(make_desired(moved), read_state(store.engine))) == 0


def test_leaver_grace_and_rehire(store: StateStore) -> None:
    fake = apply(store, diff(make_desired(PEOPLE), read_state(store.engine)))
    without = make_desired(PEOPLE[:2])
    graceful = DiffOptions(leavers=LeaverConfig(grace_runs=1))
    plan = diff(without, read_state(store.engine), graceful)
    assert not plan.leavers(), "first missing run is within the grace"
    # One run missing already recorded: now it is due.
    from sqlalchemy import update

    from sync.state.models import UserRow

    with store.engine.begin() as conn:
        conn.execute(
            update(UserRow)
            .where(UserRow.ref == "E3")
            .values(missing_runs=1, missing_since=datetime.now(UTC) - timedelta(days=2))
        )
    plan = diff(without, read_state(store.engine), graceful)
    assert [(op.kind, op.ref) for op in plan.leavers()] == [(Kind.ARCHIVE_USER, "E3")]
    apply(store, plan, "r2", fake)
    back = diff(make_desired(PEOPLE), read_state(store.engine), graceful)
    assert [op.kind for op in back if op.ref == "E3"] == [Kind.RESTORE_USER]
    (restore,) = [op for op in back if op.ref == "E3"]
    assert restore.to_call(send_invite=False).args["user"]["archived"] is False


def test_days_grace(store: StateStore) -> None:
    apply(store, diff(make_desired(PEOPLE), read_state(store.engine)))
    options = DiffOptions(leavers=LeaverConfig(grace_runs=0, grace_days=3))
    assert not diff(make_desired(PEOPLE[:2]), read_state(store.engine), options).leavers()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["E1", "E2", "E3", "E4", "E5", "E6"]),
            st.sampled_from(["sales", "it", "hr"]),
        ),
        unique_by=lambda t: t[0],
        max_size=6,
    ),
    st.randoms(use_true_random=False),
)
def test_plan_is_order_independent_and_converges(
    migrated_template: Path, tmp_path: Path, people: list[tuple[str, str]], rnd: Any
) -> None:
    store = fresh_store(migrated_template, tmp_path)
    rows = [(r, d, "") for r, d in people]
    extra = {r: f"title-{d}" for r, d in people[::2]}
    desired = make_desired(rows, extra)
    shuffled = make_desired(rnd.sample(rows, len(rows)), extra)
    first = diff(desired, read_state(store.engine))
    second = diff(shuffled, read_state(store.engine))
    assert [op.to_json() for op in first] == [op.to_json() for op in second]
    apply(store, first)
    assert len(diff(shuffled, read_state(store.engine))) == 0
    store.close()
