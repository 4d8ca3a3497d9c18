"""The database source on SQLite files: values as text, read-only, clear errors."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sync.config.sources import DatabaseSourceConfig
from sync.core.sources import open_source
from sync.core.sources.database import to_text
from sync.errors import SourceError


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        ("00123", "00123"),
        (42, "42"),
        (42.0, "42"),
        (2.5, "2.5"),
        (decimal.Decimal("12.00"), "12"),
        (decimal.Decimal("12.50"), "12.5"),
        (decimal.Decimal("1E+2"), "100"),
        (True, "true"),
        (dt.date(2026, 11, 24), "2026-11-24"),
        (dt.datetime(2026, 11, 24, 8, 30), "2026-11-24T08:30:00"),
        (b"abc", "abc"),
        (b"\xff", "ff"),
    ],
)
def test_values_become_text(value: Any, text: str) -> None:
    assert to_text(value) == text


@pytest.fixture
def hr_db(tmp_path: Path) -> Path:
    path = tmp_path / "hr.db"
    with sqlite3.connect(path) as conn:
        conn.execute("create table emp (ref text, age integer, fte real, start date, note text)")
        conn.executemany(
            "insert into emp values (?, ?, ?, ?, ?)",
            [("001", 41, 1.0, "2020-01-02", None), ("002", None, 0.8, None, "x")],
        )
    conn.close()
    return path


def source(tmp_path: Path, url: str, **options: str) -> Any:
    config = DatabaseSourceConfig.model_validate(
        {"name": "hrdb", "type": "database", "mapping": "m.yaml", "url": url, **options}
    )
    return open_source(config, base_dir=tmp_path)


def test_table_rows_as_text_with_row_numbers(hr_db: Path, tmp_path: Path) -> None:
    data = source(tmp_path, "sqlite:///hr.db", table="emp").read()
    assert data.name == "hrdb"
    assert data.files == ["db:emp"]
    assert data.columns == ["ref", "age", "fte", "start", "note"]
    assert data.frame.to_dict("records") == [
        {"ref": "001", "age": "41", "fte": "1", "start": "2020-01-02", "note": "",
         "_file": "db:emp", "_line": 1},
        {"ref": "002", "age": "", "fte": "0.8", "start": "", "note": "x",
         "_file": "db:emp", "_line": 2},
    ]  # fmt: skip
    assert [str(t) for t in data.frame.dtypes] == ["object"] * 6 + ["int64"]


def test_query(hr_db: Path, tmp_path: Path) -> None:
    data = source(tmp_path, f"sqlite:///{hr_db}", query="select ref from emp where age > 40").read()
    assert data.frame.to_dict("records") == [{"ref": "001", "_file": "db:query", "_line": 1}]


def test_empty_result_keeps_columns(hr_db: Path, tmp_path: Path) -> None:
    data = source(tmp_path, "sqlite:///hr.db", query="select ref, age from emp where 0").read()
    assert data.columns == ["ref", "age"]
    assert data.frame.empty
    assert list(data.frame.columns) == ["ref", "age", "_file", "_line"]


def test_write_through_query_is_refused(hr_db: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="readonly"):
        source(tmp_path, "sqlite:///hr.db", query="delete from emp returning ref").read()
    with sqlite3.connect(hr_db) as conn:
        assert conn.execute("select count(*) from emp").fetchone() == (2,)
    conn.close()


def test_missing_table(hr_db: Path, tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"source hrdb: query failed .*\(db:staff\): no such table"
    ):
        source(tmp_path, "sqlite:///hr.db", table="staff").read()


def test_bad_sql(hr_db: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="syntax error"):
        source(tmp_path, "sqlite:///hr.db", query="selec ref from emp").read()


def test_missing_sqlite_file_is_not_created(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot connect to database"):
        source(tmp_path, "sqlite:///absent.db", table="emp").read()
    assert not (tmp_path / "absent.db").exists()


def test_duplicate_column_names(hr_db: Path, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="duplicate column names: ref"):
        source(tmp_path, "sqlite:///hr.db", query="select ref, ref from emp").read()


def test_unknown_driver_hides_password(tmp_path: Path) -> None:
    src = source(tmp_path, "nosuchdb://hr:pw-Secret-991@db.example/hr", table="emp")
    assert "pw-Secret-991" not in repr(src)
    with pytest.raises(SourceError) as info:
        src.read()
    assert "pw-Secret-991" not in str(info.value)
    assert "hr:***@db.example" in str(info.value)
