"""The bad-input corpus (tests/data/bad_inputs): each nasty export gives its documented outcome.

Every case starts from the same synced baseline (200 people), replaces the export
with one bad file and runs. Whatever happens must be one of the contract's outcomes
(rows rejected with reasons, a failed run before any change, a guard stop) and never a
traceback, a lost person or a wrong change. The baseline is synced once; each case
gets a copy of its Pluvo state and state store, so the cases stay independent.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.support.workspace import Workspace, employee, make_workspace, ref_of

CORPUS = Path(__file__).resolve().parents[1] / "data" / "bad_inputs"
BASELINE = [employee(n) for n in range(200)]


@dataclass(frozen=True)
class Baseline:
    pluvo: Path
    state_db: Path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """Pluvo and the state store after a clean sync of baseline.csv."""
    root = tmp_path_factory.mktemp("baseline")
    with SandboxServer() as sandbox:
        ws = make_workspace(root / "ws", sandbox.url)
        (ws.root / "hr").mkdir()
        shutil.copy(CORPUS / "baseline.csv", ws.root / "hr" / "hr.csv")
        first = ws.cli("run")
        assert first.returncode == 0, first.stderr
        pluvo = root / "pluvo.json"
        pluvo.write_text(json.dumps(sandbox.control.state()), encoding="utf-8")
    return Baseline(pluvo, ws.state_db)


@dataclass
class Case:
    sandbox: SandboxServer
    ws: Workspace
    before: dict[str, Any] = field(default_factory=dict)

    def run(self, export: str, **config: Any) -> subprocess.CompletedProcess[str]:
        if config:
            self.ws.write_config(**config)
        shutil.copy(CORPUS / export, self.ws.root / "hr" / "hr.csv")
        self.sandbox.control.reset_counters()
        result = self.ws.cli("run", "--out", "report.json")
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        return result

    def report(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.ws.root / "report.json").read_text("utf-8"))
        return data

    def users(self) -> dict[str, dict[str, Any]]:
        return {u["ref"]: u for u in self.sandbox.control.state()["users"]}

    def assert_untouched(self) -> None:
        assert self.sandbox.control.counters()["mutations_total"] == 0
        assert self.sandbox.control.state()["users"] == self.before["users"]
        assert self.sandbox.control.state()["groups"] == self.before["groups"]

    def assert_nobody_archived(self) -> None:
        archived = sorted(ref for ref, u in self.users().items() if u["archived"])
        assert not archived, f"archived by a bad export: {archived}"


@pytest.fixture
def case(baseline: Baseline, tmp_path: Path) -> Iterator[Case]:
    state_file = tmp_path / "pluvo.json"
    shutil.copy(baseline.pluvo, state_file)
    with SandboxServer(state_file=state_file) as sandbox:
        ws = make_workspace(tmp_path / "ws", sandbox.url, state_db=baseline.state_db)
        (ws.root / "hr").mkdir()
        yield Case(sandbox, ws, sandbox.control.state())


def _failed_before_any_change(case: Case, result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert "pluvo-sync: error: source hr:" in result.stderr, result.stderr[-2000:]
    case.assert_untouched()
    return result.stderr


def test_wrong_delimiter_fails_before_any_change(case: Case) -> None:
    pinned = {"name": "hr", "type": "csv", "path": "hr/*.csv", "mapping": "mapping.yaml"}
    result = case.run("wrong_delimiter.csv", sources=[{**pinned, "delimiter": ";"}])
    err = _failed_before_any_change(case, result)
    assert "lacks column(s)" in err


def test_binary_garbage_fails_before_any_change(case: Case) -> None:
    err = _failed_before_any_change(case, case.run("binary_garbage.csv"))
    assert "binary" in err


def test_renamed_column_fails_before_any_change_and_names_it(case: Case) -> None:
    err = _failed_before_any_change(case, case.run("renamed_column.csv"))
    assert "lacks column(s) 'E-mailadres'" in err
    assert "did you mean 'E-mail adres'" in err


def test_header_only_stops_at_the_empty_source_guard(case: Case) -> None:
    result = case.run("header_only.csv")
    assert result.returncode == 4, result.stderr[-2000:]
    assert "safety guard 'empty-source'" in result.stderr
    case.assert_untouched()


def test_half_size_export_stops_at_the_guards(case: Case) -> None:
    result = case.run("half_size.csv")
    assert result.returncode == 4, result.stderr[-2000:]
    assert "safety guard 'leavers'" in result.stderr
    assert "safety guard 'source-shrink'" in result.stderr
    case.assert_untouched()


def test_latin1_export_is_decoded_and_only_joiners_change(case: Case) -> None:
    result = case.run("latin1_accents.csv")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "cp1252" in result.stderr
    report = case.report()
    assert report["planned"].get("update_user", 0) == 0, "decoding changed existing names"
    assert report["applied"]["create_user"] == 5
    users = case.users()
    surnames = ["Müller", "Çelik", "Ångström", "Dæhlie", "Nuñez"]
    for n, surname in zip(range(200, 205), surnames, strict=True):
        row = employee(n)
        expected = " ".join(p for p in (row["Voornaam"], row["Tussenvoegsel"], surname) if p)
        assert users[ref_of(n)]["name"] == expected
    assert users[ref_of(3)]["name"] == "René Tester3"
    assert users[ref_of(4)]["name"] == "Noé de Tester4"
    case.assert_nobody_archived()


def _rejected_lines(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in report["rejected"] if r["severity"] != "warning"]


def test_invalid_emails_are_rejected_and_nobody_is_archived(case: Case) -> None:
    result = case.run("invalid_emails.csv")
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    report = case.report()
    rejected = _rejected_lines(report)
    assert len(rejected) == 20
    assert all("mail" in str(r).lower() for r in rejected), rejected[:3]
    # The report accounts for every row of the export.
    (stats,) = report["mapping"].values()
    assert stats["rejected"] == 20
    outcomes = ("users", "pending", "ended", "filtered", "rejected")
    assert stats["rows"] == sum(stats[k] for k in outcomes) > 20
    case.assert_nobody_archived()
    assert case.users()[ref_of(10)]["email"] == "user10@voorbeeld-bv.nl"


def test_duplicate_refs_are_rejected_and_nobody_is_archived(case: Case) -> None:
    result = case.run("duplicate_refs.csv")
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    rejected = _rejected_lines(case.report())
    # Both rows of each of the five doubled refs, and nothing else.
    assert {str(r.get("ref")) for r in rejected} == {ref_of(n) for n in (3, 50, 51, 120, 199)}
    assert len(rejected) == 10, rejected
    assert all("duplicate" in str(r).lower() for r in rejected), rejected[:3]
    case.assert_nobody_archived()
    users = case.users()
    assert not any(u["name"].startswith("Dubbel") for u in users.values())


def test_truncated_export_fails_before_any_change(case: Case) -> None:
    # A transfer cut inside the last record: the whole file is suspect, so the run stops
    # before any change (README, Reliability) rather than syncing the part that arrived.
    err = _failed_before_any_change(case, case.run("truncated.csv"))
    assert "line 201" in err, err  # the header, then people 0 .. 199: the cut record
    assert "looks truncated" in err, err
    case.assert_nobody_archived()


def test_short_rows_fail_before_any_change_naming_the_line(case: Case) -> None:
    # Two people whose last 3 fields were lost (Extern, Vaardigheden, Status): padded,
    # their empty Status would fail the mapping's `Status: Actief` filter and they would
    # be counted "filtered out", then leave, with no line named. The file fails instead.
    err = _failed_before_any_change(case, case.run("short_rows.csv"))
    assert "hr/hr.csv line 42: 13 fields but the header has 16" in err, err
    assert "missing 'Extern', 'Vaardigheden', 'Status'" in err, err
    assert "1 more short record(s), first on line 43" in err, err
    case.assert_nobody_archived()
    again = case.ws.cli("plan")
    assert again.returncode == 1, again.stderr[-2000:]
    assert "filtered out" not in again.stdout, again.stdout[-2000:]


def test_an_excel_sep_line_is_a_directive_and_nothing_changes(case: Case) -> None:
    result = case.run("excel_sep_line.csv")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert case.report()["planned"] == {}
    case.assert_untouched()


def test_formula_names_come_out_neutralised_in_the_rejected_rows_file(case: Case) -> None:
    result = case.run("formula_names.csv")
    assert result.returncode == 3, result.stdout[-2000:] + result.stderr[-2000:]
    (rejected_file,) = (case.ws.root / "reports").glob("rejected-*.csv")
    with rejected_file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    (row,) = [r for r in rows if r["ref"] == "10990"]
    assert row["reason"].startswith("invalid email '=not-an-email'")
    for cells in rows:
        for cell in cells.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    case.assert_nobody_archived()
