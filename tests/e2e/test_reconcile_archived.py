"""Reconcile after leavers were archived, against a Pluvo that lists archived users
only when asked (`paginatedUsers` without `archived`: active users, as the
documentation reads): archived leavers are read explicitly, never called vanished."""

from __future__ import annotations

import json
from pathlib import Path

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import users_by_ref
from tests.support.workspace import employee, make_workspace, ref_of

N = 40
LEAVERS = range(30, N)


def test_archived_leavers_are_not_vanished(sandbox: SandboxServer, tmp_path: Path) -> None:
    sandbox.control.set_faults(archived_unasked=False)
    ws = make_workspace(
        tmp_path / "ws",
        sandbox.url,
        **{"safety.max_leavers": {"share": 0.5, "count": 100}, "safety.min_source_ratio": 0.5},
    )
    ws.write_hr([employee(n) for n in range(N)])
    assert ws.cli("run").returncode == 0
    ws.write_hr([employee(n) for n in range(N) if n not in LEAVERS])
    result = ws.cli("run")
    assert result.returncode == 0, result.stdout + result.stderr
    pluvo = users_by_ref(sandbox)
    assert {ref_of(n) for n in LEAVERS} == {r for r, u in pluvo.items() if u["archived"]}

    out = ws.root / "reconcile.json"
    result = ws.cli("reconcile", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["status"] == "in_sync"
    assert set(report["drift_counts"].values()) == {0}
    assert report["live"]["users"] == N
