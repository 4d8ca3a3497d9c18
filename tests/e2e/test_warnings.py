"""Third-party warnings never reach the operator's terminal raw.

The installed `pluvo-sync` console script (the one beside this interpreter: the
editable install in the dev environment, the wheel in CI's newest-versions job) runs a
plan from an SFTP source with `PYTHONWARNINGS=default`, so every warning a library
raises is shown. Which ones fire depends on the versions installed (cryptography 51
deprecates DSA, which asyncssh names at import), so the test first asks a bare
interpreter what importing the SFTP stack warns, then insists the CLI turned each of
those into a JSON line under `--log-format json` and printed none of them under
`--quiet`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sync.sandbox import SandboxServer
from tests.integration.conftest import SftpServer, sftp_server
from tests.support.workspace import Workspace, employee, make_workspace

__all__ = ["sftp_server"]  # the loopback SFTP server fixture, used below

pytestmark = [pytest.mark.sftp, pytest.mark.slow]

CLI = Path(sys.executable).with_name("pluvo-sync")


def raw_import_warnings() -> list[str]:
    """The warning messages `import asyncssh` prints on stderr when warnings are shown."""
    probe = (
        "import warnings\n"
        "with warnings.catch_warnings(record=True) as seen:\n"
        "    warnings.simplefilter('default')\n"
        "    import asyncssh\n"
        "for w in seen:\n"
        "    print(str(w.message).splitlines()[0])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return sorted(set(out.splitlines()))


@pytest.fixture
def sftp_ws(tmp_path: Path, sandbox: SandboxServer, sftp_server: SftpServer) -> Workspace:
    ws = make_workspace(tmp_path / "ws", sandbox.url)
    ws.write_hr([employee(n) for n in range(6)])
    exports = sftp_server.root / "exports"
    exports.mkdir()
    shutil.copy(ws.root / "hr" / "hr.csv", exports / "hr.csv")
    ws.write_config(
        sources=[
            {
                "name": "hr",
                "type": "sftp",
                "host": sftp_server.host,
                "port": sftp_server.port,
                "username": sftp_server.username,
                "password": sftp_server.password,
                "known_hosts": str(sftp_server.known_hosts),
                "path": "/exports/*.csv",
                "mapping": "mapping.yaml",
                "timeout": 5,
            }
        ]
    )
    return ws


def installed_cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    assert CLI.exists(), f"no installed console script at {CLI}"
    env = ws.env() | {"PYTHONWARNINGS": "default"}
    env.pop("PYTHONDEVMODE", None)
    return subprocess.run(
        [str(CLI), *args, "-c", str(ws.config_file)],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_logs_carry_library_warnings_as_json_lines(sftp_ws: Workspace) -> None:
    expected = raw_import_warnings()
    result = installed_cli(sftp_ws, "--log-format", "json", "plan")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line on stderr is not JSON: {line!r}")
    warned = {str(r["message"]) for r in records if r.get("logger") == "py.warnings"}
    for message in expected:
        assert any(message in text for text in warned), (message, warned)
    assert any(r.get("event") == "finished" for r in records)


def test_quiet_prints_no_library_warning(sftp_ws: Workspace) -> None:
    expected = raw_import_warnings()
    result = installed_cli(sftp_ws, "-q", "plan")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    for message in expected:
        assert message not in result.stderr


def test_human_logs_show_library_warnings_as_log_lines(sftp_ws: Workspace) -> None:
    """Without --quiet they are still shown (an operator should hear of a deprecation),
    as ordinary log lines rather than a library's raw source excerpt."""
    expected = raw_import_warnings()
    result = installed_cli(sftp_ws, "plan")
    assert result.returncode == 0, result.stderr
    for message in expected:
        shown = [line for line in result.stderr.splitlines() if message in line]
        assert shown, (message, result.stderr)
        assert all(" WARNING " in line for line in shown), shown
    # one line each: the source line Python appends to a raw warning is dropped
    assert not [line for line in result.stderr.splitlines() if line.startswith("  ")]
