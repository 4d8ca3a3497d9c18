"""Statements the executor runs once per batch, tens of thousands of times a first load.

SQLAlchemy's executemany builds a parameter dict per row and runs every bind processor
on every value, constants included (the run id, the batch's timestamp, the status): in
a profile of a 30k first load that per-row work was a fifth of the client's CPU, more
than SQLite spent executing the statements. A `Many` compiles its statement once per
dialect, processes the values shared by a call once, and hands the driver tuples.

Drivers with positional parameters (SQLite's qmark) get that path. Others (psycopg's
pyformat) go through `Session.execute` as before, with the same statement and values,
so both stores see identical SQL semantics; only the parameter plumbing differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, select
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    template: tuple[Any, ...]
    """Every parameter's position, holding the statement's literals (processed)."""
    rows: tuple[tuple[int, int, Processor], ...]
    """(parameter position, index in a row, processor) of the per-row values."""
    same: tuple[tuple[int, str, Processor], ...]
    """(parameter position, name, processor) of the values shared by a call."""


class Many:
    """A DML statement with `per_row` parameters taken from each row (a tuple in that
    order) and the `same` names given once per call.

    Names are the statement's bind names: column keys for an INSERT (which inserts just
    those columns), `bindparam` keys elsewhere. A statement's own literals (a status in
    its WHERE) are compiled in once.
    """

    def __init__(self, statement: UpdateBase, per_row: Sequence[str], same: Sequence[str] = ()):
        self.statement = statement
        self.per_row = tuple(per_row)
        self.same = tuple(same)
        self._compiled: dict[str, _Compiled | None] = {}

    def __call__(self, session: Session, rows: Iterable[Sequence[Any]], **same: Any) -> int:
        """Run the statement once per row in the session's transaction; returns the
        rows the driver reports as changed (-1 where it cannot count)."""
        if set(same) != set(self.same):
            raise TypeError(f"expected the shared values {self.same}, got {sorted(same)}")
        rows = rows if isinstance(rows, list) else list(rows)
        if not rows:
            return 0
        session.flush()  # as Session.execute would: ORM changes pending go first
        connection = session.connection()
        dialect = connection.dialect
        compiled = self._compile(dialect)
        if compiled is None:
            named = [{**dict(zip(self.per_row, row, strict=True)), **same} for row in rows]
            return int(session.execute(self.statement, named).rowcount)  # type: ignore[attr-defined]
        shared = list(compiled.template)
        for position, name, process in compiled.same:
            value = same[name]
            shared[position] = process(value) if process else value
        spec = compiled.rows
        params = []
        for row in rows:
            values = shared.copy()
            for position, index, process in spec:
                value = row[index]
                values[position] = process(value) if process else value
            params.append(values)
        with _driver_cursor(connection, compiled.sql) as cursor:
            _announce(connection, cursor, compiled.sql, params, many=True)
            cursor.executemany(compiled.sql, params)
            return int(cursor.rowcount)

    def _compile(self, dialect: Dialect) -> _Compiled | None:
        if dialect.name not in self._compiled:
            self._compiled[dialect.name] = self._prepare(dialect)
        return self._compiled[dialect.name]

    def _prepare(self, dialect: Dialect) -> _Compiled | None:
        if not dialect.positional:
            return None
        keys = [*self.per_row, *self.same]
        compiled = self.statement.compile(dialect=dialect, column_keys=keys)
        assert isinstance(compiled, SQLCompiler)
        order = list(compiled.positiontup or ())
        missing = set(keys) - set(order)
        if missing:
            raise ValueError(f"the statement has no parameter named {sorted(missing)}")

        def processor(name: str) -> Processor:
            kind = compiled.binds[name].type
            return kind.dialect_impl(dialect).bind_processor(dialect)

        literals = dict(compiled.params)
        # Columns left out get their Python-side default, as Session.execute fills them
        # in per execution: a constant is compiled into the template; a default computed
        # per row (a callable) has no single value, so such a column must be given.
        for column in [*compiled.insert_prefetch, *compiled.update_prefetch]:
            if column.key in keys:
                continue
            default = column.default if column in compiled.insert_prefetch else column.onupdate
            if default is None or not default.is_scalar:
                raise ValueError(f"give {column.key}: its default is computed per row")
            literals[column.key] = default.arg  # type: ignore[attr-defined]
        template = []
        for name in order:
            value = literals.get(name)
            if name not in keys and value is not None and (process := processor(name)):
                value = process(value)
            template.append(value)
        index = {name: i for i, name in enumerate(self.per_row)}
        return _Compiled(
            sql=str(compiled),
            template=tuple(template),
            rows=tuple((p, index[n], processor(n)) for p, n in enumerate(order) if n in index),
            same=tuple((p, n, processor(n)) for p, n in enumerate(order) if n in self.same),
        )


@contextmanager
def _driver_cursor(connection: Connection, sql: str) -> Iterator[Any]:
    """A DBAPI cursor in the connection's transaction, closed after use. The driver's
    errors come out as SQLAlchemy raises them (`OperationalError` for a locked store,
    `IntegrityError` for a key), so callers meet one kind of error whichever path ran
    the statement: the run turns it into a state error naming the store."""
    dialect = connection.dialect
    cursor = connection.connection.cursor()
    try:
        yield cursor
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(
            sql, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
        ) from exc
    finally:
        cursor.close()


def _announce(connection: Connection, cursor: Any, sql: str, params: Any, *, many: bool) -> None:
    """The engine's `before_cursor_execute` listeners see these statements as they see
    every other (statement logging, the query-plan tests that EXPLAIN what the journal
    really sends); with none registered, this costs one attribute test."""
    if connection._has_events or connection.engine._has_events:
        shaped = [tuple(p) for p in params] if many else tuple(params)  # as SQLAlchemy's
        connection.dispatch.before_cursor_execute(connection, cursor, sql, shaped, None, many)


class RowsIn:
    """`SELECT columns WHERE key IN (...)` read as the driver's plain tuples.

    The per-batch rehash reads a batch's stored values back; SQLAlchemy's Row objects
    cost more to build than the hashes do to compute. The statement is compiled once per
    dialect and IN length (batches come in a few sizes). Columns with a result processor
    (none of the text columns read here have one), and non-positional drivers, go
    through `Session.execute`.
    """

    def __init__(self, columns: Sequence[Column[Any]], key: Column[Any]):
        self.columns = tuple(columns)
        self.key = key
        self._sql: dict[tuple[str, int], str | None] = {}

    def __call__(self, session: Session, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not values:
            return []
        session.flush()
        connection = session.connection()
        dialect = connection.dialect
        slot = (dialect.name, len(values))
        if slot not in self._sql:
            self._sql[slot] = self._prepare(dialect, len(values))
        sql = self._sql[slot]
        if sql is None:
            statement = select(*self.columns).where(self.key.in_(values))
            return [tuple(row) for row in session.execute(statement)]
        with _driver_cursor(connection, sql) as cursor:
            _announce(connection, cursor, sql, list(values), many=False)
            cursor.execute(sql, list(values))
            return list(cursor.fetchall())

    def _prepare(self, dialect: Dialect, count: int) -> str | None:
        if not dialect.positional:
            return None
        for column in self.columns:
            kind = column.type.dialect_impl(dialect)
            if kind.result_processor(dialect, None) is not None:
                return None
        placeholder = [None] * count
        statement = select(*self.columns).where(self.key.in_(placeholder))
        compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
        return str(compiled)
