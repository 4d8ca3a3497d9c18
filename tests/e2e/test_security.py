"""Secrets never leak into any artefact of a run; private files are private; sandbox on loopback.

The leak test drives the CLI through a full, fault-ridden, verbose run and the
commands an operator runs afterwards, plus runs whose SFTP and database sources fail
to connect (their passwords are in play, and error messages are where they usually
leak), then greps every byte those runs left behind. Host-key checking of SFTP sources
is covered in tests/integration/test_sources_sftp.py (unknown and changed host keys,
pinned fingerprints).
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.support.waiting import wait_until
from tests.support.workspace import ROOT, Workspace, employee, make_workspace, ref_of

SFTP_PASSWORD = "sftp-Pw-7c1e9d1f"
DB_PASSWORD = "db-Pw-41b7e0aa"
CLIENT_SECRET = "sandbox-secret"  # the workspace's env gives the CLI this secret


def _issued_tokens(sandbox: SandboxServer) -> set[str]:
    """Tokens the sandbox handed out (its in-memory table; no API exposes them)."""
    return set(sandbox._tokens)


def _artefacts(ws: Workspace, outputs: list[str]) -> dict[str, bytes]:
    found = {f"output {i}": text.encode() for i, text in enumerate(outputs)}
    for path in ws.root.rglob("*"):
        if path.is_file() and path.suffix != ".yaml":
            found[str(path.relative_to(ws.root))] = path.read_bytes()
    return found


def _failing_sources_config(ws: Workspace) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connections are refused
    ws.write_config(
        sources=[
            {
                "name": "remote",
                "type": "sftp",
                "host": "127.0.0.1",
                "port": port,
                "username": "hr",
                "password": "${E2E_SFTP_PASSWORD}",
                "host_key_fingerprint": "SHA256:" + "A" * 43,
                "path": "/out/*.csv",
                "timeout": 5,
                "mapping": "mapping.yaml",
            },
        ]
    )


def test_no_secret_in_any_artefact(sandbox: SandboxServer, tmp_path: Path) -> None:
    # Enough retries that the 5xx share cannot plausibly fail an operation (0.1 ** 9):
    # the runs end partial for the one invalid row, never for the faults.
    ws = make_workspace(tmp_path / "ws", sandbox.url, **{"pluvo.max_retries": 8})
    rows = [employee(n) for n in range(300)]
    rows.append(employee(999, **{"E-mailadres": "not-an-email"}))
    ws.write_hr(rows)
    sandbox.control.set_faults(token_lifetime=1.0, error_rate=0.1, seed=3)
    outputs: list[str] = []
    tokens: set[str] = set()

    def cli(
        *args: str, env: dict[str, str] | None = None, json_logs: bool = False
    ) -> subprocess.CompletedProcess[str]:
        cmd = ws.command(*args)
        # Debug logging, the most talkative the engine gets, before the subcommand.
        cmd[3:3] = ["-v", "--log-format", "json"] if json_logs else ["-v"]
        result = subprocess.run(
            cmd,
            cwd=ws.root,
            env=env or ws.env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        outputs.extend([result.stdout, result.stderr])
        tokens.update(_issued_tokens(sandbox))
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        return result

    assert cli("plan", "--out", "plan.json").returncode == 3
    (ws.root / "out").mkdir()  # --out writes into a folder that exists, never makes one
    first = cli("run", "--out", "out/run.json")
    assert first.returncode == 3, first.stdout[-2000:] + first.stderr[-2000:]
    report = json.loads((ws.root / "out" / "run.json").read_text(encoding="utf-8"))
    # Partial because of the invalid row alone: everything else was applied.
    assert [r["ref"] for r in report["rejected"]] == [ref_of(999)]
    assert report["failed"] == []
    assert report["skipped"] == 0
    assert report["applied"] == report["planned"]
    assert sandbox.control.counters()["faults"].get("error", 0) > 0, "the faults never fired"
    again = cli("run", json_logs=True)
    assert again.returncode == 3, again.stdout[-2000:] + again.stderr[-2000:]
    cli("status")
    cli("history")
    cli("history", "--failed")
    cli("reconcile", "--out", "drift.json")
    cli("doctor")
    assert tokens, "the runs never obtained a token"
    assert (ws.root / "reports").is_dir()
    assert list((ws.root / "reports").glob("rejected-*.csv"))

    # Sources whose passwords are in play, failing to connect.
    env = {**ws.env(), "E2E_SFTP_PASSWORD": SFTP_PASSWORD}
    _failing_sources_config(ws)
    failed = cli("run", env=env)
    assert failed.returncode == 1, failed.stderr[-2000:]
    db_url = f"postgresql+psycopg://hr:{DB_PASSWORD}@127.0.0.1:1/hr"
    ws.write_config(
        sources=[{"name": "hrdb", "type": "database", "url": "${E2E_DB_URL}", "table": "t",
                  "mapping": "mapping.yaml"}]
    )  # fmt: skip
    failed = cli("run", env={**env, "E2E_DB_URL": db_url})
    assert failed.returncode == 1, failed.stderr[-2000:]

    secrets = {CLIENT_SECRET, SFTP_PASSWORD, DB_PASSWORD, *tokens}
    leaks = [
        (name, secret[:6] + "…")
        for name, data in _artefacts(ws, outputs).items()
        for secret in secrets
        if secret.encode() in data
    ]
    assert not leaks, f"secrets found in artefacts: {leaks}"


def test_reports_and_state_are_private(sandbox: SandboxServer, tmp_path: Path) -> None:
    old = os.umask(0o022)  # a permissive umask: privacy must not depend on the caller's
    try:
        ws = make_workspace(tmp_path / "ws", sandbox.url)
        ws.write_hr([employee(n) for n in range(20)] + [employee(99, **{"E-mailadres": "x"})])
        assert ws.cli("plan", "--out", "plan.json").returncode == 3
        assert ws.cli("run", "--out", "run.json").returncode == 3
    finally:
        os.umask(old)
    files = [
        ws.root / "plan.json",
        ws.root / "run.json",
        *(ws.root / "reports").iterdir(),
        *ws.root.glob("state.db*"),
    ]
    assert any(p.name.startswith("rejected-") for p in files)
    assert any(p.name.startswith("run-") for p in files)
    loose = {str(p.name): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    assert all(mode == "0o600" for mode in loose.values()), loose


def _other_local_address() -> str | None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent; picks the outbound address
        address: str = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_sandbox_binds_to_loopback_by_default(tmp_path: Path) -> None:
    with SandboxServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "sync", "sandbox", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def listening() -> bool:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
            return True

        wait_until(
            listening, what="the sandbox listening on loopback", process=process, interval=0.1
        )
        other = _other_local_address()
        if other is None:
            pytest.skip("no non-loopback address on this machine to probe")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((other, port), timeout=2).close()
    finally:
        process.terminate()
        process.wait(timeout=30)
