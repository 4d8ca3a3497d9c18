"""A throwaway pluvo-sync installation for end-to-end tests: HR data, config, CLI.

The CLI runs as a real subprocess (`python -m sync ...`), against a sandbox reached
over HTTP, with a SQLite state store in the test's folder. HR exports are written
from plain dicts with the headers of the bundled sample, mapped with the bundled
mappings/example.yaml, so the tests exercise the shipped mapping too.
"""

from __future__ import annotations

import csv
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
SECRET_ENV = "PLUVO_E2E_SECRET"
HEADER = [
    "Personeelsnummer", "Voornaam", "Tussenvoegsel", "Achternaam", "E-mailadres", "Afdeling",
    "Functie", "Locatie", "Leidinggevende", "Rol", "Taal", "Datum in dienst",
    "Datum uit dienst", "Extern", "Vaardigheden", "Status",
]  # fmt: skip
DEPARTMENTS = ["HR", "ICT", "Verkoop", "Marketing", "Logistiek", "Financiën"]
LOCATIONS = ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Groningen"]
TITLES = ["Adviseur", "Medewerker", "Specialist", "Planner", "Ontwikkelaar"]


def employee(n: int, **changes: str) -> dict[str, str]:
    """A deterministic, valid employee row numbered n."""
    row = {
        "Personeelsnummer": str(10000 + n),
        "Voornaam": ["Anouk", "Daan", "Zoë", "René", "Noé"][n % 5],
        "Tussenvoegsel": ["", "de", "van der"][n % 3],
        "Achternaam": f"Tester{n}",
        "E-mailadres": f"user{n}@voorbeeld-bv.nl",
        "Afdeling": DEPARTMENTS[n % len(DEPARTMENTS)],
        "Functie": TITLES[n % len(TITLES)],
        "Locatie": LOCATIONS[n % len(LOCATIONS)],
        "Leidinggevende": str(10000 + (n % len(DEPARTMENTS))) if n >= len(DEPARTMENTS) else "",
        "Rol": "",
        "Taal": "NL",
        "Datum in dienst": "01-03-2015",
        "Datum uit dienst": "",
        "Extern": "nee",
        "Vaardigheden": "Excel",
        "Status": "Actief",
    }
    row.update(changes)
    return row


def employees(count: int) -> list[dict[str, str]]:
    """Employees 0 .. count-1."""
    return [employee(n) for n in range(count)]


def ref_of(n: int) -> str:
    return str(10000 + n)


@dataclass(frozen=True)
class Progress:
    """The journal of the run in progress, as another process sees it."""

    open: bool
    """A run is `running` in the store."""
    done: int
    """Its operations finished so far (done or failed)."""
    total: int
    """Its operations journaled (0 while it is still reading and planning)."""
    phase: int | None
    """The highest phase of a finished operation (None before the first one)."""


@dataclass
class Workspace:
    root: Path
    sandbox_url: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def config_file(self) -> Path:
        return self.root / "config.yaml"

    @property
    def state_db(self) -> Path:
        return self.root / "state.db"

    def write_config(self, **overrides: Any) -> None:
        config: dict[str, Any] = {
            "pluvo": {
                "url": self.sandbox_url,
                "client_id": "sandbox-client",
                "client_secret": "${" + SECRET_ENV + "}",
                "batch_size": 25,
                "concurrency": 4,
                "max_retries": 4,
                "backoff_base": 0.05,
                "backoff_max": 0.5,
            },
            "sources": [
                {"name": "hr", "type": "csv", "path": "hr/*.csv", "mapping": "mapping.yaml"}
            ],
            "state": {"url": "sqlite:///state.db"},
            "leavers": {"action": "archive", "grace_runs": 0},
            "safety": {"max_leavers": {"share": 0.05, "count": 200}},
            "report": {"dir": "reports"},
        }
        for dotted, value in overrides.items():
            node = config
            *parents, last = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        self.config_file.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    def write_hr(self, rows: Iterable[dict[str, str]], name: str = "hr.csv") -> Path:
        folder = self.root / "hr"
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.csv"):
            old.unlink()
        path = folder / name
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=HEADER, delimiter=";")
            writer.writeheader()
            writer.writerows(rows)
        return path

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[SECRET_ENV] = "sandbox-secret"
        env.pop("PLUVO_SYNC_CONFIG", None)
        return env

    def command(self, *args: str, verbose: bool = False) -> list[str]:
        flags = ["-v"] if verbose else []
        return [
            sys.executable, "-m", "sync", *flags, *args[:1], "-c", str(self.config_file),
            *args[1:],
        ]  # fmt: skip

    def cli(
        self, *args: str, timeout: float = 300, verbose: bool = False
    ) -> subprocess.CompletedProcess[str]:
        if args[:1] == ("db",):
            cmd = [sys.executable, "-m", "sync", "db", args[1], "-c", str(self.config_file)]
        else:
            cmd = self.command(*args, verbose=verbose)
        return subprocess.run(
            cmd, cwd=self.root, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start a command in the background (see tests.support.waiting.running)."""
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.state_db, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def run_progress(self) -> Progress:
        """Where the running run is; a closed Progress before the journal exists."""
        try:
            running = self.query("SELECT id FROM runs WHERE status = 'running'")
            if not running:
                return Progress(False, 0, 0, None)
            (run_id,) = running[0]
            done, total = self.query(
                "SELECT sum(status IN ('done', 'failed')), count(*) FROM operations "
                "WHERE run_id = ?",
                run_id,
            )[0]
            phase = self.query(
                "SELECT max(phase) FROM operations "
                "WHERE run_id = ? AND status IN ('done', 'failed')",
                run_id,
            )[0][0]
        except sqlite3.OperationalError:  # not migrated yet, or busy: not there yet
            return Progress(False, 0, 0, None)
        return Progress(True, int(done or 0), int(total), phase)

    def journal_progress(self) -> int:
        """Operations done or failed so far in the running run (0 before the journal exists)."""
        return self.run_progress().done

    def operation_statuses(self) -> dict[str, int]:
        """How many journaled operations of all runs are in each status."""
        rows = self.query("SELECT status, count(*) FROM operations GROUP BY status")
        return {str(status): int(count) for status, count in rows}


def make_workspace(
    root: Path,
    sandbox_url: str,
    *,
    state_db: Path | None = None,
    upgrade: bool = True,
    **overrides: Any,
) -> Workspace:
    """A workspace in `root`: the bundled mapping, a config (dotted `overrides`) and a
    state store, migrated by `db upgrade`, copied from `state_db`, or (`upgrade=False`)
    left for the test to create."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "mappings" / "example.yaml", root / "mapping.yaml")
    ws = Workspace(root, sandbox_url)
    ws.write_config(**overrides)
    if state_db is not None:
        shutil.copy(state_db, ws.state_db)
    elif upgrade:
        result = ws.cli("db", "upgrade")
        assert result.returncode == 0, result.stderr
    return ws
