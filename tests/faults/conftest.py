"""Fixtures of the reliability suite: one fresh sandbox and workspace per scenario."""

from __future__ import annotations

from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.workspace import Workspace, make_workspace

# Retries tuned so a scenario finishes in seconds: backoff still grows and is capped,
# but nobody waits half a minute for a 5xx that the sandbox draws at random.
FAST_RETRIES = {
    "pluvo.max_retries": 6,
    "pluvo.backoff_base": 0.05,
    "pluvo.backoff_max": 0.5,
    "pluvo.timeout": 10,
}


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", sandbox.url, **FAST_RETRIES)
