"""The production files in deploy/ work as shipped: the systemd units pass
`systemd-analyze verify`, the cron line and the unit run real options of the CLI with
the secrets of the env file, and the README shows these very files."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICE = DEPLOY / "pluvo-sync.service"
TIMER = DEPLOY / "pluvo-sync.timer"
CRON = DEPLOY / "pluvo-sync.cron"
ENV = DEPLOY / "pluvo-sync.env.example"

BINARY = "/usr/local/bin/pluvo-sync"
CONFIG = "/etc/pluvo-sync/config.yaml"
ENV_FILE = "/etc/pluvo-sync/pluvo-sync.env"
STATE_DIR = "/var/lib/pluvo-sync"
ASSIGNMENT = re.compile(r"^([A-Z_][A-Z0-9_]*)='([^']*)'$")
"""The one line form systemd's EnvironmentFile= and sh's `.` read alike."""


def _entries(path: Path) -> list[tuple[str, str, str]]:
    """(section, key, value) of a unit file, repeated keys kept (configparser drops them)."""
    section, found = "", []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.append((section, key.strip(), value.strip()))
    return found


def _values(path: Path, section: str, key: str) -> list[str]:
    return [v for s, k, v in _entries(path) if (s, k) == (section, key)]


def _one(path: Path, section: str, key: str) -> str:
    values = _values(path, section, key)
    assert len(values) == 1, f"{path.name}: [{section}] {key}= set {len(values)} times"
    return values[0]


def _cron_entries() -> list[list[str]]:
    """The job lines of the cron.d file, as its six fields plus the command."""
    jobs = []
    for line in CRON.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        jobs.append(line.split(None, 6))
    return jobs


def _installed_cli() -> list[str]:
    """The pluvo-sync of this environment (its console script, else `python -m sync`)."""
    script = Path(sys.executable).with_name("pluvo-sync")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "sync"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_installed_cli(), *args], capture_output=True, text=True, timeout=120, check=False
    )


def _pluvo_sync_argv(command: str) -> list[str]:
    """The arguments given to pluvo-sync in a shell command line or an ExecStart=."""
    words = shlex.split(command.split(";")[-1])
    at = next(i for i, word in enumerate(words) if word.endswith("/pluvo-sync"))
    assert words[at] == BINARY, f"{command!r}: pluvo-sync is not called as {BINARY}"
    return words[at + 1 :]


def _command_lines() -> dict[str, str]:
    (job,) = _cron_entries()
    return {"service": _one(SERVICE, "Service", "ExecStart"), "cron": job[6]}


def _units_for_this_machine(tmp_path: Path) -> list[Path]:
    """The units as shipped, but for the pluvo-sync this test runs: verify checks that
    ExecStart's program exists, and /usr/local/bin/pluvo-sync need not exist here."""
    program = shutil.which("pluvo-sync", path=str(Path(sys.executable).parent))
    if program is None:
        pytest.skip("no pluvo-sync console script beside this Python to stand in for " + BINARY)
    copies = []
    for unit in (SERVICE, TIMER):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text(encoding="utf-8").replace(BINARY, program), "utf-8")
        copies.append(copy)
    return copies


needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)",
)


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = _units_for_this_machine(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    said = (done.stdout + done.stderr).strip()
    # verify exits 0 on unknown keys and unparsable values, but names the file in a line
    assert done.returncode == 0, said
    assert not [line for line in said.splitlines() if "pluvo-sync." in line], said


@needs_systemd_analyze
def test_service_exposure_is_low(tmp_path: Path) -> None:
    service, _timer = _units_for_this_machine(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(service)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    level = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", done.stdout)
    if level is None:
        pytest.skip(f"this systemd-analyze cannot rate a unit file offline: {done.stderr[:200]}")
    assert float(level.group(1)) <= 2.0, done.stdout


def test_service_is_a_hardened_oneshot_as_its_own_user() -> None:
    service = SERVICE
    assert _one(service, "Service", "Type") == "oneshot"
    assert _one(service, "Service", "User") == "pluvo-sync"
    assert _one(service, "Service", "EnvironmentFile") == ENV_FILE
    assert _one(service, "Service", "SuccessExitStatus") == "3"
    assert _one(service, "Service", "TimeoutStartSec")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "StateDirectory": "pluvo-sync",
        "UMask": "0077",
    }.items():
        assert _one(service, "Service", key) == value, key
    assert STATE_DIR in _values(service, "Service", "ReadWritePaths")
    assert _one(service, "Service", "WorkingDirectory") == STATE_DIR


def test_timer_is_nightly_persistent_and_spread() -> None:
    assert _one(TIMER, "Timer", "OnCalendar")
    assert _one(TIMER, "Timer", "Persistent") == "true"
    assert _one(TIMER, "Timer", "RandomizedDelaySec")
    assert _one(TIMER, "Install", "WantedBy") == "timers.target"
    assert not _values(TIMER, "Timer", "Unit"), "the timer starts the service of its own name"


def test_the_cron_line_is_a_valid_quiet_job_without_flock() -> None:
    (job,) = _cron_entries()
    assert len(job) == 7, job
    minute, hour, *_days, user, command = job
    assert minute.isdigit(), job
    assert hour.isdigit(), job
    assert user == "pluvo-sync"
    assert "%" not in command, "cron turns % into a newline"
    assert "flock" not in command, "the engine has its own lock (exit 5)"
    assert f"set -a; . {ENV_FILE}; set +a;" in command
    assert "--quiet" in _pluvo_sync_argv(command)


@pytest.mark.parametrize("where", ["service", "cron"])
def test_command_lines_name_real_options(where: str) -> None:
    argv = _pluvo_sync_argv(_command_lines()[where])
    assert argv[-1] == "run", argv
    assert argv[argv.index("-c") + 1] == CONFIG
    top, run = _cli("--help"), _cli("run", "--help")
    assert top.returncode == 0, top.stderr
    assert run.returncode == 0, run.stderr
    for word in argv:
        if word.startswith("-"):
            assert re.search(rf"(^|[ ,]){re.escape(word)}\b", top.stdout + run.stdout), word
    # and the CLI itself parses the whole line (an unknown option exits 2)
    parsed = _cli(*argv, "--help")
    assert parsed.returncode == 0, parsed.stderr
    assert "Usage: pluvo-sync run" in parsed.stdout


def test_env_example_reads_the_same_in_systemd_and_sh() -> None:
    assignments = {}
    for line in ENV.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = ASSIGNMENT.match(line)
        assert match, f"{ENV.name}: {line!r} is not NAME='value'"
        assignments[match.group(1)] = match.group(2)
    assert {"PLUVO_CLIENT_ID", "PLUVO_CLIENT_SECRET"} <= set(assignments)
    example = (DEPLOY / "config.example.yaml").read_text(encoding="utf-8")
    assert "${PLUVO_CLIENT_ID}" in example
    assert "${PLUVO_CLIENT_SECRET}" in example

    shown = subprocess.run(
        ["sh", "-c", 'set -a; . "$1"; set +a; exec env', "sh", str(ENV)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    ).stdout
    exported = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert {k: exported.get(k) for k in assignments} == assignments


def test_the_cron_command_hands_the_secrets_and_arguments_to_pluvo_sync(
    tmp_path: Path,
) -> None:
    """The job's own shell text, with the env file and the program moved into tmp_path."""
    (job,) = _cron_entries()
    env_file = tmp_path / "pluvo-sync.env"
    env_file.write_text("PLUVO_CLIENT_ID='id'\nPLUVO_CLIENT_SECRET='s3cr$t #1'\n", "utf-8")
    env_file.chmod(0o600)
    stub = tmp_path / "pluvo-sync"
    stub.write_text(
        '#!/bin/sh\necho "$PLUVO_CLIENT_ID|$PLUVO_CLIENT_SECRET"\nprintf "%s\\n" "$@"\n', "utf-8"
    )
    stub.chmod(0o755)
    command = job[6].replace(ENV_FILE, str(env_file)).replace(BINARY, str(stub))
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},  # cron's own, more or less
    )
    assert done.returncode == 0, done.stderr
    secrets, *argv = done.stdout.splitlines()
    assert secrets == "id|s3cr$t #1"
    assert argv == _pluvo_sync_argv(job[6])


def test_readme_shows_the_shipped_files_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = [b.strip() for b in re.findall(r"^```[a-z]*\n(.*?)^```", readme, re.S | re.M)]
    for path in (SERVICE, TIMER, ENV):
        assert path.read_text(encoding="utf-8").strip() in blocks, f"README lacks {path.name}"
    (job,) = _cron_entries()
    assert any(" ".join(job) in block.splitlines() for block in blocks), "README's cron line"
