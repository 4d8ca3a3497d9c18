"""Logs for cron and monitoring: JSON on every line with the run id, --quiet, the fatal
line, the `finished` event, and log lines printed above a live display."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console

from sync import logs
from sync.commands.finished import log_finished
from sync.core.lifecycle import new_run_id


@pytest.fixture(autouse=True)
def _fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """setup_logging configures the process's `sync` logger: put it back afterwards."""
    for name, logger in logging.root.manager.loggerDict.items():
        # An in-process logging.config call elsewhere in the session (import-linter's,
        # in test_layers) disables every logger that existed then.
        if name.startswith("sync") and isinstance(logger, logging.Logger):
            monkeypatch.setattr(logger, "disabled", False)
    root = logging.getLogger("sync")
    saved = (root.handlers[:], root.level, root.propagate, logs.json_format())
    logs.set_run_id(None)  # an in-process run earlier in the session may have set one
    yield
    logs.set_run_id(None)
    handlers, level, propagate, was_json = saved
    logs.setup_logging("INFO", "json" if was_json else "human")
    root.handlers[:], root.level, root.propagate = handlers, level, propagate


def lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.strip()]


def test_every_json_line_carries_the_run_id_once_the_run_has_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup_logging("INFO", "json")
    log = logging.getLogger("sync.test")
    log.info("before the run")
    run_id = new_run_id()
    log.info("during the run")
    log.warning("with %s", "arguments")
    records = lines(capsys.readouterr().err)
    assert "run_id" not in records[0]
    assert [r["run_id"] for r in records[1:]] == [run_id, run_id]
    assert records[2]["message"] == "with arguments"
    assert records[2]["level"] == "warning"


def test_the_run_id_reaches_threads_too(capsys: pytest.CaptureFixture[str]) -> None:
    """Threads start with an empty context; a run has one id in every thread."""
    import threading

    logs.setup_logging("INFO", "json")
    run_id = new_run_id()
    thread = threading.Thread(target=lambda: logging.getLogger("sync.x").info("in a thread"))
    thread.start()
    thread.join()
    assert lines(capsys.readouterr().err)[0]["run_id"] == run_id


