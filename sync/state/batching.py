"""Bound-parameter chunks: every `IN (...)` the store sends goes through `chunks`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

CHUNK = 900  # stays under every backend's bound-parameter limit (SQLite's 999 the lowest)

T = TypeVar("T")


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
