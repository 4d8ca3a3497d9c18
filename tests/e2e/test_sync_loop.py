"""plan / run / status / history through the CLI, against the sandbox over HTTP.

Each test builds its own sandbox, workspace and state store, and asserts convergence:
the sandbox ends in exactly the expected state, and the run after that sends nothing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import assert_pluvo_matches, heal, members, mutations, users_by_ref
from tests.support.waiting import finish, kill_after, running, wait_for_progress
from tests.support.workspace import Workspace, employee, make_workspace, ref_of

N = 2000


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", sandbox.url)


def test_initial_load_day2_changes_and_convergence(sandbox: SandboxServer, ws: Workspace) -> None:
    day1 = [employee(n) for n in range(N)]
    ws.write_hr(day1)
    sandbox.control.seed(users=[{"ref": "FOREIGN-1", "email": "f1@else.nl", "name": "Foreign"}])

    before = sandbox.control.state()
    plan = ws.cli("plan", "--out", "plan.json")
    assert plan.returncode == 0, plan.stderr
    assert re.search(rf"^  new people +{N}$", plan.stdout, re.MULTILINE), plan.stdout[:2000]
    assert mutations(sandbox) == 0, "plan must never send a mutation"
    assert sandbox.control.state()["users"] == before["users"]
    assert ws.query("SELECT count(*) FROM users") == [(0,)]
    assert ws.query("SELECT count(*) FROM runs") == [(0,)]
    planned = json.loads((ws.root / "plan.json").read_text())
    assert planned["planned"]["create_user"] == N

    first = ws.cli("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert_pluvo_matches(sandbox, day1)
    # Departments go round six by six: HR holds exactly every sixth person.
    assert members(sandbox, "dept-hr") == {ref_of(n) for n in range(0, N, 6)}

    # A member added by hand in Pluvo to a group the engine owns.
    assert sandbox.control.add_member("dept-hr", "FOREIGN-1")

    # Day 2: joiners, leavers, renames, email changes, department moves, title changes.
    day2 = {n: employee(n) for n in range(N)}
    leavers = list(range(10, 50))
    for n in leavers:
        del day2[n]
    for n in range(N, N + 50):
        day2[n] = employee(n)
    renamed = range(100, 130)
    for n in renamed:
        day2[n]["Achternaam"] = f"Getrouwd{n}"
    emails = range(200, 220)
    for n in emails:
        day2[n]["E-mailadres"] = f"New.Address{n}@Voorbeeld-BV.nl"
    moved = range(300, 330)
    for n in moved:
        day2[n]["Afdeling"] = "Marketing" if day2[n]["Afdeling"] != "Marketing" else "ICT"
    retitled = range(400, 430)
    for n in retitled:
        day2[n]["Functie"] = "Teamleider"
    rows2 = list(day2.values())
    ws.write_hr(reversed(rows2))  # order of rows must not matter

    plan2 = ws.cli("plan", "--out", "plan2.json", verbose=True)
    assert plan2.returncode == 0, plan2.stderr
    counts = json.loads((ws.root / "plan2.json").read_text())["planned"]
    assert counts["create_user"] == 50
    assert counts["archive_user"] == len(leavers)
    assert counts["update_user"] == len(renamed) + len(emails)
    assert "Achternaam" not in plan2.stdout  # fields are named as in Pluvo
    assert "name: 'René de Tester103' → 'René de Getrouwd103'   [" in plan2.stdout

    sandbox.control.reset_counters()
    second = ws.cli("run")
    assert second.returncode == 0, second.stdout + second.stderr
    assert_pluvo_matches(sandbox, rows2)
    users = users_by_ref(sandbox)
    assert all(users[ref_of(n)]["archived"] for n in leavers)
    assert len(users) == N + 50 + 1
    for n in moved:
        dept = "dept-" + day2[n]["Afdeling"].lower()
        assert ref_of(n) in members(sandbox, dept)
        old = "dept-" + employee(n)["Afdeling"].lower().replace("ë", "e")
        assert ref_of(n) not in members(sandbox, old)
    assert "FOREIGN-1" in members(sandbox, "dept-hr"), "a foreign member must be left alone"
    assert users["FOREIGN-1"]["archived"] is False, "a foreign user must never be archived"

    sandbox.control.reset_counters()
    third = ws.cli("run")
    assert third.returncode == 0, third.stderr
    assert mutations(sandbox) == 0, "a converged run sends no mutation"
    assert "0 operation(s)" in third.stdout

    status = ws.cli("status")
    assert status.returncode == 0, status.stderr
    assert f"users: {N + 50 - len(leavers)} active, {len(leavers)} archived" in status.stdout
    history = ws.cli("history")
    assert history.returncode == 0
    assert "no operations" in history.stdout


def test_rehire_is_restored(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = [employee(n) for n in range(30)]
    ws.write_hr(rows)
    assert ws.cli("run").returncode == 0
    ws.write_hr(rows[:-1])
    assert ws.cli("run", "--override", "leavers").returncode == 0
    assert users_by_ref(sandbox)[ref_of(29)]["archived"] is True
    ws.write_hr(rows)
    result = ws.cli("run")
    assert result.returncode == 0, result.stderr
    assert "restore_user" in result.stdout
    assert users_by_ref(sandbox)[ref_of(29)]["archived"] is False
    assert len(users_by_ref(sandbox)) == 30


def test_guards_stop_before_anything_is_applied(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = [employee(n) for n in range(200)]
    ws.write_hr(rows)
    assert ws.cli("run").returncode == 0

    # A truncated export: 40% of the people vanish.
    ws.write_hr(rows[:120])
    sandbox.control.reset_counters()
    stopped = ws.cli("run")
    assert stopped.returncode == 4, stopped.stdout + stopped.stderr
    assert "safety guard 'leavers'" in stopped.stderr
    assert "--override leavers" in stopped.stderr
    assert "safety guard 'source-shrink'" in stopped.stderr
    assert mutations(sandbox) == 0
    assert ws.query("SELECT status FROM runs ORDER BY started_at DESC LIMIT 1") == [("guarded",)]
    assert ws.cli("plan").returncode == 4

    # Header only: the empty-source guard.
    ws.write_hr([])
    empty = ws.cli("run")
    assert empty.returncode == 4
    assert "empty-source" in empty.stderr
    assert mutations(sandbox) == 0

    # Overriding lets the intended mass change through.
    ws.write_hr(rows[:120])
    forced = ws.cli("run", "--override", "leavers", "--override", "source-shrink")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert sum(u["archived"] for u in users_by_ref(sandbox).values()) == 80


def test_changes_guard(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = [employee(n) for n in range(100)]
    ws.write_hr(rows)
    assert ws.cli("run").returncode == 0
    ws.write_config(**{"safety.max_changes": {"count": 10}})
    ws.write_hr([employee(n, Functie="Nieuw") for n in range(100)])
    stopped = ws.cli("run")
    assert stopped.returncode == 4
    assert "safety guard 'changes'" in stopped.stderr


def test_lock_makes_a_second_run_exit_5(sandbox: SandboxServer, ws: Workspace) -> None:
    ws.write_hr([employee(n) for n in range(300)])
    sandbox.control.set_faults(latency=0.05)
    ws.write_config(**{"pluvo.batch_size": 5, "pluvo.concurrency": 1})
    with running(ws, "run") as process:
        wait_for_progress(ws, process, lambda p: p.done >= 5, what="the first run under way")
        second = ws.cli("run")
        first = finish(process)
    assert second.returncode == 5, second.stderr
    assert "holds the lock" in second.stderr
    assert first.returncode == 0, first.stderr[-2000:]


BATCH = 5
USER_BATCHES_SERVED = 10
USER_BATCHES_FAILED = 20


def test_injected_failures_are_recorded_and_fixed_by_next_run(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = [employee(n) for n in range(400)]
    ws.write_hr(rows)
    ws.write_config(**{"pluvo.max_retries": 0, "pluvo.batch_size": BATCH})
    # A counted burst of 503s in the middle of the users phase: after the run's reads,
    # the groups and ten batches of users, twenty batches fail (no retries), then
    # Pluvo answers again. No dice: the same operations fail on every machine.
    plan = ws.cli("plan", "--out", "plan.json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = json.loads((ws.root / "plan.json").read_text())["planned"]
    reads = sandbox.control.counters()["graphql_requests"]
    served = reads + math.ceil(planned["create_group"] / BATCH) + USER_BATCHES_SERVED
    sandbox.control.set_faults(outage_after=served, outage_length=USER_BATCHES_FAILED)

    failed = ws.cli("run", "--out", "failed.json")
    assert failed.returncode == 3, failed.stdout + failed.stderr
    report = json.loads((ws.root / "failed.json").read_text())
    assert report["status"] == "partial"
    transient = [f for f in report["failed"] if f["class"] == "transient"]
    assert len(transient) == USER_BATCHES_FAILED * BATCH
    assert {f["kind"] for f in transient} == {"create_user"}
    not_created = {f["ref"] for f in transient}
    assert len(users_by_ref(sandbox)) == len(rows) - len(not_created)
    assert not_created.isdisjoint(users_by_ref(sandbox))
    # A partial run still tries every phase, but what needs a user that was not created
    # is not sent: each of those users' values is skipped (blocked), and the membership
    # batches go out without them and say so; nothing the burst did not touch fails.
    blocked = ws.query("SELECT kind, ref, error_class FROM operations WHERE status = 'skipped'")
    assert {(kind, why) for kind, _, why in blocked} == {("set_extra_values", "blocked")}
    assert {ref for _, ref, _ in blocked} == not_created
    assert report["skipped"] == len(not_created)
    others = [f for f in report["failed"] if f["class"] != "transient"]
    assert {f["kind"] for f in others} <= {"add_members", "add_managers"}
    assert {f["class"] for f in others} <= {"partial"}
    # Each outcome is in the journal, none left open.
    assert ws.operation_statuses() == {
        "done": sum(report["applied"].values()),
        "failed": len(report["failed"]),
        "skipped": report["skipped"],
    }
    history = ws.cli("history", "--failed")
    assert history.returncode == 0, history.stderr
    assert "partial, exit 3" in history.stdout
    assert "transient" in history.stdout, "history must say which failures are transient"

    heal(sandbox)
    healed = ws.cli("run")
    assert healed.returncode == 0, healed.stdout + healed.stderr
    assert_pluvo_matches(sandbox, rows)
    sandbox.control.reset_counters()
    assert ws.cli("run").returncode == 0
    assert mutations(sandbox) == 0


@pytest.mark.slow
def test_sigkill_at_several_points_converges(sandbox: SandboxServer, ws: Workspace) -> None:
    rows = [employee(n) for n in range(600)]
    ws.write_hr(rows)
    sandbox.control.set_faults(latency=0.02)
    ws.write_config(**{"pluvo.batch_size": 5, "pluvo.concurrency": 2})
    # Points in successive runs: groups, users, users, values, values/memberships.
    killed_at = [kill_after(ws, point) for point in (1, 30, 120, 300, 500)]
    assert len(set(killed_at)) == 5
    # Each run settles the one killed before it; only the last killed run is still open.
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(1,)]
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'aborted'") == [(4,)]

    final = ws.cli("run")
    assert final.returncode == 0, final.stdout + final.stderr
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'running'") == [(0,)]
    assert ws.query("SELECT count(*) FROM runs WHERE status = 'aborted'") == [(5,)]
    assert_pluvo_matches(sandbox, rows)
    assert len(users_by_ref(sandbox)) == len(rows)
    # Users created by a killed run are still the engine's own, not "adopted".
    assert ws.query("SELECT DISTINCT owned FROM users") == [("created",)]
    sandbox.control.reset_counters()
    assert ws.cli("run").returncode == 0
    assert mutations(sandbox) == 0
