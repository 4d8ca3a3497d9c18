"""Tables of the state store: what the engine last applied to Pluvo, and its journal.

The state store is the engine's memory of *acknowledged* changes: a row here means
Pluvo confirmed it. Ownership lives here too: memberships, managers and values are
only ever removed when a row says the engine put them there.

The schema changes only through Alembic (migrations/); these classes are the model
that migrations are checked against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UserRow(Base):
    """A user the engine created or adopted, with the fields it last applied."""

    __tablename__ = "users"

    ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    pluvo_id: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str] = mapped_column(String(320), default="")
    name: Mapped[str] = mapped_column(String(512), default="")
    language: Mapped[str] = mapped_column(String(8), default="")
    roles: Mapped[str] = mapped_column(String(255), default="")
    is_active: Mapped[str] = mapped_column(String(5), default="true")
    # Content hashes (int64) of what is stored, so an unchanged user costs no compare.
    fields_hash: Mapped[int] = mapped_column(BigInteger, default=0)
    extras_hash: Mapped[int] = mapped_column(BigInteger, default=0)
    groups_hash: Mapped[int] = mapped_column(BigInteger, default=0)
    owned: Mapped[str] = mapped_column(String(16), default="created")  # created | adopted
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    left_action: Mapped[str | None] = mapped_column(String(16))  # archive | deactivate
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    missing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    missing_runs: Mapped[int] = mapped_column(Integer, default=0)


class GroupRow(Base):
    __tablename__ = "groups"

    ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    pluvo_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512), default="")
    owned: Mapped[str] = mapped_column(String(16), default="created")


class MembershipRow(Base):
    """A membership the engine added (and so may remove)."""

    __tablename__ = "memberships"

    group_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(255), primary_key=True)

    __table_args__ = (Index("ix_memberships_user_ref", "user_ref"),)


class ManagerRow(Base):
    __tablename__ = "managers"

    group_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_ref: Mapped[str] = mapped_column(String(255), primary_key=True)


class ExtraValueRow(Base):
    __tablename__ = "extra_values"

    user_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    category_ref: Mapped[str] = mapped_column(String(255), primary_key=True)
    category_type: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    mode: Mapped[str] = mapped_column(String(16))  # plan | run | reconcile
    status: Mapped[str] = mapped_column(
        String(16)
    )  # running|succeeded|partial|failed|guarded|aborted
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    holder: Mapped[str] = mapped_column(String(255), default="")
    source_rows: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text)
    plan_hash: Mapped[str | None] = mapped_column(String(80))
    """The saved plan a `run --plan FILE` applied (its `plan_hash`); None for a run
    that planned for itself."""


LOOKED_BACK_SQL = "status IN ('failed', 'abandoned')"
"""The partial index's condition; a query that wants the index repeats it verbatim
(SQLite uses a partial index only when the query's WHERE contains its terms)."""


class OperationRow(Base):
    """One journaled operation; its states and transitions are in sync.state.journal."""

    __tablename__ = "operations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    phase: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    error_class: Mapped[str | None] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # Every journal move is a lookup by (run, seq); see migration 0005.
        Index("ix_operations_run_seq", "run_id", "seq", unique=True),
        # Only the operations a later run looks back at; no move ever asks for these
        # statuses, so no planner picks this index over (run, seq) for one.
        Index(
            "ix_operations_looked_back",
            "kind",
            "status",
            sqlite_where=text(LOOKED_BACK_SQL),
            postgresql_where=text(LOOKED_BACK_SQL),
        ),
    )


class LockRow(Base):
    """At most one row: the run holding the lock. Works alike on SQLite and PostgreSQL."""

    __tablename__ = "lock"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(40))
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class HeldRow(Base):
    """A risky change the safety policy held back (sync.core.hold), one per person.

    `status` is `held` while it waits; `released` (applied by a release run),
    `discarded` (declined by hand) and `dropped` (the sources stopped asking for it)
    end it. A discard is a standing decision: while `ended_at` is empty, runs do not
    apply the change as long as the sources ask for the same one (`ended_*` say when
    and why it stopped standing). `operation` is the change as last planned, for
    people to read; what a release applies is always planned anew, never this copy."""

    __tablename__ = "held"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(255))
    group_ref: Mapped[str] = mapped_column(String(255), default="")
    risk: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    operation: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    held_by_run: Mapped[str] = mapped_column(String(40))
    planned_by_run: Mapped[str] = mapped_column(String(40))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_by_run: Mapped[str | None] = mapped_column(String(40))
    closed_by: Mapped[str | None] = mapped_column(String(255))
    close_reason: Mapped[str | None] = mapped_column(Text)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by_run: Mapped[str | None] = mapped_column(String(40))
    end_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_held_status", "status"),
        Index("ix_held_ref", "ref"),
    )
