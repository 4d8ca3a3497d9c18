"""A few thousand users through a hostile network: 5xx, drops, 429s, expiring tokens, latency.

The promise under test: one run completes, or the run after it does, and either way
Pluvo ends exactly as the HR data says, with no duplicate and a store that agrees.
"""

from __future__ import annotations

from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults

USERS = 2000


def _run_until_done(ws: Workspace, runs: int = 2) -> list[int]:
    """Run up to `runs` times; the first completes or the next one finishes the work."""
    codes: list[int] = []
    for _ in range(runs):
        result = ws.cli("run")
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        codes.append(result.returncode)
        if result.returncode == 0:
            break
        assert result.returncode in (1, 3), result.stdout[-2000:] + result.stderr[-2000:]
    return codes


@pytest.mark.parametrize(
    ("name", "faults"),
    [
        pytest.param(
            "storm",
            {
                "error_rate": 0.10,
                "drop_rate": 0.03,
                "drop_after_apply_rate": 0.02,
                "token_lifetime": 2.0,
                "latency": 0.005,
                "latency_jitter": 0.25,
                "seed": 11,
            },
            id="500s-drops-expiring-tokens-latency-spikes",
        ),
        pytest.param(
            "rate-limited",
            {"rate_limit": 40.0, "token_lifetime": 3.0, "seed": 12},
            id="hard-rate-limit-429-retry-after",
        ),
    ],
)
def test_hostile_network_converges(
    sandbox: SandboxServer, ws: Workspace, name: str, faults: dict[str, Any]
) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    sandbox.control.set_faults(**faults)

    codes = _run_until_done(ws)

    assert codes[-1] == 0, f"{name}: exits {codes}"
    counters = sandbox.control.counters()
    # The faults really happened: a suite whose faults never fire proves nothing.
    if name == "storm":
        assert counters["faults"].get("error", 0) > 5, counters["faults"]
        assert counters["faults"].get("drop", 0) > 0, counters["faults"]
        assert counters["faults"].get("drop_after_apply", 0) > 0, counters["faults"]
        assert counters["tokens_issued"] > 1, "tokens never expired during the run"
    else:
        assert counters["status"].get("429", 0) > 0, counters["status"]
    assert_converged(sandbox, ws, rows)


def test_users_created_through_lost_answers_stay_owned_as_created(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = employees(200)
    ws.write_hr(rows)
    sandbox.control.set_faults(drop_after_apply_rate=0.3, seed=5)
    assert _run_until_done(ws)[-1] == 0
    assert sandbox.control.counters()["faults"].get("drop_after_apply", 0) > 0
    assert_converged(sandbox, ws, rows)
    # Every user here was created by the engine; a lost answer must not change that.
    assert ws.query("SELECT DISTINCT owned FROM users") == [("created",)]
