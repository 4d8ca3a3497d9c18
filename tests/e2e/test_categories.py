"""Pluvo's extra categories against the shipped mapping, through the CLI and the sandbox.

A mistyped category ref or a type Pluvo does not share is a configuration error that
`plan` and `run` report (exit 2, naming the mapping file and key) before anything is
sent; a value naming a choice option Pluvo lacks rejects its row at plan time while
the others sync; a value Pluvo still refuses at run time costs that value only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sync.sandbox import SandboxServer
from sync.sandbox.store import DEFAULT_CATEGORIES, Seed
from tests.support.pluvo_state import mutations, users_by_ref
from tests.support.workspace import Workspace, employee, employees, make_workspace, ref_of

ALL_VALUES = {"department", "job_title", "start_date", "is_external", "location", "skills"}


def categories(**changes: dict[str, Any]) -> list[dict[str, Any]]:
    """The sandbox's six USER categories, some of them changed."""
    return [{**c, **changes.get(c["ref"], {})} for c in DEFAULT_CATEGORIES]


def pluvo_with(make_sandbox: Callable[..., SandboxServer], **changes: dict[str, Any]) -> Any:
    return make_sandbox(seed=Seed(default_categories=False, categories=categories(**changes)))


def edit_mapping(ws: Workspace, old: str, new: str) -> None:
    mapping = ws.root / "mapping.yaml"
    text = mapping.read_text(encoding="utf-8")
    assert old in text
    mapping.write_text(text.replace(old, new, 1), encoding="utf-8")


def runs(ws: Workspace) -> list[tuple[str, int]]:
    return [(str(s), int(c)) for s, c in ws.query("SELECT status, exit_code FROM runs")]


def test_a_mistyped_category_stops_plan_and_run_before_anything_is_sent(
    sandbox: SandboxServer, tmp_path: Path
) -> None:
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr(employees(10))
    edit_mapping(ws, "category: location", "category: locaton")

    for command in ("plan", "run"):
        result = ws.cli(command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        error = result.stderr
        assert str(ws.root / "mapping.yaml") in error, error
        assert "extra[4].category: extra category 'locaton' does not exist in Pluvo" in error
        assert "did you mean 'location'?" in error
    assert mutations(sandbox) == 0
    assert sandbox.control.state()["users"] == []
    assert runs(ws) == [("failed", 2)]


def test_a_type_pluvo_does_not_share_stops_the_plan(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = pluvo_with(make_sandbox, is_external={"categoryType": "STRING"})
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr(employees(10))

    result = ws.cli("plan")

    assert result.returncode == 2, result.stdout + result.stderr
    assert (
        f"mapping {ws.root / 'mapping.yaml'}: extra[3].type: extra category 'is_external' "
        "is STRING in Pluvo, the mapping says boolean"
    ) in result.stderr
    assert mutations(sandbox) == 0


def test_an_option_pluvo_lacks_rejects_its_rows_and_the_others_sync(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = pluvo_with(
        make_sandbox,
        location={"choiceOptions": ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven"]},
    )
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr(employees(10))  # 10004 and 10009 work in Groningen
    groningen = {ref_of(4), ref_of(9)}

    plan = ws.cli("plan", "--out", "plan.json")

    assert plan.returncode == 3, plan.stdout + plan.stderr
    assert mutations(sandbox) == 0
    report = json.loads((ws.root / "plan.json").read_text(encoding="utf-8"))
    rejected = report["rejected"]
    assert {r["ref"] for r in rejected} == groningen
    for r in rejected:
        assert r["file"].endswith("hr.csv")
        assert r["column"] == "Locatie"
        assert r["line"] == int(r["ref"]) - 10000 + 2
        assert "'Groningen'" in r["reason"]
        assert "Pluvo" in r["reason"]
    shown = [line for line in plan.stdout.splitlines() if "hr.csv:6" in line]
    assert shown, plan.stdout
    assert "Locatie" in shown[0]
    assert "'Groningen'" in shown[0]
    assert report["planned"]["create_user"] == 8

    result = ws.cli("run")

    assert result.returncode == 3, result.stdout + result.stderr
    users = users_by_ref(sandbox)
    assert set(users) == {ref_of(n) for n in range(10)} - groningen
    assert all(set(u["extra"]) == ALL_VALUES for u in users.values())
    assert sandbox.control.group("loc-groningen") is None

    sandbox.control.reset_counters()
    again = ws.cli("run")
    assert again.returncode == 3  # still rejected until HR or Pluvo is fixed
    assert mutations(sandbox) == 0


def test_a_value_pluvo_refuses_costs_that_value_only(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    sandbox = pluvo_with(make_sandbox, job_title={"maxLength": 20})
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    rows = employees(10)
    rows[1] = employee(1, Functie="Senior adviseur bedrijfsvoering")
    ws.write_hr(rows)

    plan = ws.cli("plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr

    result = ws.cli("run")

    assert result.returncode == 3, result.stdout + result.stderr
    users = users_by_ref(sandbox)
    assert len(users) == 10
    assert set(users[ref_of(1)]["extra"]) == ALL_VALUES - {"job_title"}
    assert all(set(u["extra"]) == ALL_VALUES for r, u in users.items() if r != ref_of(1))
    stored = {
        c
        for (c,) in ws.query("SELECT category_ref FROM extra_values WHERE user_ref = ?", ref_of(1))
    }
    assert stored == ALL_VALUES - {"job_title"}
    history = ws.cli("history", "--failed")
    assert history.returncode == 0, history.stderr
    assert "1 of 6 value(s)" in history.stdout
    assert "job_title" in history.stdout
    assert "partial" in history.stdout

    sandbox.control.reset_counters()
    again = ws.cli("run")
    assert again.returncode == 3
    assert sandbox.control.counters()["mutations"] == {"updateExtraCategoryValues": 1}
