"""HR rows read live from a database table or query, strictly read-only.

The engine must never be the reason an HR database changes, even if a configured
query says `DELETE`: the read runs in a read-only transaction (PostgreSQL) or on a
read-only connection (SQLite). Values become strings the same way a CSV export would
show them, so one mapping file works for either kind of source.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from sync.config.sources import DatabaseSourceConfig
from sync.core.sources.base import META_COLUMNS, SourceData, empty_frame, with_meta
from sync.errors import SourceError
from sync.logs import redact, register_secret

log = logging.getLogger(__name__)
CHUNK_ROWS = 10_000


def to_text(value: Any) -> str:
    """One cell as HR would have exported it: "" for NULL, ISO dates, 42 not 42.0."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return str(value)
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return str(value)
        if value == value.to_integral_value():
            return str(value.quantize(decimal.Decimal(1)))
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.hex()
    return str(value)


class DatabaseSource:
    def __init__(self, config: DatabaseSourceConfig, *, base_dir: Path) -> None:
        self.name = config.name
        self.config = config
        raw = config.url.get_secret_value()
        try:
            url = make_url(raw)
        except ArgumentError:
            raise SourceError(f"source {self.name}: the database url is not a valid URL") from None
        if url.password is not None:
            register_secret(str(url.password))
        self.url = _read_only_url(url, base_dir)
        self.shown = url.render_as_string(hide_password=True)
        self.label = f"db:{config.table}" if config.table else "db:query"

    def __repr__(self) -> str:
        return f"DatabaseSource(name={self.name!r}, url={self.shown!r}, file={self.label!r})"

    def finalize(self, *, applied: bool) -> None:
        """A database has no files to archive."""

    def read(self) -> SourceData:
        try:
            engine = sa.create_engine(self.url, poolclass=NullPool)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise SourceError(
                f"source {self.name}: cannot use database {self.shown}: {redact(str(exc))}"
            ) from None
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_query_only)
        phase = "cannot connect to"
        try:
            with engine.connect() as conn:
                phase = "query failed on"
                if conn.dialect.name == "postgresql":
                    # First statement of the (auto-begun) transaction, as PostgreSQL requires.
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                try:
                    frame, columns = self._fetch(conn)
                finally:
                    conn.rollback()  # nothing to keep, even if a driver allowed a write
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise SourceError(
                f"source {self.name}: {phase} database {self.shown} ({self.label}): "
                f"{redact(reason)}"
            ) from None
        finally:
            engine.dispose()
        log.info("source %s: read %d rows from %s", self.name, len(frame), self.label)
        return SourceData(name=self.name, frame=frame, files=[self.label], columns=columns)

    def _statement(self) -> sa.Executable:
        if self.config.query is not None:
            return sa.text(self.config.query)
        assert self.config.table is not None
        schema, _, table = self.config.table.rpartition(".")
        return sa.select(sa.text("*")).select_from(sa.table(table, schema=schema or None))

    def _fetch(self, conn: Connection) -> tuple[pd.DataFrame, list[str]]:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK_ROWS).execute(
            self._statement()
        )
        if not result.returns_rows:
            raise SourceError(f"source {self.name}: the query returns no rows")
        columns = [str(c) for c in result.keys()]  # noqa: SIM118 - not a dict
        duplicates = sorted({c for c in columns if columns.count(c) > 1})
        if duplicates:
            raise SourceError(
                f"source {self.name}: {self.label} has duplicate column names: "
                + ", ".join(duplicates)
                + " (alias them in the query)"
            )
        reserved = [c for c in columns if c in META_COLUMNS]
        if reserved:
            raise SourceError(f"source {self.name}: column {reserved[0]!r} is reserved")
        values: list[list[str]] = [[] for _ in columns]
        for chunk in result.partitions():
            for index, cells in enumerate(zip(*chunk, strict=True)):
                values[index].extend(map(to_text, cells))
        if not columns or not values[0]:
            return empty_frame(columns), columns
        frame = pd.DataFrame(
            {c: pd.Series(v, dtype=object) for c, v in zip(columns, values, strict=True)}
        )
        lines = np.arange(1, len(frame) + 1, dtype=np.int64)
        return with_meta(frame, self.label, lines), columns


def _read_only_url(url: URL, base_dir: Path) -> URL:
    """SQLite opened with mode=ro: a missing file is an error, not a new empty database."""
    if url.get_backend_name() != "sqlite":
        return url
    database = url.database or ""
    if not database or database == ":memory:" or database.startswith("file:"):
        return url
    path = Path(database).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    return url.set(database=f"file:{path}", query={**url.query, "mode": "ro", "uri": "true"})


def _sqlite_query_only(dbapi_connection: Any, _record: Any) -> None:
    """Refuse writes on this connection too: a URI may already name an attached database."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only = ON")
    cursor.close()
