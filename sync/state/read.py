"""Reading the state store into the frames the diff engine compares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.sql import Select

from sync.diff import StateView
from sync.model import USER_FIELDS
from sync.state.models import ExtraValueRow, GroupRow, ManagerRow, MembershipRow, UserRow

CHUNK = 900  # stays under every backend's bound-parameter limit


def _chunks(refs: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(refs), CHUNK):
        yield refs[start : start + CHUNK]


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


def _by_refs(
    engine: Engine, column: Any, base: Select[*tuple[Any, ...]], refs: list[str]
) -> pd.DataFrame:
    frames = [read_frame(engine, base.where(column.in_(chunk))) for chunk in _chunks(refs)]
    if not frames:
        return read_frame(engine, base.where(column.in_([])))
    return pd.concat(frames, ignore_index=True)


def read_state(engine: Engine) -> StateView:
    users = read_frame(
        engine,
        select(
            UserRow.ref,
            UserRow.fields_hash,
            UserRow.extras_hash,
            UserRow.groups_hash,
            UserRow.archived,
            UserRow.left_action,
            UserRow.missing_since,
            UserRow.missing_runs,
        ),
    ).set_index("ref")
    users["archived"] = users["archived"].astype(bool)
    for column in ("fields_hash", "extras_hash", "groups_hash", "missing_runs"):
        users[column] = users[column].astype("int64")
    groups = read_frame(engine, select(GroupRow.ref, GroupRow.name, GroupRow.pluvo_id)).set_index(
        "ref"
    )
    managers = read_frame(engine, select(ManagerRow.group_ref, ManagerRow.user_ref))

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
