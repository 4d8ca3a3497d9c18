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
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exists, inspect, or_, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from sync.errors import ConfigError, StateError
from sync.resources import migrations
from sync.state.journal import FINISHED_APPLYING, RunMode, RunStatus, finish_runs
from sync.state.lock import RunLock
from sync.state.models import OperationRow, RunRow

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

log = logging.getLogger(__name__)


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


HEAD_REVISION = "0006"
"""The newest migration's revision. Every command checks the schema against it, and
asking Alembic instead loads Alembic and every migration script: about a third of a
second of a `plan`'s start-up. tests/unit/test_store_revision.py holds it to Alembic's
head, so a new migration cannot forget it."""

VERSION_TABLE = "alembic_version"


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(migrations()))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str | None:
    """Alembic's head, from the migration scripts (what `HEAD_REVISION` must equal)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(migrations()))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The store's revision, as Alembic records it in its version table.

    Read with one query rather than through Alembic's MigrationContext, which would
    load Alembic for every command; a table holding several heads (branches, which
    this project's linear migrations never make) is still Alembic's to judge.
    """
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
            if len(rows) <= 1:
                return str(rows[0][0]) if rows else None
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(conn).get_current_revision()
    except SQLAlchemyError as exc:
        raise StateError(f"state store {safe_url(str(engine.url))} unreachable: {exc}") from None


def upgrade(engine: Engine) -> tuple[str | None, str | None]:
    """Apply every pending migration; returns (before, after) revisions."""
    from alembic import command

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
    current, head = current_revision(engine), HEAD_REVISION
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise StateError(
            f"the state store {safe_url(str(engine.url))} is {state}, expected {head}",
            hint="run `pluvo-sync db upgrade` first",
        )


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class StateStore:
    """The session factory plus the run-level bookkeeping (lock, runs)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_state_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock: RunLock | None = None

    def close(self) -> None:
        if self._lock is not None:
            self._lock._give_back()
            self._lock = None
        self.engine.dispose()

    def session(self) -> Session:
        return self.sessions()

    def acquire_lock(self, run_id: str) -> None:
        """Take the run lock or raise LockedError (sync.state.lock says how it is held)."""
        lock = RunLock(self.engine)
        try:
            lock.acquire(run_id, holder_id(), now())
        except OperationalError as exc:
            raise StateError(f"state store is not writable: {exc.orig}") from None
        self._lock = lock

    def release_lock(self, run_id: str) -> None:
        """Best effort: a lock whose process died is released by the database or kernel."""
        lock, self._lock = self._lock, None
        if lock is None:
            return
        try:
            lock.release(run_id)
        except SQLAlchemyError as exc:
            log.warning(
                "could not clear the run lock's row (%s); the next run replaces it",
                getattr(exc, "orig", exc),
            )

    def start_run(self, run_id: str, mode: RunMode, *, plan_hash: str | None = None) -> None:
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
                    plan_hash=plan_hash,
                )
            )

    def last_applied_run(self, *, exclude: str | None = None) -> tuple[str, datetime | None] | None:
        """The id and finish time of the last run that may have changed the store: one
        that journaled operations (whatever became of them) or that succeeded (a run
        with nothing to send still records who was present). Plans, guarded or refused
        runs and `unlock` change nothing a plan is computed from. A saved plan records
        this, and is stale once it differs."""
        has_operations = exists(select(OperationRow.id).where(OperationRow.run_id == RunRow.id))
        query = (
            select(RunRow.id, RunRow.finished_at)
            .where(
                RunRow.mode.not_in((RunMode.PLAN, RunMode.UNLOCK)),
                or_(RunRow.status.in_(FINISHED_APPLYING), has_operations),
            )
            .order_by(RunRow.started_at.desc(), RunRow.id.desc())
            .limit(1)
        )
        if exclude is not None:
            query = query.where(RunRow.id != exclude)
        with self.session() as session:
            row = session.execute(query).first()
        return None if row is None else (str(row[0]), row[1])

    def finish_run(
        self,
        run_id: str,
        *,
        status: RunStatus,
        exit_code: int,
        summary: dict[str, Any],
        source_rows: dict[str, int],
        message: str | None = None,
    ) -> None:
        """running → `status`, once (a finished run cannot be finished again)."""
        values = {
            "exit_code": exit_code,
            "summary": summary,
            "source_rows": source_rows,
            "message": message,
        }
        with self.session() as session, session.begin():
            finish_runs(session, [run_id], status, now(), values)

    _RUNS_LOOKED_BACK = 20
    """Runs `last_rejections` reads back at most to find one that read its sources."""

    def last_rejections(self) -> frozenset[str]:
        """The rejection keys of the last finished `run` that read its sources (its
        summary has them; one that failed before reading has none and is passed over).
        Plans are not recorded, so the nightly run is what "seen before" refers to."""
        with self.session() as session:
            found = session.execute(
                select(RunRow.summary)
                .where(RunRow.mode == RunMode.RUN, RunRow.status != RunStatus.RUNNING)
                .order_by(RunRow.started_at.desc(), RunRow.id.desc())
                .limit(self._RUNS_LOOKED_BACK)
            )
            for (summary,) in found:
                keys = (summary or {}).get("rejection_keys")
                if isinstance(keys, list):
                    return frozenset(str(key) for key in keys)
        return frozenset()

    def source_history(self, runs: int) -> dict[str, list[int]]:
        """Rows per source of the last successful runs, oldest first (shrink guard).

        A run that held changes counts when only `safety.hold` (or an earlier hold)
        held them; one whose guards tripped (`safety.on_exceed: hold`, even with
        nothing to hold yet) does not, or a truncated export applied night after
        night would become the norm the next one is compared with."""
        with self.session() as session:
            found = session.execute(
                select(RunRow.source_rows, RunRow.summary)
                .where(RunRow.mode == RunMode.RUN, RunRow.status.in_(FINISHED_APPLYING))
                .order_by(RunRow.started_at.desc())
            )
            rows = []
            for counts, summary in found:
                if (summary or {}).get("holding"):
                    continue
                rows.append(counts)
                if len(rows) == runs:
                    break
        history: dict[str, list[int]] = {}
        for counts in reversed(rows):
            for name, count in (counts or {}).items():
                history.setdefault(name, []).append(int(count))
        return history
