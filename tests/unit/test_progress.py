"""The terminal display of a run: on stderr only when it is a terminal, never on stdout,
a spinner until the first phase reports, then done/total per phase, and log lines
printed above it. (tests/e2e/test_cron.py checks the same through a real terminal.)"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator

import pytest
from rich.console import Console

from sync import logs
from sync.commands.terminal import RunDisplay

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture(autouse=True)
def _fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    root = logging.getLogger("sync")
    saved = (root.handlers[:], root.level, root.propagate)
    _enable_sync_loggers(monkeypatch)
    logs.setup_logging("INFO", "human")
    yield
    root.handlers[:], root.level, root.propagate = saved


def _enable_sync_loggers(monkeypatch: pytest.MonkeyPatch) -> None:
    """An in-process logging.config call elsewhere in the session (import-linter's, in
    test_layers) disables every logger that existed then, ours among them."""
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith("sync") and isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("tty", "quiet", "json_logs", "live"),
    [
        (True, False, False, True),
        (False, False, False, False),  # cron, or stderr redirected to a file
        (True, True, False, False),  # --quiet
        (True, False, True, False),  # JSON logs: stderr holds JSON lines only
    ],
)
def test_live_only_on_a_terminal_s_stderr_and_never_quiet_or_json(
    monkeypatch: pytest.MonkeyPatch, tty: bool, quiet: bool, json_logs: bool, live: bool
) -> None:
    monkeypatch.setattr("sys.stderr", _Tty() if tty else io.StringIO())
    monkeypatch.setattr("sys.stdout", _Tty())  # a terminal on stdout is not enough
    display = RunDisplay.for_terminal("reading", quiet=quiet, json_logs=json_logs)
    assert display.live is live


def test_without_a_terminal_each_finished_phase_is_one_log_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with RunDisplay("reading", live=False) as progress:
        progress("users", 50, 120)
        progress("users", 120, 120)
        progress("memberships", 7, 7)
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = [line.split("INFO", 1)[1].strip() for line in captured.err.splitlines()]
    assert lines == ["users: 120/120 done", "memberships: 7/7 done"]


def test_live_display_shows_a_spinner_then_done_and_total_per_phase(
    capsys: pytest.CaptureFixture[str],
) -> None:
    screen = _Tty()
    console = Console(file=screen, force_terminal=True, width=140, color_system=None)
    with RunDisplay("reading sources and planning", live=True, console=console) as progress:
        progress.refresh()
        spinner = ANSI.sub("", screen.getvalue())
        progress("groups", 12, 12)
        logging.getLogger("sync.core.executor").info("phase users: 300 operation(s)")
        progress("users", 100, 300)
        progress("users", 300, 300)
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", ""), "everything goes through the console"
    assert "reading sources and planning" in spinner
    text = ANSI.sub("", screen.getvalue())
    assert re.search(r"groups\s.*12/12", text)
    assert re.search(r"users\s.*300/300", text)
    # The log line is a line of its own, never glued to a bar.
    segments = [s for s in re.split(r"[\r\n]+", text) if "phase users" in s]
    assert segments
    assert all("━" not in s and "/" not in s.split("phase users")[0] for s in segments)
