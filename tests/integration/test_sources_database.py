"""The database source against a real PostgreSQL (PLUVO_SYNC_TEST_PG_URL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from sync.config.sources import DatabaseSourceConfig
from sync.core.sources import open_source
from sync.errors import SourceError

pytestmark = pytest.mark.postgres


@pytest.fixture
def hr_schema(pg_url: str) -> Iterator[str]:
    """A schema of our own per test, so parallel runs never share tables."""
    schema = f"hr_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"create schema {schema}")
        conn.exec_driver_sql(
            f"create table {schema}.emp (ref text, age integer, fte numeric(4,2), "
            "salary double precision, start date, seen timestamp, active boolean, note text)"
        )
        conn.exec_driver_sql(
            f"insert into {schema}.emp values "
            "('00123', 41, 1.00, 3000.0, '2020-01-02', '2026-11-24 08:30:00', true, null), "
            "('00456', null, 0.80, 2500.5, null, null, false, 'Zoë')"
        )
    try:
        yield schema
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"drop schema {schema} cascade")
        engine.dispose()


def source(url: str, **options: str) -> Any:
    config = DatabaseSourceConfig.model_validate(
        {"name": "hrdb", "type": "database", "mapping": "m.yaml", "url": url, **options}
    )
    return open_source(config, base_dir=Path("."))


def test_table_as_text(pg_url: str, hr_schema: str) -> None:
    data = source(pg_url, table=f"{hr_schema}.emp").read()
    assert data.files == [f"db:{hr_schema}.emp"]
    rows = sorted(data.frame.to_dict("records"), key=lambda r: r["ref"])
    assert rows[0] == {
        "ref": "00123", "age": "41", "fte": "1", "salary": "3000", "start": "2020-01-02",
        "seen": "2026-11-24T08:30:00", "active": "true", "note": "",
        "_file": f"db:{hr_schema}.emp", "_line": rows[0]["_line"],
    }  # fmt: skip
    assert rows[1]["fte"] == "0.8"
    assert rows[1]["salary"] == "2500.5"
    assert rows[1]["age"] == ""
    assert rows[1]["note"] == "Zoë"
    assert sorted(data.frame["_line"]) == [1, 2]


def test_query_streams_many_rows_in_order(pg_url: str) -> None:
    query = "select lpad(g::text, 6, '0') as ref from generate_series(1, 25000) g order by g"
    data = source(pg_url, query=query).read()
    assert len(data.frame) == 25000
    assert data.frame["ref"].iloc[0] == "000001"
    assert data.frame["_line"].iloc[-1] == 25000
    assert data.frame["_file"].iloc[0] == "db:query"


def test_write_attempt_refused_by_read_only_transaction(pg_url: str, hr_schema: str) -> None:
    """A plain DELETE cannot even be a cursor; a writing function can, and must fail."""
    engine = sa.create_engine(pg_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            f"create function {hr_schema}.wipe() returns bigint language sql as "
            f"$$ with gone as (delete from {hr_schema}.emp returning 1) "
            "select count(*) from gone $$"
        )
    engine.dispose()
    with pytest.raises(SourceError, match=r"cannot execute \w+ in a read-only transaction"):
        source(pg_url, query=f"select {hr_schema}.wipe() as n").read()
    with pytest.raises(SourceError, match="syntax error"):
        source(pg_url, query=f"delete from {hr_schema}.emp returning ref").read()
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        count = conn.exec_driver_sql(f"select count(*) from {hr_schema}.emp").scalar()
    engine.dispose()
    assert count == 2


def test_missing_table(pg_url: str, hr_schema: str) -> None:
    with pytest.raises(SourceError, match=r"\(db:.*staff\): relation .* does not exist"):
        source(pg_url, table=f"{hr_schema}.staff").read()


def test_bad_sql(pg_url: str) -> None:
    with pytest.raises(SourceError, match="syntax error"):
        source(pg_url, query="selec 1").read()


def test_cannot_connect_hides_password(pg_url: str) -> None:
    url = make_url(pg_url).set(password="pw-Secret-4242", port=1, host="127.0.0.1")
    with pytest.raises(SourceError) as info:
        source(url.render_as_string(hide_password=False), table="emp").read()
    message = str(info.value)
    assert message.startswith("source hrdb: cannot connect to database postgresql")
    assert "pw-Secret-4242" not in message
    assert ":***@127.0.0.1:1/" in message
