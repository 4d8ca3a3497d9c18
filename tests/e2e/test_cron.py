"""The nightly job as cron and monitoring see it, and the same command at a terminal.

`--quiet` prints nothing when nothing happened; JSON logs are JSON on every line (the
fatal one too), carry the run id and end with one `finished` event; old reports are
pruned; `status` and `history` work without Pluvo credentials; the progress display
goes to a terminal's stderr only, never to stdout (checked through a real
pseudo-terminal).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.support.pluvo_state import mutations
from tests.support.workspace import SECRET_ENV, Workspace, employee, make_workspace, ref_of

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
BAR = "━"
DAY = 86400


@pytest.fixture
def ws(sandbox: SandboxServer, tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", sandbox.url)


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line of stderr as JSON (json.loads fails the test on the first that is not)."""
    return [json.loads(line) for line in stderr.splitlines()]


def reports(ws: Workspace) -> list[Path]:
    return sorted((ws.root / "reports").glob("run-*.json"))


def test_quiet_prints_nothing_unless_something_changed_failed_or_was_rejected(
    ws: Workspace,
) -> None:
    rows = [employee(n) for n in range(20)]
    ws.write_hr(rows)
    assert ws.cli("run").returncode == 0

    for command in ("run", "plan"):
        quiet = ws.cli(command, "--quiet")
        assert quiet.returncode == 0, quiet.stderr
        assert (quiet.stdout, quiet.stderr) == ("", ""), f"{command} --quiet printed something"
    upgrade = subprocess.run(
        ws.command("db", "upgrade", "--quiet"),
        cwd=ws.root,
        env=ws.env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (upgrade.returncode, upgrade.stdout, upgrade.stderr) == (0, "", "")

    ws.write_hr([*rows, employee(20)])
    changed = ws.cli("run", "--quiet")
    assert changed.returncode == 0, changed.stderr
    assert re.search(r"^  new person +1$", changed.stdout, re.MULTILINE), changed.stdout
    assert "succeeded (exit 0)" in changed.stdout
    assert " INFO " not in changed.stderr, "INFO logs are suppressed under --quiet"

    ws.write_hr([*rows, employee(20), employee(21, **{"E-mailadres": "not-an-email"})])
    rejected = ws.cli("run", "--quiet")
    assert rejected.returncode == 3, rejected.stderr
    assert "Rejected rows: 1" in rejected.stdout
    assert " INFO " not in rejected.stderr


def test_rows_the_last_run_rejected_too_are_not_news_for_cron(ws: Workspace) -> None:
    """An export that carries the same bad row for weeks: the first run says so (exit 3),
    later ones stay silent under --quiet and `plan --detailed-exitcode` gives 0, until a
    new rejection appears. The row moving down the file does not make it new."""
    rows = [employee(n) for n in range(20)]
    bad = employee(90, **{"E-mailadres": "not-an-email"})
    ws.write_hr([*rows, bad])
    first = ws.cli("run", "--quiet")
    assert first.returncode == 3, first.stderr
    assert "Rejected rows: 1" in first.stdout
    assert "succeeded, 1 row(s) rejected (exit 3)" in first.stdout

    ws.write_hr([employee(30), *rows, bad])  # a joiner above: the bad row is a line lower
    joined = ws.cli("run", "--quiet")
    assert joined.returncode == 3, joined.stderr
    assert re.search(r"^  new person +1$", joined.stdout, re.MULTILINE), joined.stdout
    assert "succeeded, 1 row(s) rejected (0 new) (exit 3)" in joined.stdout

    for command in (("run", "--quiet"), ("plan", "--quiet"), ("plan", "-q", "--detailed-exitcode")):
        quiet = ws.cli(*command)
        assert (quiet.stdout, quiet.stderr) == ("", ""), f"{command} printed something"
        assert quiet.returncode == (0 if "--detailed-exitcode" in command else 3), command
    loud = ws.cli("plan", "--detailed-exitcode")
    assert loud.returncode == 0, loud.stdout
    assert "Rejected rows: 1, 0 new since the last run" in loud.stdout

    worse = employee(91, **{"Taal": "Klingon"})
    ws.write_hr([employee(30), *rows, bad, worse])
    planned = ws.cli("plan", "-q", "--detailed-exitcode")
    assert planned.returncode == 3, planned.stdout
    assert "Rejected rows: 2, 1 new since the last run" in planned.stdout
    assert re.search(r"\(new\)$", planned.stdout, re.MULTILINE), planned.stdout
    assert planned.stdout.count("(new)") == 1, planned.stdout
    rejected = ws.cli("run", "--quiet")
    assert rejected.returncode == 3
    assert "Rejected rows: 2" in rejected.stdout
    report = json.loads(reports(ws)[-1].read_text(encoding="utf-8"))
    assert sorted((r["ref"], r["new"]) for r in report["rejected"]) == [
        (ref_of(90), False),
        (ref_of(91), True),
    ]
    again = ws.cli("run", "--quiet")
    assert (again.returncode, again.stdout, again.stderr) == (3, "", "")


def test_json_logs_of_a_failing_run_parse_line_by_line_and_end_with_finished(
    ws: Workspace,
) -> None:
    ws.write_hr([employee(n) for n in range(20)])
    ok = ws.cli("run", "--log-format", "json")
    assert ok.returncode == 0, ok.stderr
    records = json_lines(ok.stderr)
    (run_id,) = {r["run_id"] for r in records}
    finished = records[-1]
    assert [r for r in records if r.get("event") == "finished"] == [finished]
    assert finished["exit_code"] == 0
    assert finished["status"] == "succeeded"
    assert finished["applied"] == finished["planned"] > 0
    assert finished["report"] == str(ws.root / "reports" / f"run-{run_id}.json")
    assert Path(finished["report"]).exists()

    for old in (ws.root / "hr").glob("*.csv"):
        old.unlink()
    failed = ws.cli("run", "--log-format", "json")
    assert failed.returncode == 1, failed.stderr
    records = json_lines(failed.stderr)
    assert all(r["run_id"] == records[0]["run_id"] != run_id for r in records)
    error, finished = records[-2:]
    assert error["level"] == "error"
    assert error["message"].startswith("pluvo-sync: error: source hr: no file matched")
    assert finished["event"] == "finished"
    assert finished["exit_code"] == 1
    assert finished["status"] == "failed"
    assert "no file matched" in finished["reason"]

    # A configuration error (exit 2) before any run id: JSON all the same.
    ws.config_file.write_text("pluvo: {}\n", encoding="utf-8")
    broken = ws.cli("plan", "--log-format", "json")
    assert broken.returncode == 2
    records = json_lines(broken.stderr)
    assert [r.get("event") for r in records] == ["error", "finished"]
    assert records[-1]["exit_code"] == 2

    # In human logs the fatal line stays as it was, and is the last word.
    human = ws.cli("plan")
    assert human.returncode == 2
    assert human.stderr.startswith(f"pluvo-sync: error: {ws.config_file}: pluvo.url: ")
    assert "finished" not in human.stderr


def test_a_run_stopped_by_a_guard_writes_its_report_and_says_so_in_json(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    rows = [employee(n) for n in range(200)]
    ws.write_hr(rows)
    assert ws.cli("run").returncode == 0
    ws.write_hr(rows[:120])
    sandbox.control.reset_counters()
    stopped = ws.cli("run", "--log-format", "json")
    assert stopped.returncode == 4, stopped.stderr
    assert mutations(sandbox) == 0
    records = json_lines(stopped.stderr)
    error, finished = records[-2:]
    assert error["level"] == "error"
    assert "safety guard 'leavers'" in error["message"]
    assert "--override leavers" in error["message"]
    assert finished["event"] == "finished"
    assert (finished["exit_code"], finished["status"], finished["applied"]) == (4, "guarded", 0)
    assert finished["guards"] >= 1
    report_file = Path(finished["report"])
    assert report_file == reports(ws)[-1]
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert (report["status"], report["exit_code"]) == ("guarded", 4)
    assert any("safety guard 'leavers'" in g for g in report["guards"])
    assert "safety guard 'leavers'" in report["message"]
    assert report["planned"]["archive_user"] == 80

    # --quiet still tells about a stopped run.
    quiet = ws.cli("run", "--quiet")
    assert quiet.returncode == 4
    assert "STOPPED by safety guard" in quiet.stdout
    assert "pluvo-sync: error: safety guard 'leavers'" in quiet.stderr


def _age(path: Path, days: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text("{}", encoding="utf-8")
    then = time.time() - days * DAY
    os.utime(path, (then, then))
    return path


def test_reports_older_than_keep_days_are_pruned_after_run_and_reconcile_apply(
    ws: Workspace,
) -> None:
    folder = ws.root / "reports"
    old = [
        _age(folder / "run-20200101T020000-aaaaaa.json", 91),
        _age(folder / "rejected-20200101T020000-aaaaaa.csv", 91),
        _age(folder / "reconcile-20200101T020000-aaaaaa.json", 91),
    ]
    young = _age(folder / "run-20200301T020000-bbbbbb.json", 89)
    foreign = _age(folder / "budget.xlsx", 1000)
    ws.write_hr([employee(n) for n in range(10)])

    run = ws.cli("run")
    assert run.returncode == 0, run.stderr
    assert not any(p.exists() for p in old), "reports past the default 90 days are deleted"
    assert young.exists()
    assert foreign.exists()
    assert len(reports(ws)) == 2  # the young one and this run's

    ws.write_config(**{"report.keep_days": 30})
    again = _age(folder / "run-20200101T020000-cccccc.json", 31)
    reconciled = ws.cli("reconcile", "--apply")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert not again.exists()
    assert not young.exists()
    assert len(list(folder.glob("reconcile-*.json"))) == 1  # its own, just written
    assert foreign.exists()


def _without_secret(ws: Workspace) -> dict[str, str]:
    env = ws.env()
    env.pop(SECRET_ENV)
    return env


def test_status_and_history_work_offline_without_pluvo_credentials(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    ws.write_hr([employee(n) for n in range(12)])
    assert ws.cli("run").returncode == 0
    sandbox.stop()  # offline: nothing to reach
    env = _without_secret(ws)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ws.command(*args), cwd=ws.root, env=env, capture_output=True, text=True, timeout=120
        )

    status = cli("status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    (last,) = data["runs"]
    assert (last["mode"], last["status"], last["exit_code"]) == ("run", "succeeded", 0)
    assert last["applied"] > 0
    assert (last["failed"], last["rejected"]) == (0, 0)
    assert data["needing_attention"] == {}
    assert data["store"]["users"] == {"active": 12, "archived": 0, "deactivated": 0, "adopted": 0}
    assert data["store"]["groups"] > 0

    text = cli("status")
    assert text.returncode == 0, text.stderr
    assert "users: 12 active, 0 archived" in text.stdout
    history = cli("history", last["id"])
    assert history.returncode == 0, history.stderr
    assert f"Run {last['id']} (run): succeeded" in history.stdout

    plan = cli("plan")  # every other command still needs the secret
    assert plan.returncode == 2
    assert f"environment variable {SECRET_ENV} is not set" in plan.stderr


@dataclass
class TtyRun:
    returncode: int
    stdout: str
    """What went to the file stdout was redirected to."""
    screen: str
    """What the terminal on stderr received, raw."""

    @property
    def text(self) -> str:
        """The screen without escape sequences."""
        return ANSI.sub("", self.screen)

    def segments(self) -> list[str]:
        """The pieces between carriage returns and newlines: what shares a line."""
        return [s for s in re.split(r"[\r\n]+", self.text) if s.strip()]


def run_on_tty(ws: Workspace, *args: str, timeout: float = 240) -> TtyRun:
    """`pluvo-sync ARGS > out.txt` with stderr on a real pseudo-terminal (120x40)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = ws.env()
    env["TERM"] = "xterm-256color"
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS"):
        env.pop(name, None)
    out_file = ws.root / "out.txt"
    with out_file.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            ws.command(*args),
            cwd=ws.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=slave,
        )
    os.close(slave)
    screen = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the terminal closed: the process has ended
                    break
                if not chunk:
                    break
                screen += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(f"{args} did not finish on the terminal: {screen[-2000:]!r}")
        returncode = process.wait(timeout=30)
    finally:
        os.close(master)
    return TtyRun(returncode, out_file.read_text(encoding="utf-8"), screen.decode())


def test_progress_goes_to_a_terminal_s_stderr_and_never_to_redirected_stdout(
    sandbox: SandboxServer, ws: Workspace
) -> None:
    users = 150
    ws.write_hr([employee(n) for n in range(users)])
    ws.write_config(**{"pluvo.batch_size": 5, "pluvo.concurrency": 2})
    sandbox.control.set_faults(latency=0.01)

    first = run_on_tty(ws, "run")
    assert first.returncode == 0, first.text[-3000:]
    assert BAR not in first.stdout, first.stdout[:2000]
    assert "\x1b" not in first.stdout, first.stdout[:2000]
    assert re.search(rf"^  new people +{users}$", first.stdout, re.MULTILINE)
    assert "succeeded (exit 0)" in first.stdout
    # A spinner while sources are read and mapped, then a bar per phase with done/total.
    assert "reading sources and planning" in first.text
    assert re.search(rf"users .*{BAR}.* {users}/{users} ", first.text), first.text[-3000:]
    assert re.search(rf"groups .*{BAR}.* 12/12 ", first.text)
    assert re.search(r"\d+ op/s", first.text)
    # Log lines are printed above the display, never glued to a bar.
    logged = [s for s in first.segments() if " INFO " in s]
    assert any("phase users" in s for s in logged), first.text[-3000:]
    assert all(BAR not in s and s.lstrip()[:2].isdigit() for s in logged), logged

    # On the same terminal: JSON logs draw no bar (every line is JSON), and a quiet
    # run with nothing to do leaves the terminal and the file empty.
    as_json = run_on_tty(ws, "run", "--log-format", "json")
    assert as_json.returncode == 0
    assert BAR not in as_json.screen
    records = [json.loads(line) for line in as_json.screen.splitlines() if line]
    assert records[-1]["event"] == "finished"
    quiet = run_on_tty(ws, "run", "--quiet")
    assert (quiet.returncode, quiet.stdout, quiet.screen) == (0, "", "")
