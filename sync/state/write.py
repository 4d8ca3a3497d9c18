"""Recording acknowledged changes in the state store.

Every function here runs inside the caller's transaction, the same one that marks
the journal entry `done`: the store never holds a change Pluvo did not confirm, and a
confirmed change is never journaled without its state. Content hashes are recomputed
from the stored rows in that same transaction, so they can never drift from the rows.

The executor calls these once per flushed batch (a few dozen operations), tens of
thousands of times in a first load: rows go through Core statements (an executemany
each), not the ORM's bulk layer, and a batch's hashes are summed with numpy rather
than through a DataFrame, which costs more to build than the batch does to hash.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from sync.hashing import combine, hash_strings, owned_set_hash
from sync.model import USER_FIELDS
from sync.state.batching import chunks
from sync.state.bulk import Many, RowsIn
from sync.state.models import (
    Base,
    ExtraValueRow,
    GroupRow,
    ManagerRow,
    MembershipRow,
    UserRow,
)


def _table(row: type[Base]) -> Table:
    table = row.__table__
    assert isinstance(table, Table)
    return table


@cache
def _inserter(row: type[Base], keys: tuple[str, ...], dialect: str, ignore: bool) -> Many:
    table = _table(row)
    if not ignore:
        return Many(insert(table), per_row=keys)
    dialect_insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return Many(dialect_insert(table).on_conflict_do_nothing(), per_row=keys)


def _insert(
    session: Session, row: type[Base], rows: list[dict[str, Any]], *, ignore: bool = False
) -> None:
    """INSERT rows of one shape (the first row's keys), one executemany; with `ignore`,
    rows whose key is already stored are left as they are."""
    if not rows:
        return
    keys = tuple(rows[0])
    dialect = session.get_bind().dialect.name
    values = itemgetter(*keys)
    _inserter(row, keys, dialect, ignore)(
        session, [values(r) for r in rows] if len(keys) > 1 else [(values(r),) for r in rows]
    )


@cache
def _user_updater(keys: tuple[str, ...]) -> Many:
    table = _table(UserRow)
    statement = (
        update(table)
        .where(table.c.ref == bindparam("b_ref"))
        .values({key: bindparam(f"v_{key}") for key in keys})
    )
    return Many(statement, per_row=("b_ref", *(f"v_{key}" for key in keys)))


def _update_users(session: Session, rows: list[dict[str, Any]]) -> None:
    """UPDATE users by ref, one executemany; every row sets the same columns (the first
    row's, besides `ref`)."""
    if not rows:
        return
    keys = tuple(k for k in rows[0] if k != "ref")
    values = itemgetter("ref", *keys)
    _user_updater(keys)(session, [values(r) for r in rows])


def _hashes(fields: list[Mapping[str, str]]) -> list[int]:
    """`sync.hashing.fields_hash` of each field set, column by column without a DataFrame."""
    return [int(h) for h in combine(*([f[name] for f in fields] for name in USER_FIELDS))]


def record_users(
    session: Session,
    users: Sequence[tuple[str, Mapping[str, str], str | None, bool]],
    now: datetime,
) -> None:
    """Users Pluvo confirmed with these fields: (ref, fields, pluvo id, created by us).

    New refs are inserted as owned (created, or adopted when Pluvo already had them);
    known ones are updated and, if they had left, restored.
    """
    if not users:
        return
    refs = [u[0] for u in users]
    digests = _hashes([u[1] for u in users])
    known = set(_existing(session, refs))
    inserts, updates = [], []
    for (ref, fields, pluvo_id, created), digest in zip(users, digests, strict=True):
        values = {f: fields[f] for f in USER_FIELDS}
        common = {
            **values,
            "fields_hash": digest,
            "archived": False,
            "left_action": None,
            "last_seen": now,
            "missing_since": None,
            "missing_runs": 0,
        }
        if ref in known:
            row = {"ref": ref, **common}
            if pluvo_id:
                row["pluvo_id"] = pluvo_id
            updates.append(row)
        else:
            known.add(ref)
            inserts.append(
                {
                    "ref": ref,
                    "pluvo_id": pluvo_id,
                    **common,
                    "extras_hash": 0,
                    "groups_hash": 0,
                    "owned": "created" if created else "adopted",
                    "first_seen": now,
                }
            )
    _insert(session, UserRow, inserts)
    # Rows of one shape per executemany: with and without a new Pluvo id.
    for with_id in (True, False):
        _update_users(session, [u for u in updates if ("pluvo_id" in u) is with_id])


def record_leaver(session: Session, ref: str, action: str, now: datetime) -> None:
    row = session.get(UserRow, ref)
    if row is None:
        return
    row.left_action = action
    if action == "archive":
        row.archived = True
    else:
        row.is_active = "false"
        row.fields_hash = _hashes([{f: getattr(row, f) for f in USER_FIELDS}])[0]


def record_group(session: Session, ref: str, name: str, pluvo_id: str | None, owned: str) -> None:
    row = session.get(GroupRow, ref)
    if row is None:
        session.add(GroupRow(ref=ref, name=name, pluvo_id=pluvo_id, owned=owned))
    else:
        row.name = name
        row.pluvo_id = pluvo_id or row.pluvo_id


def record_values(session: Session, items: Sequence[tuple[str, Iterable[Any]]]) -> None:
    """Extra values Pluvo confirmed, per user; None clears (deletes) a value."""
    if not items:
        return
    upserts: dict[tuple[str, str], dict[str, str]] = {}
    deletes: list[tuple[str, str]] = []
    for user_ref, values in items:
        for category_ref, category_type, value in values:
            key = (user_ref, category_ref)
            if value is None:
                upserts.pop(key, None)
                deletes.append(key)
            else:
                upserts[key] = {
                    "user_ref": user_ref,
                    "category_ref": category_ref,
                    "category_type": category_type,
                    "value": value,
                }
    # Cleared and replaced values go first, by primary key: one executemany of
    # `category_ref = ? AND user_ref = ?` (a row-value IN over both columns scanned the
    # whole table on SQLite, so every batch of a first load paid for all before it).
    _VALUE_DELETE(session, [*deletes, *upserts])
    _insert(session, ExtraValueRow, list(upserts.values()))
    rehash_extras(session, sorted({user_ref for user_ref, _ in items}))


_VALUES = _table(ExtraValueRow)
_VALUE_DELETE = Many(
    delete(_VALUES).where(
        _VALUES.c.user_ref == bindparam("b_user"),
        _VALUES.c.category_ref == bindparam("b_category"),
    ),
    per_row=("b_user", "b_category"),
)


Links = tuple[type[MembershipRow] | type[ManagerRow], str, list[str], bool]
"""(table, group ref, user refs, add) of one group's membership or manager change."""


def record_links(session: Session, links: Sequence[Links]) -> None:
    """Several groups' link changes, their users' group hashes redone once at the end:
    in a first load a batch adds thousands of people, each to several of its groups."""
    regrouped: set[str] = set()
    for table, group_ref, user_refs, add in links:
        record_pairs(session, table, group_ref, user_refs, add=add, rehash=False)
        if table is MembershipRow:
            regrouped.update(user_refs)
    rehash_groups(session, sorted(regrouped))


def record_pairs(
    session: Session,
    table: type[MembershipRow] | type[ManagerRow],
    group_ref: str,
    user_refs: list[str],
    *,
    add: bool,
    rehash: bool = True,
) -> None:
    """One group's links added or removed; with `rehash`, its users' group hashes
    redone (`record_links` does that once for many groups)."""
    if not user_refs:
        return
    if add:
        added = [{"group_ref": group_ref, "user_ref": u} for u in user_refs]
        _insert(session, table, added, ignore=True)
    else:
        pairs = _table(table)
        session.execute(
            delete(pairs).where(pairs.c.group_ref == group_ref, pairs.c.user_ref.in_(user_refs))
        )
    if rehash and table is MembershipRow:
        rehash_groups(session, user_refs)


def _existing(session: Session, refs: list[str]) -> list[str]:
    return [row[0] for row in _rows_of(session, UserRow, ("ref",), "ref", refs)]


@cache
def _reader(table: type[Base], columns: tuple[str, ...], key: str) -> RowsIn:
    t = _table(table)
    return RowsIn([t.c[c] for c in columns], t.c[key])


def _rows_of(
    session: Session, table: type[Base], columns: tuple[str, ...], key: str, refs: list[str]
) -> list[tuple[Any, ...]]:
    read = _reader(table, columns, key)
    rows: list[tuple[Any, ...]] = []
    for chunk in chunks(refs):
        rows.extend(read(session, chunk))
    return rows


def _set_hashes(
    session: Session, column: str, refs: list[str], owners: Sequence[str], hashed: np.ndarray
) -> None:
    """Store each ref's set hash of the elements it owns. Refs not in the store are
    no-ops (the UPDATE matches nothing)."""
    digests = owned_set_hash(refs, owners, hashed)
    _update_users(session, [{"ref": r, column: h} for r, h in zip(refs, digests, strict=True)])


def rehash_extras(session: Session, refs: list[str]) -> None:
    """These users' extras hash, from their stored values."""
    if refs:
        columns = ("user_ref", "category_ref", "value")
        rows = _rows_of(session, ExtraValueRow, columns, "user_ref", refs)
        hashed = combine([r[1] for r in rows], [r[2] for r in rows], few=(0,))
        _set_hashes(session, "extras_hash", refs, [r[0] for r in rows], hashed)


def rehash_groups(session: Session, refs: list[str]) -> None:
    """These users' groups hash, from their stored memberships."""
    if refs:
        columns = ("group_ref", "user_ref")
        rows = _rows_of(session, MembershipRow, columns, "user_ref", refs)
        hashed = hash_strings([r[0] for r in rows], few=True)
        _set_hashes(session, "groups_hash", refs, [r[1] for r in rows], hashed)


def record_presence(session: Session, present: Collection[str], stamp: datetime) -> None:
    """Count missing runs for users gone from the sources; reset the returners."""
    rows = session.execute(
        select(UserRow.ref, UserRow.missing_runs).where(UserRow.left_action.is_(None))
    ).all()
    gone = [r.ref for r in rows if r.ref not in present]
    back = [r.ref for r in rows if r.ref in present and r.missing_runs > 0]
    for part in chunks(gone):
        session.execute(
            update(UserRow)
            .where(UserRow.ref.in_(part))
            .values(missing_runs=UserRow.missing_runs + 1)
        )
        session.execute(
            update(UserRow)
            .where(UserRow.ref.in_(part), UserRow.missing_since.is_(None))
            .values(missing_since=stamp)
        )
    for part in chunks(back):
        session.execute(
            update(UserRow).where(UserRow.ref.in_(part)).values(missing_runs=0, missing_since=None)
        )
    session.execute(
        update(UserRow)
        .where(UserRow.left_action.is_(None), UserRow.missing_runs == 0)
        .values(last_seen=stamp)
    )


def record_pluvo_ids(session: Session, ids: Sequence[tuple[str, str]]) -> None:
    """(ref, Pluvo id) pairs read live: ids the store had wrong or did not know."""
    if ids:
        session.execute(update(UserRow), [{"ref": ref, "pluvo_id": pid} for ref, pid in ids])


def forget_users(session: Session, refs: Sequence[str]) -> None:
    """Users gone from Pluvo and from HR: nothing of theirs is ours any more."""
    for part in chunks(refs):
        for table in (MembershipRow, ManagerRow, ExtraValueRow):
            session.execute(delete(table).where(table.user_ref.in_(part)))
        session.execute(delete(UserRow).where(UserRow.ref.in_(part)))


def forget_groups(session: Session, refs: Sequence[str]) -> None:
    """Groups gone from Pluvo and from HR; their members' group hashes are redone."""
    for part in chunks(refs):
        affected = list(
            session.scalars(select(MembershipRow.user_ref).where(MembershipRow.group_ref.in_(part)))
        )
        session.execute(delete(MembershipRow).where(MembershipRow.group_ref.in_(part)))
        session.execute(delete(ManagerRow).where(ManagerRow.group_ref.in_(part)))
        session.execute(delete(GroupRow).where(GroupRow.ref.in_(part)))
        rehash_groups(session, sorted(set(affected)))
