"""Shared fixtures. Concern-specific fixtures live beside their tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

pytest_plugins: list[str] = ["tests.sandbox_fixture", "tests.support.state_store"]


@pytest.fixture(autouse=True)
def _sync_logger_restored() -> Iterator[None]:
    """Each test gets the `sync` logger as it found it: a test that sets logging up as
    the CLI does (handlers, no propagation) must not hide later tests' records from
    caplog, whatever order the tests run in (mutation testing runs subsets)."""
    logger = logging.getLogger("sync")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, level = saved[1], saved[2]
    logger.setLevel(level)