def test_the_fatal_line_is_json_under_json_logs(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging("INFO", "json", quiet=True)
    run_id = new_run_id()
    logs.print_error("source hr: no file matched x/*.csv", exit_code=1)
    (record,) = lines(capsys.readouterr().err)
    assert record["message"] == "pluvo-sync: error: source hr: no file matched x/*.csv"
    assert record["level"] == "error"
    assert record["event"] == "error"
    assert record["exit_code"] == 1
    assert record["run_id"] == run_id


def test_the_fatal_line_stays_plain_in_human_logs(capsys: pytest.CaptureFixture[str]) -> None:
    logs.setup_logging("INFO", "human")
    logs.print_error("config file x not found")
    assert capsys.readouterr().err == "pluvo-sync: error: config file x not found\n"


def test_secrets_are_scrubbed_from_event_fields_and_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup_logging("INFO", "json")
    logs.register_secret("hunter2-very-secret")
    logs.event("finished", "done", reason="token hunter2-very-secret refused")
    logs.print_error("bad hunter2-very-secret")
    err = capsys.readouterr().err
    assert "hunter2" not in err
    assert [r["event"] for r in lines(err)] == ["finished", "error"]


def test_event_fields_never_replace_the_line_s_own_keys(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup_logging("INFO", "json")
    logs.event("finished", "finished: ok", exit_code=0, level_hint="x", applied=3)
    (record,) = lines(capsys.readouterr().err)
    assert record["message"] == "finished: ok"
    assert record["level"] == "info"
    assert record["applied"] == 3


def test_quiet_keeps_warnings_errors_and_events_marked_always(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup_logging("INFO", "human", quiet=True)
    log = logging.getLogger("sync.test")
    log.info("read 20 rows")
    logs.event("finished", "nothing changed")
    assert capsys.readouterr().err == ""
    log.warning("settled 1 interrupted run")
    logs.event("finished", "3 changes applied", always=True)
    err = capsys.readouterr().err
    assert "settled 1 interrupted run" in err
    assert "3 changes applied" in err
    assert "read 20 rows" not in err


def test_a_level_above_info_drops_plain_events_but_not_those_marked_always(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup_logging("WARNING", "json")
    logs.event("finished", "quiet night")
    logs.event("finished", "something failed", always=True)
    assert [r["message"] for r in lines(capsys.readouterr().err)] == ["something failed"]


def test_quiet_json_logs_end_with_finished_only_when_the_run_is_worth_a_word(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cron with `--quiet --log-format json`: a night where nothing happened logs
    nothing; one that failed ends with its `finished` event, reason redacted."""
    monkeypatch.setattr(logs, "_secrets", set())
    logs.setup_logging("INFO", "json", quiet=True)
    logs.register_secret("s3cr3t-finish")
    log_finished(None, "run", 0, None)
    assert capsys.readouterr().err == ""
    log_finished(None, "run", 1, "token s3cr3t-finish refused")
    (record,) = lines(capsys.readouterr().err)
    assert record["event"] == "finished"
    assert record["exit_code"] == 1
    assert record["mode"] == "run"
    assert record["reason"] == "token *** refused"
    assert record["message"] == "finished: failed, exit 1"


def test_log_lines_go_through_the_live_console_while_one_is_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.setup_logging("INFO", "human")
    buffer = io.StringIO()
    console = Console(file=buffer, width=200)
    with logs.above(console):
        logging.getLogger("sync.test").info("phase users: 30 operation(s)")
    logging.getLogger("sync.test").info("after")
    assert "phase users: 30 operation(s)" in buffer.getvalue()
    err = capsys.readouterr().err
    assert "phase users" not in err
    assert "after" in err


def test_the_handler_writes_to_the_stderr_of_the_moment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A display that redirects sys.stderr (rich's Live does) still receives log lines."""
    logs.setup_logging("INFO", "human")
    replaced = io.StringIO()
    monkeypatch.setattr("sys.stderr", replaced)
    logging.getLogger("sync.test").info("hello")
    assert "hello" in replaced.getvalue()


REPORT_LIKE: dict[str, Any] = {
    "message": "token s3cr3t-value-42 refused",
    "s3cr3t-value-42": ["a", {"nested": "xs3cr3t-value-42x"}, 42, None],
    "when": datetime(2026, 12, 7, tzinfo=UTC),
    "names": ["Zoë", "René"] * 50,
    "plan": {"operations": [{"kind": "create_user", "ref": str(n)} for n in range(30)]},
    "empty": {"list": [], "dict": {}},
}


@pytest.mark.parametrize("piece", [1, 7, 64, 1 << 20])
def test_reports_written_in_pieces_are_scrubbed_like_the_whole(
    monkeypatch: pytest.MonkeyPatch, piece: int
) -> None:
    """A report is encoded and redacted piece by piece (a first load's runs to hundreds
    of megabytes): whatever the piece size, the text is the whole report's, redacted,
    and it reads back as the data with the secret replaced."""
    monkeypatch.setattr(logs, "_secrets", set())
    logs.register_secret("s3cr3t-value-42")
    whole = logs.redact("".join(logs.redacted_json(REPORT_LIKE, piece=1 << 40)))
    pieces = list(logs.redacted_json(REPORT_LIKE, piece=piece))
    assert "".join(pieces) == whole
    assert "s3cr3t" not in whole
    expected = logs.redact(json.dumps(REPORT_LIKE, default=str, ensure_ascii=False))
    assert json.loads(whole) == json.loads(expected)
    if piece == 1:
        assert len(pieces) > 10


def test_a_report_lists_one_object_per_line_and_streams_iterators() -> None:
    """Operations and review lines are one line each (greppable, and encoded by the
    C encoder); a list given as an iterator is written as the list it yields."""
    data = {
        **REPORT_LIKE,
        "lazy": (x for x in [{"a": 1}, {"b": [2, 3]}]),
        "sections": [{"class": "joiners", "items": (x for x in [{"ref": "1"}])}],
    }
    text = "".join(logs.redacted_json(data))
    lines = text.splitlines()
    assert '      {"kind": "create_user", "ref": "7"},' in lines
    assert '    {"b": [2, 3]}' in lines
    assert '  "names": [' in lines
    assert '    "Zoë",' in lines
    assert json.loads(text)["lazy"] == [{"a": 1}, {"b": [2, 3]}]
    assert json.loads(text)["empty"] == {"list": [], "dict": {}}
    # An object holding an iterator is written out, not on one line as its repr.
    assert json.loads(text)["sections"] == [{"class": "joiners", "items": [{"ref": "1"}]}]
