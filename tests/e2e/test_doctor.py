"""`pluvo-sync doctor` against the sandbox over HTTP: passing, and failing once per check.

Most tests call `run_doctor` in-process (the sandbox still answers over real HTTP,
sources are real files or a real closed port, the state store a real SQLite file);
one runs the CLI as a subprocess to cover the command's wiring and exit code.
"""

from __future__ import annotations

import re
import shutil
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from sync.commands.doctor import run_doctor
from sync.sandbox import SandboxServer
from sync.state.store import StateStore, upgrade
from tests.integration.conftest import SftpServer, sftp_server
from tests.support.workspace import ROOT, SECRET_ENV, Workspace, employee, make_workspace

__all__ = ["sftp_server"]  # the loopback SFTP server fixture, used below

SCHEMA_FILE = ROOT / "sync" / "pluvo" / "schema.graphql"


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated state store, copied into each workspace (migrating costs seconds)."""
    path = tmp_path_factory.mktemp("state") / "state.db"
    store = StateStore(f"sqlite:///{path}")
    try:
        upgrade(store.engine)
    finally:
        store.close()
    return path


@pytest.fixture
def new_workspace(
    migrated_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str, str], Workspace]:
    """A workspace (tests/support/workspace.py), its state store migrated, 12 HR rows."""
    monkeypatch.setenv(SECRET_ENV, "sandbox-secret")
    monkeypatch.delenv("PLUVO_SYNC_CONFIG", raising=False)

    def make(name: str, url: str) -> Workspace:
        workspace = make_workspace(tmp_path / name, url, state_db=migrated_db)
        workspace.write_hr([employee(n) for n in range(12)])
        return workspace

    return make


@pytest.fixture
def ws(sandbox: SandboxServer, new_workspace: Callable[[str, str], Workspace]) -> Workspace:
    return new_workspace("ws", sandbox.url)


def doctor(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, str]]:
    """Exit code and {check name: its line}; every line must be a checklist line."""
    code = run_doctor(ws.config_file, verbose=False)
    out = capsys.readouterr().out
    lines: dict[str, str] = {}
    for line in out.splitlines():
        match = re.match(r"^\[( ok |FAIL|warn|skip)\] ([^:]+): ", line)
        if match:
            lines[match.group(2)] = line
    return code, lines


def status_of(lines: dict[str, str]) -> dict[str, str]:
    return {name: line[1:5].strip() for name, line in lines.items()}


def test_all_checks_pass_through_the_cli(sandbox: SandboxServer, ws: Workspace) -> None:
    result = ws.cli("doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("[")]
    names = [line.split("] ", 1)[1].split(":", 1)[0] for line in lines]
    assert names == [
        "config",
        "mapping hr",
        "source hr",
        "token",
        "scopes",
        "schema",
        "membership results",
        "extra categories",
        "state store",
    ]
    assert all(line.startswith("[ ok ]") for line in lines), result.stdout
    out = result.stdout
    assert "source hr: 12 rows from hr.csv" in out
    assert "membership results: addedIds (newer API)" in out
    assert "the live schema accepts all" in out
    assert "all 6 mapped categories exist" in out
    assert out.rstrip().endswith("doctor: all checks passed")
    assert "sandbox-secret" not in out + result.stderr
    counters = sandbox.control.counters()
    assert counters["mutations_total"] == 0, "doctor must never send a mutation"


def test_invalid_config_fails_and_skips_the_rest(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    ws.write_config(**{"pluvo.batch_size": 0})
    code, lines = doctor(ws, capsys)
    assert code == 1
    # One line naming the file and the key.
    assert lines["config"].startswith(f"[FAIL] config: {ws.config_file}: pluvo.batch_size: ")
    skipped = {k: v for k, v in lines.items() if k != "config"}
    assert skipped
    assert all(v.endswith("skipped: config invalid") for v in skipped.values())


def test_missing_environment_variable_is_a_config_failure(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert f"environment variable {SECRET_ENV} is not set" in lines["config"]


def test_missing_source_file(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    for file in (ws.root / "hr").glob("*.csv"):
        file.unlink()
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["source hr"].startswith("[FAIL] source hr: ")
    assert "hr/*.csv" in lines["source hr"]
    # The other checks still ran.
    states = status_of(lines)
    assert states["token"] == "ok"
    assert states["schema"] == "ok"
    assert states["state store"] == "ok"


def test_source_lacking_a_mapped_column(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    path = ws.root / "hr" / "hr.csv"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("E-mailadres", "Email", 1), encoding="utf-8")
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert "lacks column(s) 'E-mailadres'" in lines["source hr"]


def test_invalid_mapping_file(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    (ws.root / "mapping.yaml").write_text("users: {ref: Nr}\n", encoding="utf-8")
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["mapping hr"].startswith("[FAIL] mapping hr: invalid mapping file")
    assert lines["source hr"].startswith("[skip] source hr: skipped: mapping invalid (12 rows")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.sftp
def test_sftp_unreachable(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    ws.write_config(
        sources=[
            {
                "name": "hr",
                "type": "sftp",
                "host": "127.0.0.1",
                "port": port,
                "username": "hr",
                "password": "sftp-password-123",
                "host_key_fingerprint": "SHA256:" + "A" * 43,
                "path": "/exports/*.csv",
                "mapping": "mapping.yaml",
                "timeout": 5,
            }
        ]
    )
    code, lines = doctor(ws, capsys)
    assert code == 1
    line = lines["source hr"]
    assert line.startswith("[FAIL] source hr: cannot connect to SFTP server"), line
    assert str(port) in line
    assert "host key" in line  # the remedy
    assert "sftp-password-123" not in line


def test_wrong_client_secret(
    ws: Workspace, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRET_ENV, "not-the-secret")
    code = run_doctor(ws.config_file, verbose=True)
    out = capsys.readouterr().out
    assert code == 1
    assert "not-the-secret" not in out
    token = next(line for line in out.splitlines() if " token: " in line)
    assert token.startswith("[FAIL] token: ")
    assert "refused the client credentials of client_id 'sandbox-client'" in token
    assert "check pluvo.client_id and pluvo.client_secret" in token
    for name in ("scopes", "schema", "membership results", "extra categories"):
        assert f"[skip] {name}: skipped: no token" in out
    assert "[ ok ] state store:" in out


def test_client_with_limited_scopes(
    sandbox: SandboxServer, ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    sandbox.control.seed(
        clients=[{"clientId": "reader", "clientSecret": "sandbox-secret", "scopes": ["users.read"]}]
    )
    ws.write_config(**{"pluvo.client_id": "reader"})
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["token"] == "[ ok ] token: obtained for client 'reader'; granted users.read"
    assert lines["scopes"] == (
        "[FAIL] scopes: missing users.write groups.read groups.write extra_categories.write"
        " — ask Pluvo to grant users.write groups.read groups.write extra_categories.write"
        " to the API client 'reader'"
    )
    # Introspection and the category list need no more than users.read.
    assert status_of(lines)["schema"] == "ok"
    assert status_of(lines)["extra categories"] == "ok"


def test_scope_missing_from_config(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    ws.write_config(
        **{"pluvo.scopes": ["users.read", "users.write", "groups.read", "groups.write"]}
    )
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["scopes"].startswith("[FAIL] scopes: missing extra_categories.write — add ")
    assert "add extra_categories.write to pluvo.scopes and ask Pluvo" in lines["scopes"]


@pytest.fixture
def older_schema(tmp_path: Path) -> Path:
    """The contract with sendInvite gone from updateOrCreateUser and addedIds gone."""
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    text, invites = re.subn(
        r"(updateOrCreateUser\(ref: String, email: String, )sendInvite: Boolean, ", r"\1", text
    )
    text, added = re.subn(r"\n  addedIds: \[UUID!\]!", "", text)
    assert invites == 1
    assert added == 1
    path = tmp_path / "older.graphql"
    path.write_text(text, encoding="utf-8")
    return path


def test_different_schema_fails_precisely(
    make_sandbox: Callable[..., SandboxServer],
    older_schema: Path,
    new_workspace: Callable[[str, str], Workspace],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws = new_workspace("older", make_sandbox(schema_file=older_schema).url)

    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["schema"].startswith(
        "[FAIL] schema: updateOrCreateUser: Unknown argument 'sendInvite' on field "
        "'Mutation.updateOrCreateUser'."
    )
    assert lines["membership results"] == (
        "[ ok ] membership results: addedRefs (older API); addedIds not offered"
    )
    # The config still asks for the newer spelling: the engine would send addedIds.
    assert lines["membership setting"].startswith("[FAIL] membership setting: ")
    assert "set pluvo.membership_result_fields: refs" in lines["membership setting"]

    ws.write_config(**{"pluvo.membership_result_fields": "refs"})
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert "membership setting" not in lines
    assert status_of(lines)["membership results"] == "ok"
    assert status_of(lines)["schema"] == "FAIL"


def test_bundled_schema_served_from_a_file_passes(
    make_sandbox: Callable[..., SandboxServer],
    new_workspace: Callable[[str, str], Workspace],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    copy = tmp_path / "same.graphql"
    copy.write_text(SCHEMA_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    ws = new_workspace("same", make_sandbox(schema_file=copy).url)
    code, lines = doctor(ws, capsys)
    assert code == 0, lines


def test_mapped_choice_option_missing_in_pluvo(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = ws.root / "mapping.yaml"
    text = mapping.read_text(encoding="utf-8")
    mapping.write_text(
        text.replace("options: [Amsterdam, Utrecht,", "options: [Amsterdam, Berlin, Utrecht,", 1),
        encoding="utf-8",
    )
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["extra categories"].startswith(
        "[FAIL] extra categories: source hr: extra category 'location' lacks the option(s) "
        "Berlin in Pluvo"
    )


def test_state_store_not_migrated(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ws.state_db}{suffix}").unlink(missing_ok=True)
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["state store"].endswith(
        "the database file does not exist yet — run `pluvo-sync db upgrade`"
    )
    assert not ws.state_db.exists(), "doctor must not create the state store"

    sqlite3.connect(ws.state_db).close()  # an empty database: reachable, never migrated
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert re.search(
        r"\[FAIL\] state store: sqlite:///.*state\.db is empty \(not migrated; head is \w+\)"
        r" — run `pluvo-sync db upgrade`$",
        lines["state store"],
    ), lines["state store"]
    assert sum(status == "FAIL" for status in status_of(lines).values()) == 1


# ------------------------------------------------------------- sources over the network


def sftp_source(server: SftpServer, **changes: object) -> dict[str, object]:
    source: dict[str, object] = {
        "name": "hr",
        "type": "sftp",
        "host": server.host,
        "port": server.port,
        "username": server.username,
        "password": server.password,
        "known_hosts": str(server.known_hosts),
        "path": "/exports/*.csv",
        "mapping": "mapping.yaml",
        "timeout": 5,
    }
    source.update(changes)
    return source


@pytest.fixture
def sftp_ws(ws: Workspace, sftp_server: SftpServer) -> Workspace:
    exports = sftp_server.root / "exports"
    exports.mkdir()
    shutil.copy(ws.root / "hr" / "hr.csv", exports / "hr.csv")
    return ws


@pytest.mark.sftp
def test_sftp_source_passes_with_verified_host_key(
    sftp_ws: Workspace, sftp_server: SftpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    sftp_ws.write_config(sources=[sftp_source(sftp_server)])
    code, lines = doctor(sftp_ws, capsys)
    assert code == 0, lines
    assert lines["source hr"].startswith("[ ok ] source hr: 12 rows from hr.csv")


@pytest.mark.sftp
@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"password": "wrong-sftp-pw"}, "SFTP login refused for user hrsync"),
        ({"known_hosts": None, "host_key_fingerprint": "SHA256:" + "B" * 43}, "host key"),
        ({"path": "/exports/missing-*.csv"}, "no file matched"),
    ],
    ids=["login", "host-key", "no-file"],
)
def test_sftp_source_failures(
    sftp_ws: Workspace,
    sftp_server: SftpServer,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, object],
    expected: str,
) -> None:
    source = {k: v for k, v in sftp_source(sftp_server, **changes).items() if v is not None}
    sftp_ws.write_config(sources=[source])
    code, lines = doctor(sftp_ws, capsys)
    assert code == 1
    assert lines["source hr"].startswith("[FAIL] source hr: "), lines["source hr"]
    assert expected in lines["source hr"]
    assert "wrong-sftp-pw" not in lines["source hr"]
    assert sftp_server.password not in lines["source hr"]


def test_database_source(ws: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    hr_db = ws.root / "hr.db"
    rows = [employee(n) for n in range(5)]
    columns = list(rows[0])
    with sqlite3.connect(hr_db) as conn:
        conn.execute(f"CREATE TABLE staff ({', '.join(f'{c!r} TEXT' for c in columns)})")
        marks = ", ".join("?" for _ in columns)
        conn.executemany(f"INSERT INTO staff VALUES ({marks})", [list(r.values()) for r in rows])
    conn.close()
    source = {"name": "hr", "type": "database", "url": "sqlite:///hr.db", "mapping": "mapping.yaml"}
    ws.write_config(sources=[{**source, "table": "staff"}])
    code, lines = doctor(ws, capsys)
    assert code == 0, lines
    assert lines["source hr"].startswith("[ ok ] source hr: 5 rows from ")

    ws.write_config(sources=[{**source, "query": "SELECT * FROM employees"}])
    code, lines = doctor(ws, capsys)
    assert code == 1
    assert lines["source hr"].startswith("[FAIL] source hr: "), lines["source hr"]
    assert "no such table: employees" in lines["source hr"]


def test_state_store_unreachable_hides_its_password(
    ws: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"postgresql+psycopg://sync:pg-pass-991@127.0.0.1:{closed_port()}/state"
    ws.write_config(**{"state.url": url})
    code, lines = doctor(ws, capsys)
    assert code == 1
    line = lines["state store"]
    assert line.startswith("[FAIL] state store: state store postgresql+psycopg://sync:***@"), line
    assert "unreachable" in line
    assert "pg-pass-991" not in line
