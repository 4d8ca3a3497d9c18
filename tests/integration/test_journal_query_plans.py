"""The journal's hot statements are lookups by (run, seq), on SQLite and PostgreSQL.

Each batch of a run moves its operations `started` before the request and `done` or
`failed` after it. If the database answers those by scanning the run's pending rows
(the status index), every batch costs more than the last and a large first load is
quadratic. The statements are captured as the journal really sends them, into a store
holding a large run that is mostly still pending, and each is EXPLAINed: it must go
through the unique (run_id, seq) index and never scan the operations table or use the
status index.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event, insert, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from sync.state import journal
from sync.state.journal import ErrorClass, OpStatus, Outcome
from sync.state.models import OperationRow, RunRow
from sync.state.store import StateStore, upgrade
from tests.integration.conftest import require_pg_url, scratch_database

RUN = "run-big"
OPERATIONS = 40_000
STAMP = datetime(2026, 12, 7, tzinfo=UTC)


def fill(store: StateStore) -> None:
    """Two runs' journals: an old finished one, and a big one mostly pending."""
    with store.session() as session, session.begin():
        for run_id, status in (("run-old", "succeeded"), (RUN, "running")):
            session.add(RunRow(id=run_id, started_at=STAMP, status=status, mode="run"))
        session.flush()
        for run_id, count, state in (("run-old", 10_000, "done"), (RUN, OPERATIONS, "pending")):
            rows = [
                {
                    "run_id": run_id,
                    "seq": seq,
                    "phase": 1,
                    "kind": "create_user",
                    "ref": f"{run_id}-{seq}",
                    "payload": {},
                    "status": state if seq >= 500 or run_id != RUN else "done",
                    "updated_at": STAMP,
                }
                for seq in range(count)
            ]
            for start in range(0, len(rows), 5000):
                session.execute(insert(OperationRow), rows[start : start + 5000])


def captured(engine: Engine, work: Callable[[Session], None], store: StateStore) -> list[Any]:
    """The (statement, parameters) pairs `work` sends, rolled back afterwards."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, many: bool):
        if statement.lstrip().upper().startswith("UPDATE OPERATIONS"):
            seen.append((statement, params[0] if many else params))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        with store.session() as session:
            session.begin()
            work(session)
            session.rollback()
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert seen, "the journal sent no UPDATE"
    return seen


BATCH = list(range(20_000, 20_025))  # a batch in the middle of the run


def started(session: Session) -> None:
    journal.mark_started(session, RUN, BATCH, STAMP)


def skipped(session: Session) -> None:
    journal.mark_skipped(session, RUN, BATCH, "stopped", STAMP, why=ErrorClass.BLOCKED)


def answered(session: Session) -> None:
    journal.mark_started(session, RUN, BATCH, STAMP)
    journal.record_outcomes(session, RUN, [Outcome(q) for q in BATCH], STAMP)


def hot_statements() -> dict[str, Callable[[Session], None]]:
    return {"mark_started": started, "mark_skipped": skipped, "record_outcomes": answered}


def sqlite_plan(conn: Connection, statement: str, params: Any) -> str:
    rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
    return " | ".join(str(row[-1]) for row in rows)


@pytest.fixture(scope="module")
def big_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StateStore]:
    path = tmp_path_factory.mktemp("plans") / "state.db"
    store = StateStore(f"sqlite:///{path}")
    upgrade(store.engine)
    fill(store)
    yield store
    store.close()


@pytest.mark.parametrize("name", list(hot_statements()))
def test_sqlite_moves_are_lookups_by_run_and_seq(big_sqlite: StateStore, name: str) -> None:
    engine = big_sqlite.engine
    for statement, params in captured(engine, hot_statements()[name], big_sqlite):
        with engine.connect() as conn:
            plan = sqlite_plan(conn, statement, params)
        assert "USING INDEX ix_operations_run_seq" in plan, (name, plan)
        assert "ix_operations_status" not in plan, (name, plan)
        assert "SCAN operations" not in plan, (name, plan)


@pytest.fixture(scope="module")
def big_postgres() -> Iterator[StateStore]:
    with scratch_database(require_pg_url(), "pluvo_plans") as url:
        store = StateStore(url)
        try:
            upgrade(store.engine)
            fill(store)
            with store.engine.connect() as conn:
                conn.execute(text("ANALYZE operations"))
                conn.commit()
            yield store
        finally:
            store.close()


def postgres_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from postgres_nodes(child)


@pytest.mark.postgres
@pytest.mark.parametrize("name", list(hot_statements()))
def test_postgres_moves_are_lookups_by_run_and_seq(big_postgres: StateStore, name: str) -> None:
    engine = big_postgres.engine
    for statement, params in captured(engine, hot_statements()[name], big_postgres):
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params).scalar()
        plan = (raw if isinstance(raw, list) else json.loads(raw))[0]["Plan"]
        scans = [
            (node["Node Type"], node.get("Index Name"))
            for node in postgres_nodes(plan)
            if node.get("Relation Name") == "operations" and "Scan" in node["Node Type"]
        ]
        assert scans, (name, plan)
        lookups = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")  # (bitmap: via an index)
        assert all(t in lookups for t, _ in scans), (name, scans)
        indexes = [n["Index Name"] for n in postgres_nodes(plan) if n.get("Index Name")]
        assert indexes, (name, plan)
        assert set(indexes) == {"ix_operations_run_seq"}, (name, indexes)


def test_sqlite_looks_back_through_the_partial_index(big_sqlite: StateStore) -> None:
    """What a run reads of earlier runs' unanswered sends: the few failed or abandoned
    operations, never a scan of the whole journal (a first load adds a million rows)."""
    seen: list[tuple[str, Any]] = []

    def listen(_conn: Any, _cursor: Any, statement: str, params: Any, _ctx: Any, _many: bool):
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    engine = big_sqlite.engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        with big_sqlite.session() as session:
            journal.sent_unanswered(session, "create_user", [f"{RUN}-{n}" for n in range(5000)])
            journal.needing_attention(session)
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    assert len(seen) == 3, seen  # one look back, two counts: not one query per chunk of refs
    with engine.connect() as conn:
        plans = [sqlite_plan(conn, statement, params) for statement, params in seen]
    assert "ix_operations_looked_back" in plans[0], plans[0]
    assert "ix_operations_looked_back" in plans[1], plans[1]
    # (scanning the partial index is fine: it holds only the looked-back rows)
    assert not re.search(
        r"SCAN operations(?! USING (COVERING )?INDEX ix_operations_looked_back)", " | ".join(plans)
    ), plans


def test_the_statements_move_what_they_say(big_sqlite: StateStore) -> None:
    """The captured statements are the journal's real work, not a shadow of it."""
    with big_sqlite.session() as session:
        session.begin()
        journal.mark_started(session, RUN, [30_000, 30_001], STAMP)
        journal.record_outcomes(session, RUN, [Outcome(30_000), Outcome(30_001, "no")], STAMP)
        moved = journal.statuses(session, RUN)
        session.rollback()
    assert moved[30_000] is OpStatus.DONE
    assert moved[30_001] is OpStatus.FAILED
    assert moved[29_999] is OpStatus.PENDING
