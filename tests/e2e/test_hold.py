"""Holding the risky part of a run for release, through the CLI, against the sandbox.

With `safety.on_exceed: hold`, a half-size export (a truncated file looks exactly like
half the company leaving) applies its joiners and updates, holds every leaver and
exits 7; a later run, even one that overrides the guards, does not archive a held
leaver; `release` of two of them archives exactly those two, as one journaled run
naming who released them and why; and the next run with the full export drops the
held rest without archiving anyone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sync.core.release import who_am_i
from sync.sandbox import SandboxServer
from tests.support.pluvo_state import mutations, users_by_ref
from tests.support.workspace import Workspace, employee, make_workspace, ref_of

N = 60
HALF = 30
JOINERS = (N, N + 1)
RENAMED = (3, 4)
RELEASED = (40, 41)


def _full() -> dict[int, dict[str, str]]:
    return {n: employee(n) for n in range(N)}


def _half(*, bad_row: bool = False) -> list[dict[str, str]]:
    """The first half of day 1, two joiners and two people renamed (and a row with an
    invalid email, which is rejected)."""
    rows = {n: employee(n) for n in range(HALF)}
    for n in JOINERS:
        rows[n] = employee(n)
    for n in RENAMED:
        rows[n]["Achternaam"] = f"Getrouwd{n}"
    if bad_row:
        rows[99] = employee(99, **{"E-mailadres": "not-an-email"})
    return list(rows.values())


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url, **{"safety.on_exceed": "hold"})
    ws.write_hr(_full().values())
    first = ws.cli("run")
    assert first.returncode == 0, first.stdout + first.stderr
    return ws


def _listed(ws: Workspace) -> list[dict[str, Any]]:
    result = ws.cli("held", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def _held(ws: Workspace) -> list[dict[str, Any]]:
    return [row for row in _listed(ws) if row["status"] == "held"]


def _archived(sandbox: SandboxServer) -> set[str]:
    return {ref for ref, user in users_by_ref(sandbox).items() if user["archived"]}


def _gone() -> set[str]:
    return {ref_of(n) for n in range(HALF, N)}


def test_half_export_applies_the_safe_part_and_holds_every_leaver(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    ws.write_hr(_half(bad_row=True))

    plan = ws.cli("plan")
    assert plan.returncode == 3, plan.stdout + plan.stderr  # the rejected row
    # The reader sees the held part first, by name, and why it is held.
    body = plan.stdout.split("In short:", 1)[1]
    assert body.lstrip().startswith(f"{N - HALF} changes held for release, not applied")
    assert "Held for release, not applied (30):" in plan.stdout
    assert "Tester45 <user45@voorbeeld-bv.nl>" in plan.stdout
    assert "safety guard 'leavers'" in plan.stdout
    assert "HELD by safety guard(s)" in plan.stdout

    sandbox.control.reset_counters()
    run = ws.cli("run")
    # A rejected row alone would exit 3 (a success to systemd): the held changes that
    # wait for a person outrank it.
    assert run.returncode == 7, run.stdout + run.stderr
    assert "held for release: 30 change(s)" in run.stdout
    assert "not-an-email" in run.stdout

    users = users_by_ref(sandbox)
    for n in JOINERS:
        assert ref_of(n) in users
        assert not users[ref_of(n)]["archived"]
    for n in RENAMED:
        assert f"Getrouwd{n}" in users[ref_of(n)]["name"]
    assert _archived(sandbox) == set()

    held = _held(ws)
    assert {row["ref"] for row in held} == _gone()
    assert {row["class"] for row in held} == {"leavers"}
    row45 = next(row for row in held if row["ref"] == ref_of(45))
    assert row45["email"] == "user45@voorbeeld-bv.nl"
    assert "gone from the sources" in row45["what"]
    assert row45["why"].startswith("safety guard '")
    assert ws.query("SELECT status, exit_code FROM runs ORDER BY started_at DESC LIMIT 1") == [
        ("held", 7)
    ]
    journaled = ws.query(
        "SELECT count(*) FROM operations o JOIN runs r ON r.id = o.run_id "
        "WHERE r.status = 'held' AND o.kind = 'archive_user'"
    )
    assert journaled == [(0,)]
    report = json.loads(sorted((ws.root / "reports").glob("run-*.json"))[-1].read_text("utf-8"))
    assert report["held"] == 30
    assert report["exit_code"] == 7
    assert {h["operation"]["ref"] for h in report["plan"]["held"]} == _gone()

    status = ws.cli("status", "--json")
    assert json.loads(status.stdout)["held"] == {"total": 30, "leavers": 30}
    explain = ws.cli("explain", ref_of(45))
    assert explain.returncode == 0, explain.stdout + explain.stderr
    held_part = explain.stdout.split("Held for release", 1)[1]
    assert "leaver: held since" in held_part
    assert "why: safety guard '" in held_part


def test_a_saved_plan_holds_what_it_says_and_reconcile_respects_holds(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    ws.write_hr(_half())
    saved = ws.cli("plan", "--out", "plan.json")
    assert saved.returncode == 0, saved.stdout + saved.stderr
    data = json.loads((ws.root / "plan.json").read_text("utf-8"))
    assert {h["operation"]["ref"] for h in data["plan"]["held"]} == _gone()
    run = ws.cli("run", "--plan", "plan.json")
    assert run.returncode == 7, run.stdout + run.stderr
    (run_id,) = ws.query("SELECT id FROM runs WHERE mode = 'run' ORDER BY started_at DESC LIMIT 1")[
        0
    ]
    journal = ws.query("SELECT kind, ref FROM operations WHERE run_id = ? ORDER BY seq", run_id)
    assert journal == [(op["kind"], op["ref"]) for op in data["plan"]["operations"]]
    assert {row["ref"] for row in _held(ws)} == _gone()

    reconcile = ws.cli("reconcile", "--apply")
    assert reconcile.returncode == 7, reconcile.stdout + reconcile.stderr
    assert _archived(sandbox) == set()
    assert {row["ref"] for row in _held(ws)} == _gone()


def test_held_leavers_stay_held_and_release_applies_exactly_those_named(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    ws.write_hr(_half())
    assert ws.cli("run").returncode == 7

    # Overriding the guards lets nothing held through: only a release does.
    again = ws.cli("run", "--override", "all")
    assert again.returncode == 7, again.stdout + again.stderr
    assert _archived(sandbox) == set()
    assert len(_held(ws)) == N - HALF

    unknown = ws.cli("release", ref_of(1), "--reason", "typo")
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "nothing is held for 10001" in unknown.stderr

    sandbox.control.reset_counters()
    names = [ref_of(n) for n in RELEASED]
    release = ws.cli("release", *names, "--reason", "left on 30 Nov, confirmed by HR", "--by", "hr")
    assert release.returncode == 0, release.stdout + release.stderr
    assert _archived(sandbox) == set(names)
    assert mutations(sandbox) == len(names)
    (run_id, message) = ws.query(
        "SELECT id, message FROM runs WHERE mode = 'release' ORDER BY started_at DESC LIMIT 1"
    )[0]
    hr = f"hr (run by {who_am_i()})"  # who said so, and the account that ran it
    assert message == f"released by {hr}: left on 30 Nov, confirmed by HR"
    journal = ws.query(
        "SELECT kind, ref, status FROM operations WHERE run_id = ? ORDER BY ref", run_id
    )
    assert journal == [("archive_user", ref, "done") for ref in sorted(names)]
    closed = ws.query(
        "SELECT ref, status, closed_by, close_reason, closed_by_run FROM held "
        "WHERE status != 'held' ORDER BY ref"
    )
    assert closed == [
        (ref, "released", hr, "left on 30 Nov, confirmed by HR", run_id) for ref in names
    ]
    assert {row["ref"] for row in _held(ws)} == _gone() - set(names)

    # The full export, without the two who really left: the held rest is dropped, and
    # nobody is archived or restored.
    full = _full()
    for n in RELEASED:
        del full[n]
    ws.write_hr([*full.values(), *(employee(n) for n in JOINERS)])
    sandbox.control.reset_counters()
    last = ws.cli("run")
    assert last.returncode == 0, last.stdout + last.stderr
    assert _held(ws) == []
    assert _archived(sandbox) == set(names)
    dropped = ws.query("SELECT count(*) FROM held WHERE status = 'dropped'")
    assert dropped == [(N - HALF - len(names),)]


def test_a_discard_stands_while_the_sources_ask_for_the_same_change(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    """Discarding is a decision about each person's change: later runs set it aside
    (not held again, not applied, whatever the guards make of what is left) while the
    export keeps asking for it, and it ends once the export stops asking."""
    ws.write_hr(_half())
    assert ws.cli("run").returncode == 7
    usage = ws.cli("discard", "--reason", "x")
    assert usage.returncode == 2
    discard = ws.cli("discard", "--all", "--reason", "export was truncated", "--by", "ops")
    assert discard.returncode == 0, discard.stdout + discard.stderr
    assert _held(ws) == []
    assert ws.query("SELECT DISTINCT status, closed_by FROM held") == [
        ("discarded", f"ops (run by {who_am_i()})")
    ]
    assert _archived(sandbox) == set()
    # The export is still half, twice more: the discarded leavers stay active, and the
    # plan says why nobody leaves.
    for _ in range(2):
        again = ws.cli("run")
        assert again.returncode == 0, again.stdout + again.stderr
        assert _held(ws) == []
        assert _archived(sandbox) == set()
        assert "discarded" in again.stdout, again.stdout
    assert ws.query("SELECT count(*) FROM held WHERE ended_at IS NULL") == [(N - HALF,)]
    listed = _listed(ws)
    assert {row["status"] for row in listed} == {"discarded"}
    assert len(listed) == N - HALF
    assert {(row["discarded_by"], row["discarded_because"]) for row in listed} == {
        (f"ops (run by {who_am_i()})", "export was truncated")
    }
    text = ws.cli("held")
    assert "Nothing is held." in text.stdout
    assert f"Discarded, set aside while the sources ask for them: {N - HALF}" in text.stdout
    # Everyone back in the export: the sources no longer ask, so the discards end.
    ws.write_hr([*_full().values(), *(employee(n) for n in JOINERS)])
    back = ws.cli("run")
    assert back.returncode == 0, back.stdout + back.stderr
    assert ws.query("SELECT DISTINCT end_reason FROM held") == [
        ("the sources no longer ask for this change",)
    ]
    assert _archived(sandbox) == set()


def test_safety_hold_holds_a_class_without_any_guard_tripping(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    ws.write_config(**{"safety.hold": ["overwrites"]})
    rows = _full()
    rows[5]["Achternaam"] = "Anders"
    rows[N] = employee(N)
    ws.write_hr(rows.values())
    run = ws.cli("run")
    assert run.returncode == 7, run.stdout + run.stderr
    users = users_by_ref(sandbox)
    assert "Anders" not in users[ref_of(5)]["name"]
    assert ref_of(N) in users
    (row,) = _held(ws)
    assert (row["ref"], row["class"], row["why"]) == (
        ref_of(5),
        "overwrites",
        "safety.hold lists overwrites",
    )
    release = ws.cli("release", ref_of(5), "--reason", "name change confirmed")
    assert release.returncode == 0, release.stdout + release.stderr
    assert "Anders" in users_by_ref(sandbox)[ref_of(5)]["name"]
    assert _held(ws) == []
