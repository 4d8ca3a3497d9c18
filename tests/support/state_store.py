"""A migrated SQLite state store per test, copied from one template (a pytest plugin).

Running Alembic for every test (or every hypothesis example) costs far more than
copying a file, so the migrations run once per session and each test gets a copy.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.state.store import StateStore, upgrade


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database file, copied per test: Alembic once, not per test."""
    path = tmp_path_factory.mktemp("template") / "state.db"
    template = StateStore(f"sqlite:///{path}")
    upgrade(template.engine)
    template.close()
    return path


def fresh_store(template: Path, directory: Path) -> StateStore:
    """A store of its own in `directory`, migrated (a copy of `template`)."""
    target = directory / f"state-{uuid.uuid4().hex}.db"
    shutil.copy(template, target)
    return StateStore(f"sqlite:///{target}")


@pytest.fixture
def store(migrated_template: Path, tmp_path: Path) -> Iterator[StateStore]:
    made = fresh_store(migrated_template, tmp_path)
    yield made
    made.close()
