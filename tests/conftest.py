"""Shared fixtures. Concern-specific fixtures live beside their tests."""

from __future__ import annotations

pytest_plugins: list[str] = ["tests.sandbox_fixture", "tests.support.state_store"]
