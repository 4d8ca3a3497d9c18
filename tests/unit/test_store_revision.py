"""Commands check the store's schema without Alembic: its two stand-ins must agree with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from sync.errors import StateError
from sync.state.store import (
    HEAD_REVISION,
    StateStore,
    current_revision,
    head_revision,
    require_current,
    upgrade,
)


def test_the_written_head_is_alembics_head() -> None:
    """A new migration must move HEAD_REVISION with it, or every run would refuse."""
    assert head_revision() == HEAD_REVISION


def test_the_current_revision_is_read_as_alembic_reads_it(tmp_path: Path) -> None:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert current_revision(store.engine) is None
        with pytest.raises(StateError, match="is empty, expected " + HEAD_REVISION):
            require_current(store.engine)
        upgrade(store.engine)
        with store.engine.connect() as conn:
            assert MigrationContext.configure(conn).get_current_revision() == HEAD_REVISION
        assert current_revision(store.engine) == HEAD_REVISION
        require_current(store.engine)
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '0004'"))
        with pytest.raises(StateError, match="is at revision 0004, expected " + HEAD_REVISION):
            require_current(store.engine)
    finally:
        store.close()
