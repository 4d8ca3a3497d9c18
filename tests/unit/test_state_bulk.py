"""The per-batch statements that bypass SQLAlchemy's parameter plumbing (sync/state/bulk.py).

What they store must be exactly what `Session.execute` would have stored (the stores of
older versions and the PostgreSQL path are written that way), read back raw from SQLite
so a difference in a processed value (a timestamp's format, JSON's spacing) shows.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

import pytest
import sqlalchemy.exc
from sqlalchemy import bindparam, insert, select, update

from sync.state.bulk import Many, RowsIn
from sync.state.models import ExtraValueRow, OperationRow, RunRow, UserRow
from sync.state.store import StateStore

T0 = datetime(2024, 6, 3, 2, 0, 7, 123456, tzinfo=UTC)
OPS = OperationRow.__table__
VALUES = ExtraValueRow.__table__


def _run(store: StateStore, run_id: str) -> RunRow:
    return RunRow(
        id=run_id, mode="run", status="running", started_at=T0, holder="t",
        source_rows={}, summary={},
    )  # fmt: skip


def _raw(store: StateStore, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(store.engine.url.database or "") as db:
        return db.execute(sql).fetchall()


def test_insert_stores_what_session_execute_stores(store: StateStore) -> None:
    payload = {"ref": "E1", "fields": {"name": "Ada Ló", "n": 3}, "none": None}
    many = Many(
        insert(OPS),
        per_row=("seq", "phase", "kind", "ref", "payload"),
        same=("run_id", "status", "error", "error_class", "updated_at"),
    )
    with store.session() as session, session.begin():
        # A run added through the ORM and not flushed: the insert must flush it first
        # (its foreign key), as Session.execute would.
        session.add(_run(store, "r1"))
        many(
            session, [(1, 1, "user", "E1", payload)],
            run_id="r1", status="pending", error=None, error_class=None, updated_at=T0,
        )  # fmt: skip
        session.execute(
            insert(OPS),
            [{"run_id": "r1", "seq": 2, "phase": 1, "kind": "user", "ref": "E1",
              "payload": payload, "status": "pending", "error": None, "error_class": None,
              "updated_at": T0}],
        )  # fmt: skip
    rows = _raw(store, "SELECT run_id, phase, kind, ref, payload, status, error, updated_at "
                       "FROM operations ORDER BY seq")  # fmt: skip
    assert len(rows) == 2
    assert rows[0] == rows[1]


def test_update_counts_only_the_rows_it_matched_and_keeps_its_literals(
    store: StateStore,
) -> None:
    with store.session() as session, session.begin():
        session.add(_run(store, "r1"))
        session.flush()
        session.execute(
            insert(OPS),
            [{"run_id": "r1", "seq": seq, "phase": 1, "kind": "user", "ref": f"E{seq}",
              "payload": {}, "status": status, "error": None, "error_class": None,
              "updated_at": T0} for seq, status in ((1, "started"), (2, "pending"))],
        )  # fmt: skip
    statement = (
        update(OPS)
        .where(
            OPS.c.run_id == bindparam("b_run"),
            OPS.c.seq == bindparam("b_seq"),
            OPS.c.status == "started",  # a literal compiled into the statement
        )
        .values(status="done", error=bindparam("b_error"), updated_at=bindparam("b_at"))
    )
    many = Many(statement, per_row=("b_seq", "b_error"), same=("b_run", "b_at"))
    with store.session() as session, session.begin():
        moved = many(session, [(1, "e1"), (2, "e2"), (3, None)], b_run="r1", b_at=T0)
    assert moved == 1  # seq 2 is pending (the literal), seq 3 does not exist
    assert _raw(store, "SELECT seq, status, error FROM operations ORDER BY seq") == [
        (1, "done", "e1"),
        (2, "pending", None),
    ]


def test_shared_values_must_be_exactly_those_named(store: StateStore) -> None:
    many = Many(insert(UserRow.__table__), per_row=("ref",), same=("email",))
    with store.session() as session, session.begin(), pytest.raises(TypeError, match="email"):
        many(session, [("E1",)], name="x")


def test_a_name_the_statement_lacks_is_refused(store: StateStore) -> None:
    statement = update(OPS).where(OPS.c.seq == bindparam("b_seq")).values(status="done")
    many = Many(statement, per_row=("b_seq", "b_nope"))
    with store.session() as session, session.begin(), pytest.raises(ValueError, match="b_nope"):
        many(session, [(1, 2)])


def test_rows_in_reads_what_a_select_reads(store: StateStore) -> None:
    rows = [
        {"user_ref": u, "category_ref": c, "category_type": "TEXT", "value": f"{u}-{c}"}
        for u in ("E1", "E2", "E3")
        for c in ("dept", "site")
    ]
    with store.session() as session, session.begin():
        session.execute(insert(VALUES), rows)
    read = RowsIn([VALUES.c.user_ref, VALUES.c.category_ref, VALUES.c.value], VALUES.c.user_ref)
    with store.session() as session:
        for refs in (["E1"], ["E3", "E1"], ["E2", "E9", "E3"], ["E9"]):
            expected = session.execute(
                select(VALUES.c.user_ref, VALUES.c.category_ref, VALUES.c.value).where(
                    VALUES.c.user_ref.in_(refs)
                )
            ).all()
            assert sorted(read(session, refs)) == sorted(tuple(r) for r in expected), refs
        assert read(session, []) == []


def test_a_driver_error_is_raised_as_sqlalchemy_raises_it(store: StateStore) -> None:
    """Callers (the run's state-error handling) catch SQLAlchemy's errors, whichever
    path ran the statement: a locked store is an OperationalError, a key an IntegrityError."""
    many = Many(insert(UserRow.__table__), per_row=("ref", "first_seen", "last_seen"))
    with store.session() as session, session.begin():
        many(session, [("E1", T0, T0)])
    with (
        store.session() as session,
        session.begin(),
        pytest.raises(sqlalchemy.exc.IntegrityError, match="UNIQUE constraint failed"),
    ):
        many(session, [("E1", T0, T0)])


def test_the_engines_statement_listeners_see_what_the_driver_runs(store: StateStore) -> None:
    """Statement logging and the journal's query-plan tests listen on the engine; a
    statement sent past SQLAlchemy must still reach them, with its parameters."""
    from sqlalchemy import event

    seen: list[tuple[str, object, bool]] = []

    def listen(_c: object, _cur: object, sql: str, params: object, _ctx: object, many: bool):
        seen.append((sql.split()[0], params, many))

    event.listen(store.engine, "before_cursor_execute", listen)
    try:
        with store.session() as session, session.begin():
            Many(insert(VALUES), per_row=("user_ref", "category_ref", "category_type", "value"))(
                session, [("E1", "c1", "text", "a"), ("E2", "c1", "text", "b")]
            )
            RowsIn([VALUES.c.value], VALUES.c.user_ref)(session, ["E1"])
    finally:
        event.remove(store.engine, "before_cursor_execute", listen)
    assert ("INSERT", [("E1", "c1", "text", "a"), ("E2", "c1", "text", "b")], True) in seen
    assert ("SELECT", ("E1",), False) in seen
