"""The columnar store read must give exactly what reading row by row gives."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert, select

from sync.state.models import ManagerRow, UserRow
from sync.state.read import read_columns, read_frame, read_state
from sync.state.store import StateStore, upgrade

NOW = datetime(2026, 1, 5, tzinfo=UTC)
HASHES = [0, 1, -1, 2**63 - 1, -(2**63), 1352582443257950265, -1232841166227312049]
REFS = ["E1", "é,2", "with space ", 'quo"te', "semi;colon", "newline\nref", "", "ß-7"]
DENSE = [UserRow.ref, UserRow.fields_hash, UserRow.extras_hash, UserRow.groups_hash]


def _store(tmp_path: Path, users: list[dict[str, Any]]) -> StateStore:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    upgrade(store.engine)
    if users:
        with store.engine.begin() as conn:
            conn.execute(insert(UserRow), users)
    return store


def _user(number: int, ref: str) -> dict[str, Any]:
    return {
        "ref": ref,
        "fields_hash": HASHES[number % len(HASHES)],
        "extras_hash": HASHES[(number + 3) % len(HASHES)],
        "groups_hash": -number,
        "archived": number % 3 == 0,
        "left_action": "archive" if number % 3 == 0 else None,
        "missing_since": NOW if number % 4 == 1 else None,
        "missing_runs": number % 5 == 2,
        "first_seen": NOW,
        "last_seen": NOW,
    }


def test_columnar_read_equals_the_row_read(tmp_path: Path) -> None:
    store = _store(tmp_path, [_user(n, ref) for n, ref in enumerate(REFS)])
    columns = [*DENSE, UserRow.archived]
    fast = read_columns(store.engine, columns)
    assert fast is not None
    rows = read_frame(store.engine, select(*columns))
    assert fast["ref"].tolist() == rows["ref"].tolist() == REFS
    for name in ("fields_hash", "extras_hash", "groups_hash"):
        assert fast[name].dtype == np.int64
        assert fast[name].tolist() == rows[name].astype("int64").tolist()
    assert fast["archived"].astype(bool).tolist() == rows["archived"].astype(bool).tolist()
    assert fast["ref"].dtype == object


def test_state_users_carry_leaver_bookkeeping_of_the_few_rows_that_have_it(
    tmp_path: Path,
) -> None:
    users = [_user(n, ref) for n, ref in enumerate(REFS)]
    store = _store(tmp_path, users)
    state = read_state(store.engine).users
    assert list(state.index) == REFS
    for row in users:
        got = state.loc[row["ref"]]
        if row["left_action"] is None:
            assert pd.isna(got["left_action"])
        else:
            assert got["left_action"] == row["left_action"]
        assert pd.isna(got["missing_since"]) == (row["missing_since"] is None)
        assert got["missing_runs"] == int(row["missing_runs"])
        assert got["archived"] == row["archived"]
        assert got["fields_hash"] == row["fields_hash"]


def test_a_ref_holding_the_separator_falls_back_to_rows(tmp_path: Path) -> None:
    store = _store(tmp_path, [_user(1, "a\x1fb"), _user(2, "c")])
    assert read_columns(store.engine, DENSE) is None
    assert sorted(read_state(store.engine).users.index) == ["a\x1fb", "c"]


@pytest.mark.parametrize("columns", [DENSE, [ManagerRow.group_ref, ManagerRow.user_ref]])
def test_empty_tables_read_as_empty_frames(tmp_path: Path, columns: list[Any]) -> None:
    store = _store(tmp_path, [])
    frame = read_columns(store.engine, columns)
    assert frame is not None
    assert frame.empty
    assert list(frame.columns) == [c.key for c in columns]


def test_nullable_columns_are_read_as_rows(tmp_path: Path) -> None:
    store = _store(tmp_path, [_user(1, "E1")])
    assert read_columns(store.engine, [UserRow.ref, UserRow.left_action]) is None


def test_a_non_integer_in_an_integer_column_falls_back_to_rows(tmp_path: Path) -> None:
    store = _store(tmp_path, [_user(1, "E1"), _user(2, "E2")])
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE users SET fields_hash = 1.5 WHERE ref = 'E2'")
    assert read_columns(store.engine, DENSE) is None
    assert sorted(read_frame(store.engine, select(*DENSE))["ref"]) == ["E1", "E2"]
