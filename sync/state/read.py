"""Reading the state store into the frames the diff engine compares."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Boolean, Column, Engine, Integer, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from sync.model import USER_FIELDS, StateView
from sync.state.batching import chunks
from sync.state.models import ExtraValueRow, GroupRow, ManagerRow, MembershipRow, UserRow


def read_frame(engine: Engine, query: Select[*tuple[Any, ...]]) -> pd.DataFrame:
    with engine.connect() as conn:
        if query.whereclause is None:
            # Whole-table reads (a million users) skip SQLAlchemy's Row wrapping.
            compiled = query.compile(dialect=engine.dialect)
            cursor = conn.connection.cursor()
            try:
                cursor.execute(str(compiled))
                names = [d[0] for d in cursor.description]
                # In slices: a million rows as one list of tuples costs hundreds of MB.
                parts = []
                while batch := cursor.fetchmany(200_000):
                    parts.append(pd.DataFrame(batch, columns=names))
            finally:
                cursor.close()
            if not parts:
                return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
            return parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
        result = conn.execute(query)
        names = list(result.keys())
        rows = [tuple(row) for row in result.fetchall()]
    if not rows:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    return pd.DataFrame(rows, columns=names)


_UNIT = "\x1f"  # ASCII unit separator: not a character HR refs are made of


def read_columns(engine: Engine, columns: Sequence[Any]) -> pd.DataFrame | None:
    """A whole table's NOT NULL text and integer columns, one aggregated string each.

    Fetching a million rows makes a million tuples and millions of Python objects, all
    under the GIL, while the plan reads and maps the sources beside it. SQLite's
    `group_concat` builds each column's text inside `sqlite3_step`, which runs without
    the GIL, and splitting the text back is one C call per column. The aggregates of
    one SELECT step through the same scan together, so the columns line up row by row.

    None when this does not apply (another backend, a nullable column, a text value
    holding the separator): the caller reads rows instead.
    """
    if engine.dialect.name != "sqlite" or any(c.nullable for c in _columns(columns)):
        return None
    text = [not isinstance(c.type, Integer | Boolean) for c in _columns(columns)]
    parts = [
        func.group_concat(column, _UNIT if is_text else ",")
        for column, is_text in zip(columns, text, strict=True)
    ]
    with engine.connect() as conn:
        row = conn.execute(select(func.count(), *parts)).one()
    count, values = int(row[0]), row[1:]
    data: dict[str, np.ndarray] = {}
    for column, is_text, value in zip(columns, text, values, strict=True):
        if is_text:
            # An object array of the split list holds those very str objects: no copies.
            array = np.array(value.split(_UNIT) if count else [], dtype=object)
        elif not count:
            array = np.zeros(0, dtype=np.int64)
        else:
            try:
                array = np.fromstring(value, dtype=np.int64, sep=",")
            except ValueError:  # SQLite stores what it is given: a stray non-integer
                return None
        if len(array) != count:
            return None
        data[column.key] = array
    return pd.DataFrame({k: pd.Series(v, dtype=v.dtype, copy=False) for k, v in data.items()})


def _columns(columns: Sequence[Any]) -> list[Column[Any]]:
    return [c.property.columns[0] if hasattr(c, "property") else c for c in columns]


def _by_refs(
    engine: Engine, column: Any, base: Select[*tuple[Any, ...]], refs: list[str]
) -> pd.DataFrame:
    frames = [read_frame(engine, base.where(column.in_(chunk))) for chunk in chunks(refs)]
    if not frames:
        return read_frame(engine, base.where(column.in_([])))
    return pd.concat(frames, ignore_index=True)


def _whole(engine: Engine, columns: Sequence[Any]) -> pd.DataFrame:
    frame = read_columns(engine, columns)
    return read_frame(engine, select(*columns)) if frame is None else frame


def _users(engine: Engine) -> pd.DataFrame:
    """Every user's hashes; the leaver bookkeeping only from the rows that have any.

    Those columns are set only for users who left (or are missing from HR), a small
    share of the store: reading them for every present user would be a million rows
    of Nones and zeros.
    """
    users = _whole(
        engine,
        [
            UserRow.ref,
            UserRow.fields_hash,
            UserRow.extras_hash,
            UserRow.groups_hash,
            UserRow.archived,
        ],
    ).set_index("ref")
    users["archived"] = users["archived"].astype(bool)
    for column in ("fields_hash", "extras_hash", "groups_hash"):
        users[column] = users[column].astype("int64")
    leaving = read_frame(
        engine,
        select(UserRow.ref, UserRow.left_action, UserRow.missing_since, UserRow.missing_runs).where(
            or_(
                UserRow.left_action.is_not(None),
                UserRow.missing_since.is_not(None),
                UserRow.missing_runs != 0,
            )
        ),
    )
    at = users.index.get_indexer(pd.Index(leaving["ref"], dtype=object))
    found = at >= 0  # a user deleted between the two reads is simply gone
    for column, default in (("left_action", None), ("missing_since", None), ("missing_runs", 0)):
        values = np.full(len(users), default, dtype=object if default is None else np.int64)
        values[at[found]] = leaving[column].to_numpy(dtype=values.dtype)[found]
        users[column] = pd.Series(values, index=users.index, dtype=values.dtype, copy=False)
    return users


def read_state(engine: Engine) -> StateView:
    users = _users(engine)
    groups = read_frame(engine, select(GroupRow.ref, GroupRow.name, GroupRow.pluvo_id)).set_index(
        "ref"
    )
    managers = _whole(engine, [ManagerRow.group_ref, ManagerRow.user_ref])

    def load_ids(refs: list[str]) -> pd.DataFrame:
        base = select(UserRow.ref, UserRow.pluvo_id)
        return _by_refs(engine, UserRow.ref, base, refs).set_index("ref")

    def load_fields(refs: list[str]) -> pd.DataFrame:
        base = select(UserRow.ref, *(getattr(UserRow, f) for f in USER_FIELDS))
        return _by_refs(engine, UserRow.ref, base, refs).set_index("ref")

    def load_extras(refs: list[str]) -> pd.DataFrame:
        base = select(
            ExtraValueRow.user_ref,
            ExtraValueRow.category_ref,
            ExtraValueRow.category_type,
            ExtraValueRow.value,
        )
        return _by_refs(engine, ExtraValueRow.user_ref, base, refs)

    def load_memberships(refs: list[str]) -> pd.DataFrame:
        base = select(MembershipRow.group_ref, MembershipRow.user_ref)
        return _by_refs(engine, MembershipRow.user_ref, base, refs)

    return StateView(
        users, groups, managers, load_fields, load_extras, load_memberships, load_ids=load_ids
    )


# ------------------------------------------------------------------ the whole store


@dataclass
class Owned:
    """The whole state store as frames (what the engine applied and owns)."""

    users: pd.DataFrame  # index ref; pluvo_id, USER_FIELDS, owned, archived, left_action, ...
    groups: pd.DataFrame  # index ref; pluvo_id, name
    memberships: pd.DataFrame  # group_ref, user_ref
    managers: pd.DataFrame  # group_ref, user_ref
    extra_values: pd.DataFrame  # user_ref, category_ref, category_type, value


def read_owned(engine: Engine) -> Owned:
    users = read_frame(
        engine,
        select(
            UserRow.ref,
            UserRow.pluvo_id,
            *(getattr(UserRow, f) for f in USER_FIELDS),
            UserRow.owned,
            UserRow.archived,
            UserRow.left_action,
            UserRow.missing_since,
            UserRow.missing_runs,
        ),
    ).set_index("ref")
    users["archived"] = users["archived"].astype(bool)
    users["missing_runs"] = users["missing_runs"].astype("int64")
    users["left_action"] = users["left_action"].astype(object)
    groups = read_frame(engine, select(GroupRow.ref, GroupRow.pluvo_id, GroupRow.name)).set_index(
        "ref"
    )
    return Owned(
        users=users,
        groups=groups,
        memberships=read_frame(engine, select(MembershipRow.group_ref, MembershipRow.user_ref)),
        managers=read_frame(engine, select(ManagerRow.group_ref, ManagerRow.user_ref)),
        extra_values=read_frame(
            engine,
            select(
                ExtraValueRow.user_ref,
                ExtraValueRow.category_ref,
                ExtraValueRow.category_type,
                ExtraValueRow.value,
            ),
        ),
    )


@dataclass(frozen=True)
class StoreCounts:
    users: list[tuple[str, str | None, int]]  # (owned, left_action, count)
    groups: int
    memberships: int
    managers: int


def store_counts(engine: Engine) -> StoreCounts:
    with engine.connect() as conn:
        users = conn.execute(
            select(UserRow.owned, UserRow.left_action, func.count()).group_by(
                UserRow.owned, UserRow.left_action
            )
        ).all()
        counts = [
            conn.scalar(select(func.count()).select_from(table)) or 0
            for table in (GroupRow, MembershipRow, ManagerRow)
        ]
    return StoreCounts([(str(o), left, int(n)) for o, left, n in users], *counts)


# ------------------------------------------------------------------ one person


@dataclass(frozen=True)
class StoredPerson:
    """What the store records of one user: its row, its groups as (ref, name) by ref,
    and its extra values as (category ref, value), sorted."""

    user: UserRow
    member_of: list[tuple[str, str]]
    manager_of: list[tuple[str, str]]
    values: list[tuple[str, str]]


def stored_person(session: Session, ref: str) -> StoredPerson | None:
    user = session.get(UserRow, ref)
    if user is None:
        return None
    names = {str(r): str(n) for r, n in session.execute(select(GroupRow.ref, GroupRow.name))}
    groups = {
        table: sorted(session.scalars(select(table.group_ref).where(table.user_ref == ref)).all())
        for table in (MembershipRow, ManagerRow)
    }
    values = [
        (str(category), str(value))
        for category, value in session.execute(
            select(ExtraValueRow.category_ref, ExtraValueRow.value).where(
                ExtraValueRow.user_ref == ref
            )
        )
    ]
    return StoredPerson(
        user=user,
        member_of=[(g, names.get(g, g)) for g in groups[MembershipRow]],
        manager_of=[(g, names.get(g, g)) for g in groups[ManagerRow]],
        values=sorted(values),
    )


def names_and_emails(session: Session, refs: Collection[str]) -> dict[str, tuple[str, str]]:
    """(name, email) of the stored users among refs."""
    rows = session.execute(
        select(UserRow.ref, UserRow.name, UserRow.email).where(UserRow.ref.in_(list(refs)))
    )
    return {ref: (name, email) for ref, name, email in rows}
