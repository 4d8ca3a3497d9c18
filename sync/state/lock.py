"""The run lock, held by something that dies with the process that holds it.

A lock that is only a row in the store strands when its process dies on a host the
next run cannot look at (a container or pod comes back with a new hostname, and the
row names the old one). So the lock itself is held elsewhere:

- PostgreSQL: a session-level advisory lock on a connection kept open for the run;
  the server releases it when that connection dies, whichever host it came from.
- SQLite: an OS file lock (`flock`) on a file beside the database; the kernel
  releases it when the process dies.

The `lock` row is kept as information only (who holds it, since when), for the
message a second run prints and for `status`; a row whose lock is not held is stale
and simply replaced. Other backends (and in-memory SQLite) fall back to the row alone.
"""

from __future__ import annotations

import errno
import fcntl
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from sync.errors import LockedError, StateError
from sync.state.models import LockRow

LOCK_NAME = "run"
ADVISORY_KEY = 0x706C75766F73796E  # "pluvosyn": this tool's advisory lock id


def sqlite_file(engine: Engine) -> Path | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return Path(database)


class RunLock:
    """One run's hold on the lock; `acquire` raises LockedError when another run has it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._conn: Connection | None = None
        self._fd: int | None = None

    @property
    def held_by_os(self) -> bool:
        """Whether the lock itself lives outside the row (so a dead holder frees it)."""
        return self.engine.dialect.name == "postgresql" or sqlite_file(self.engine) is not None

    def acquire(self, run_id: str, holder: str, stamp: datetime) -> None:
        if not self._take():
            raise self._locked()
        try:
            with self.engine.begin() as conn:
                if self.held_by_os:
                    # We hold the real lock: whatever row is there was left by a dead run.
                    conn.execute(delete(LockRow).where(LockRow.name == LOCK_NAME))
                conn.execute(
                    insert(LockRow).values(
                        name=LOCK_NAME, run_id=run_id, holder=holder, acquired_at=stamp
                    )
                )
        except SQLAlchemyError as exc:
            self._give_back()
            if self.held_by_os:
                raise StateError(
                    f"state store is not writable: {getattr(exc, 'orig', exc)}"
                ) from None
            raise self._locked() from None

    def release(self, run_id: str) -> None:
        """Drop the row, then the lock; best effort (a dead holder's lock frees itself)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(LockRow).where(LockRow.name == LOCK_NAME, LockRow.run_id == run_id)
                )
        finally:
            self._give_back()

    # ------------------------------------------------------------------ the real lock

    def _take(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            conn = self.engine.connect()
            got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY})
                       .scalar())  # fmt: skip
            conn.commit()
            if not got:
                conn.close()
                return False
            self._conn = conn
            return True
        file = sqlite_file(self.engine)
        if file is None:
            return True  # the row alone decides (its insert fails while another holds it)
        fd = os.open(f"{file}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise StateError(f"cannot lock {file}.lock: {exc.strerror}") from None
        self._fd = fd
        return True

    def _give_back(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                self._conn.commit()
            except SQLAlchemyError:
                pass  # the connection is gone, and the lock with it
            finally:
                self._conn.close()
                self._conn = None
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def _locked(self) -> LockedError:
        row = self._row()
        if row is None:
            return LockedError(
                "another run holds the lock",
                hint="wait for it to finish; the lock is released when that process ends",
            )
        return LockedError(
            f"another run ({row['run_id']}, {row['holder']}) holds the lock "
            f"since {row['acquired_at']:%Y-%m-%d %H:%M:%S}",
            hint="wait for it to finish; the lock is released when that process ends",
        )

    def _row(self) -> dict[str, Any] | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(LockRow).where(LockRow.name == LOCK_NAME)).first()
        except SQLAlchemyError:
            return None
        return None if row is None else dict(row._mapping)


def force_unlock(engine: Engine) -> dict[str, Any] | None:
    """Clear the lock by hand: the row, and on PostgreSQL the session holding the
    advisory lock. Returns the row that was there (who held it), if any."""
    lock = RunLock(engine)
    row = lock._row()
    with engine.begin() as conn:
        conn.execute(delete(LockRow).where(LockRow.name == LOCK_NAME))
        if engine.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted "
                    "AND ((classid::bigint << 32) | objid::bigint) = :k"
                ),
                {"k": ADVISORY_KEY},
            )
    return row
