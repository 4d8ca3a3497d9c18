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
import signal
import sqlite3
import subprocess
import sys
import time
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


def ref_of(n: int) -> str:
    return str(10000 + n)


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

    def journal_progress(self) -> int:
        """Operations done or failed so far in the running run (0 before the journal exists)."""
        try:
            rows = self.query(
                "SELECT count(*) FROM operations o JOIN runs r ON r.id = o.run_id "
                "WHERE r.status = 'running' AND o.status IN ('done', 'failed')"
            )
        except sqlite3.OperationalError:
            return 0
        return int(rows[0][0])

    def kill_at(self, done_ops: int, *args: str, timeout: float = 120) -> int:
        """Start `run`, SIGKILL it once the journal shows `done_ops` finished; returns them."""
        process = self.start("run", *args)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    raise AssertionError(
                        f"run ended (exit {process.returncode}) before {done_ops} operations: "
                        f"{process.stderr.read() if process.stderr else ''}"
                    )
                progress = self.journal_progress()
                if progress >= done_ops:
                    process.send_signal(signal.SIGKILL)
                    process.wait(timeout=30)
                    return progress
                time.sleep(0.02)
            raise AssertionError("run did not reach the kill point in time")
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            for stream in (process.stdout, process.stderr):
                if stream is not None:
                    stream.close()


def make_workspace(root: Path, sandbox_url: str, **overrides: Any) -> Workspace:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "mappings" / "example.yaml", root / "mapping.yaml")
    ws = Workspace(root, sandbox_url)
    ws.write_config(**overrides)
    result = ws.cli("db", "upgrade")
    assert result.returncode == 0, result.stderr
    return ws
