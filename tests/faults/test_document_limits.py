"""A Pluvo that caps document complexity: batches adapt, the run converges in one go.

Pluvo publishes no limit on aliases per document; GraphQL servers often cap complexity
or body size. With documents of more than 10 root fields refused (HTTP 400
`TooComplex`), the engine's batches of 25 are halved until they pass, the size that
works is kept, and the run applies everything.
"""

from __future__ import annotations

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults


def test_a_ten_root_field_limit_converges_in_one_run(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = employees(200)
    ws.write_hr(rows)
    sandbox.control.set_faults(max_root_fields=10)
    result = ws.cli("run")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "sending at most 6 per request from now on" in result.stderr
    refused = sandbox.control.counters()["errors"].get("TooComplex", 0)
    assert refused > 0
    assert_converged(sandbox, ws, rows)
