"""The command line ends its process without tearing the interpreter down (sync/cli.py
`_leave`), and must end it exactly as the ordinary way would: same exit code, every
line of stdout and stderr written, atexit handlers run, non-daemon threads waited for.
Each test runs `main()` in a fresh interpreter, as the installed command does.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

from sync.sandbox import SandboxServer
from tests.support.cli import invoke
from tests.support.workspace import employees, make_workspace

_MAIN = """
import atexit, sys
atexit.register(lambda: print("atexit ran", file=sys.stderr))
{before}
sys.argv = ["pluvo-sync", *sys.argv[1:]]
from sync.cli import main
main()
"""


def _cli(*args: str, before: str = "", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = _MAIN.format(before=before)
    # Buffered streams, as under cron: what is still in a buffer at the end must be written.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=env,
    )  # fmt: skip


def test_success_keeps_its_output_code_and_atexit_handlers() -> None:
    result = _cli("--version")
    assert result.returncode == 0
    assert "version" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "atexit ran"


def test_an_error_keeps_its_exit_code_and_its_line(tmp_path: Path) -> None:
    result = _cli("plan", "-c", str(tmp_path / "missing.yaml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "missing.yaml" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == "atexit ran"


def test_a_usage_error_keeps_clicks_code() -> None:
    result = _cli("no-such-command")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_output_still_buffered_at_the_end_is_written() -> None:
    # An atexit handler's writes (a coverage report, a library's last words) are the
    # last to reach the buffers; no newline, so no line buffering flushes them either.
    before = "atexit.register(lambda: (sys.stdout.write('x' * 10), sys.stderr.write('y' * 5)))"
    result = _cli("--version", before=before)
    assert result.returncode == 0
    assert "version" in result.stdout
    assert result.stdout.endswith("x" * 10)
    assert "y" * 5 in result.stderr


def test_a_running_non_daemon_thread_is_waited_for() -> None:
    before = (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done'))).start()"
    )
    result = _cli("--version", before=before)
    assert result.returncode == 0
    assert "thread done" in result.stdout


def test_a_plan_called_in_process_leaves_the_collector_on(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    # Only a plan the process ends with may leave the cyclic collector off.
    ws = make_workspace(tmp_path, sandbox.url)
    ws.write_hr(employees(3))
    assert gc.isenabled()
    result = invoke(ws, "plan")
    assert result.exit_code == 0, result.stderr
    assert gc.isenabled()
