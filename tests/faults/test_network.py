"""A few thousand users through a hostile network: 5xx, drops, 429s, expiring tokens, latency.

The promise under test: the client's retries absorb every fault, so a single run ends
with exit 0 and every planned operation applied, and Pluvo ends exactly as the HR data
says, with no duplicate and a store that agrees. Each scenario gives the client enough
retries that exhausting them would take a run of faults far longer than the seeded
rates make plausible, so one exit code is expected, not "0, or else the next run".
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.faults.checks import assert_converged
from tests.support.workspace import Workspace, employees

pytestmark = pytest.mark.faults

USERS = 2000


def _run_absorbing_faults(ws: Workspace) -> dict[str, Any]:
    """One run that must succeed outright; returns its report."""
    result = ws.cli("run", "--out", "run.json")
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    report: dict[str, Any] = json.loads((ws.root / "run.json").read_text(encoding="utf-8"))
    assert report["status"] == "succeeded"
    assert report["failed"] == []
    assert report["skipped"] == 0
    assert report["applied"] == report["planned"], "every planned operation is applied once"
    assert ws.operation_statuses() == {"done": sum(report["planned"].values())}
    return report


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
            # Ten a second: far below what the client sends even on a loaded machine,
            # so the limit is always reached and 429s always meet the run.
            {"rate_limit": 10.0, "token_lifetime": 3.0, "seed": 12},
            id="hard-rate-limit-429-retry-after",
        ),
    ],
)
def test_hostile_network_converges(
    sandbox: SandboxServer, ws: Workspace, name: str, faults: dict[str, Any]
) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    # 15% of attempts fail in the storm: eleven failures in a row for one batch is ~1e-9.
    ws.write_config(**{"pluvo.max_retries": 10})
    sandbox.control.set_faults(**faults)

    _run_absorbing_faults(ws)

    counters = sandbox.control.counters()
    # The faults really happened: a suite whose faults never fire proves nothing.
    if name == "storm":
        assert counters["faults"].get("error", 0) > 5, counters["faults"]
        assert counters["faults"].get("drop", 0) > 0, counters["faults"]
        assert counters["faults"].get("drop_after_apply", 0) > 0, counters["faults"]
        assert counters["tokens_issued"] > 1, "tokens never expired during the run"
    else:
        refused = counters["faults"].get("rate_limited", 0)
        assert refused > 0, counters["faults"]
        assert counters["status"].get("429", 0) == refused, counters["status"]
    assert_converged(sandbox, ws, rows)


def test_users_created_through_lost_answers_stay_owned_as_created(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = employees(200)
    ws.write_hr(rows)
    # 30% of answers lost: thirteen losses in a row for one batch is ~1.6e-7.
    ws.write_config(**{"pluvo.max_retries": 12})
    sandbox.control.set_faults(drop_after_apply_rate=0.3, seed=5)
    _run_absorbing_faults(ws)
    assert sandbox.control.counters()["faults"].get("drop_after_apply", 0) > 0
    assert_converged(sandbox, ws, rows)
    # Every user here was created by the engine; a lost answer must not change that.
    assert ws.query("SELECT DISTINCT owned FROM users") == [("created",)]
