"""Opening the state store, checking its schema, and the run lock.

A run only ever works on a schema Alembic says is current: migrating silently from a
cron job could lock a large store for minutes or fail half-way, so that is left to
an explicit `pluvo-sync db upgrade`.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, event, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sync.errors import ConfigError, LockedError, StateError
from sync.resources import migrations
from sync.state.journal import COUNTED, RunStatus
from sync.state.models import LockRow, RunRow

log = logging.getLogger(__name__)

LOCK_NAME = "run"


def now() -> datetime:
    return datetime.now(UTC)


def safe_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable state URL>"


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def create_state_engine(url: str) -> Engine:
    """An engine tuned for the store: SQLite in WAL mode with a busy timeout, files 0600."""
    file = _sqlite_file(url)
    if file is not None:
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            if not file.exists():
                # The store holds personal data (names, emails): owner-only from the start.
                fd = os.open(file, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
        except OSError as exc:
            raise ConfigError(
                f"state.url: the SQLite store {file} cannot be created: {exc.strerror}",
                hint="point state.url at a folder this user can write",
            ) from None
    try:
        engine = create_engine(url, future=True)
    except (SQLAlchemyError, ImportError) as exc:
        raise StateError(f"cannot open state store {safe_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

    return engine


def _alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations()))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str | None:
    script = ScriptDirectory(str(migrations()))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StateError(f"state store {safe_url(str(engine.url))} unreachable: {exc}") from None


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply every pending migration; returns (before, after) revisions."""
    before = current_revision(engine)
    config = _alembic_config(engine)
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StateError(f"migration of {safe_url(str(engine.url))} failed: {exc}") from None
    for path in _sidecar_files(engine):
        path.chmod(0o600)
    return before, current_revision(engine)


def _sidecar_files(engine: Engine) -> list[Path]:
    file = _sqlite_file(engine.url.render_as_string(hide_password=False))
    if file is None:
        return []
    return [p for p in (file, Path(f"{file}-wal"), Path(f"{file}-shm")) if p.exists()]


def require_current(engine: Engine) -> None:
    """Refuse to work on a schema that Alembic does not call current."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise StateError(
            f"the state store {safe_url(str(engine.url))} is {state}, expected {head}",
            hint="run `pluvo-sync db upgrade` first",
        )


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_alive(holder: str) -> bool:
    """A lock held by a dead process on this host is stale; other hosts are trusted."""
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StateStore:
    """The session factory plus the run-level bookkeeping (lock, runs)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_state_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    def session(self) -> Session:
        return self.sessions()

    def acquire_lock(self, run_id: str) -> None:
        """Take the run lock or raise LockedError; a dead local holder's lock is taken over."""
        me = holder_id()
        for _attempt in range(2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(LockRow).values(
                            name=LOCK_NAME, run_id=run_id, holder=me, acquired_at=now()
                        )
                    )
                return
            except IntegrityError:
                with self.engine.begin() as conn:
                    row = conn.execute(select(LockRow).where(LockRow.name == LOCK_NAME)).first()
                    if row is None:
                        continue
                    if _holder_alive(row.holder):
                        raise LockedError(
                            f"another run ({row.run_id}, {row.holder}) holds the lock "
                            f"since {row.acquired_at:%Y-%m-%d %H:%M:%S}",
                            hint="wait for it to finish; a lock of a dead process on this "
                            "host is taken over automatically",
                        ) from None
                    conn.execute(
                        delete(LockRow).where(
                            LockRow.name == LOCK_NAME, LockRow.holder == row.holder
                        )
                    )
            except OperationalError as exc:
                raise StateError(f"state store is not writable: {exc.orig}") from None
        raise LockedError("could not take the run lock")

    def release_lock(self, run_id: str) -> None:
        """Best effort: a lock left by a dead or failed run is taken over by the next one."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(LockRow).where(LockRow.name == LOCK_NAME, LockRow.run_id == run_id)
                )
        except SQLAlchemyError as exc:
            log.warning(
                "could not release the run lock (%s); the next run takes it over",
                getattr(exc, "orig", exc),
            )

    def start_run(self, run_id: str, mode: str) -> None:
        with self.session() as session, session.begin():
            session.add(
                RunRow(
                    id=run_id,
                    mode=mode,
                    status=RunStatus.RUNNING,
                    started_at=now(),
                    holder=holder_id(),
                    source_rows={},
                    summary={},
                )
            )

    def finish_run(
        self,
        run_id: str,
        *,
        status: str,
        exit_code: int,
        summary: dict[str, Any],
        source_rows: dict[str, int],
        message: str | None = None,
    ) -> None:
        with self.session() as session, session.begin():
            run = session.get(RunRow, run_id)
            if run is None:
                return
            run.status = status
            run.exit_code = exit_code
            run.finished_at = now()
            run.summary = summary
            run.source_rows = source_rows
            run.message = message

    def source_history(self, runs: int) -> dict[str, list[int]]:
        """Rows per source of the last successful runs, oldest first (shrink guard)."""
        with self.session() as session:
            rows = session.scalars(
                select(RunRow.source_rows)
                .where(RunRow.mode == "run", RunRow.status.in_(COUNTED))
                .order_by(RunRow.started_at.desc())
                .limit(runs)
            ).all()
        history: dict[str, list[int]] = {}
        for counts in reversed(rows):
            for name, count in (counts or {}).items():
                history.setdefault(name, []).append(int(count))
        return history
