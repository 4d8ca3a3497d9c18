"""Recording acknowledged changes in the state store.

Every function here runs inside the caller's transaction, the same one that marks
the journal entry `done`: the store never holds a change Pluvo did not confirm, and a
confirmed change is never journaled without its state. Content hashes are recomputed
from the stored rows in that same transaction, so they can never drift from the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sync.hashing import extras_hash, fields_hash, groups_hash
from sync.model import USER_FIELDS
from sync.state.models import (
    Base,
    ExtraValueRow,
    GroupRow,
    ManagerRow,
    MembershipRow,
    UserRow,
)


def _insert_ignore(session: Session, table: type[Base], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(table).on_conflict_do_nothing(), rows)


def record_user(
    session: Session,
    ref: str,
    fields: Mapping[str, str],
    *,
    pluvo_id: str | None,
    created: bool,
    now: datetime,
) -> None:
    """A user Pluvo confirmed with these fields: insert (owned) or update, restoring if left."""
    digest = int(fields_hash(pd.DataFrame([dict(fields)], index=[ref])).iloc[0])
    row = session.get(UserRow, ref)
    if row is None:
        session.add(
            UserRow(
                ref=ref,
                pluvo_id=pluvo_id,
                **{f: fields[f] for f in USER_FIELDS},
                fields_hash=digest,
                extras_hash=0,
                groups_hash=0,
                owned="created" if created else "adopted",
                archived=False,
                left_action=None,
                first_seen=now,
                last_seen=now,
                missing_since=None,
                missing_runs=0,
            )
        )
        return
    for f in USER_FIELDS:
        setattr(row, f, fields[f])
    row.fields_hash = digest
    row.pluvo_id = pluvo_id or row.pluvo_id
    row.archived = False
    row.left_action = None
    row.last_seen = now
    row.missing_since = None
    row.missing_runs = 0


def record_leaver(session: Session, ref: str, action: str, now: datetime) -> None:
    row = session.get(UserRow, ref)
    if row is None:
        return
    row.left_action = action
    if action == "archive":
        row.archived = True
    else:
        row.is_active = "false"
        fields = {f: getattr(row, f) for f in USER_FIELDS}
        row.fields_hash = int(fields_hash(pd.DataFrame([fields], index=[ref])).iloc[0])


def record_group(session: Session, ref: str, name: str, pluvo_id: str | None, owned: str) -> None:
    row = session.get(GroupRow, ref)
    if row is None:
        session.add(GroupRow(ref=ref, name=name, pluvo_id=pluvo_id, owned=owned))
    else:
        row.name = name
        row.pluvo_id = pluvo_id or row.pluvo_id


def record_values(
    session: Session, user_ref: str, values: Iterable[tuple[str, str, str | None]]
) -> None:
    for category_ref, category_type, value in values:
        if value is None:
            session.execute(
                delete(ExtraValueRow).where(
                    ExtraValueRow.user_ref == user_ref,
                    ExtraValueRow.category_ref == category_ref,
                )
            )
        else:
            session.merge(
                ExtraValueRow(
                    user_ref=user_ref,
                    category_ref=category_ref,
                    category_type=category_type,
                    value=value,
                )
            )
    session.flush()
    rehash_extras(session, [user_ref])


def record_pairs(
    session: Session,
    table: type[MembershipRow] | type[ManagerRow],
    group_ref: str,
    user_refs: list[str],
    *,
    add: bool,
) -> None:
    if not user_refs:
        return
    if add:
        _insert_ignore(session, table, [{"group_ref": group_ref, "user_ref": u} for u in user_refs])
    else:
        session.execute(
            delete(table).where(table.group_ref == group_ref, table.user_ref.in_(user_refs))
        )
    if table is MembershipRow:
        rehash_groups(session, user_refs)


def _existing(session: Session, refs: list[str]) -> list[str]:
    return list(session.scalars(select(UserRow.ref).where(UserRow.ref.in_(refs))))


def rehash_extras(session: Session, refs: list[str]) -> None:
    refs = _existing(session, refs)
    if not refs:
        return
    rows = session.execute(
        select(ExtraValueRow.user_ref, ExtraValueRow.category_ref, ExtraValueRow.value).where(
            ExtraValueRow.user_ref.in_(refs)
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["user_ref", "category_ref", "value"])
    hashes = extras_hash(frame).reindex(refs, fill_value=0)
    session.execute(update(UserRow), [{"ref": r, "extras_hash": int(h)} for r, h in hashes.items()])


def rehash_groups(session: Session, refs: list[str]) -> None:
    refs = _existing(session, refs)
    if not refs:
        return
    rows = session.execute(
        select(MembershipRow.group_ref, MembershipRow.user_ref).where(
            MembershipRow.user_ref.in_(refs)
        )
    ).all()
    frame = pd.DataFrame(rows, columns=["group_ref", "user_ref"])
    hashes = groups_hash(frame).reindex(refs, fill_value=0)
    session.execute(update(UserRow), [{"ref": r, "groups_hash": int(h)} for r, h in hashes.items()])
