"""The last log line of plan, run and reconcile: what monitoring reads of a run.

In JSON logs it is always the last line (under --quiet only when the run is worth a
word: something changed, failed or was rejected); in human logs an ordinary log line,
left out after an error line, which then has the last word. Presentation, like the
plan's text: the report only supplies the fields (`Report.finished`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sync.errors import ExitCode
from sync.logs import event, json_format, redact

if TYPE_CHECKING:
    from sync.core.report import Report

SHOWN = ("planned", "applied", "failed", "rejected", "held")


def log_finished(report: Report | None, mode: str, code: int, message: str | None) -> None:
    """Log the `finished` event of a command that ended with `code` (and `message`,
    the error it ended on); `report` is None when it stopped before the engine
    returned one, `mode` then names the command."""
    if report is not None:
        fields: dict[str, Any] = report.finished()
    else:
        fields = {"mode": mode, "status": "failed"}
    fields["exit_code"] = code
    if message is not None:
        fields["reason"] = message
    if fields.get("reason"):
        fields["reason"] = redact(fields["reason"])
    if report is None:
        noteworthy = code != ExitCode.OK
    elif code in (report.exit_code, ExitCode.OK):
        noteworthy = report.noteworthy()  # a 3 owed only to known rejections is not
    else:
        noteworthy = True
    counts = ", ".join(
        f"{key} {fields[key]}" for key in SHOWN if key in fields and (key != "held" or fields[key])
    )
    text = f"finished: {fields['status']}, exit {code}" + (f" ({counts})" if counts else "")
    if fields.get("report"):
        text += f"; report {fields['report']}"
    level = logging.INFO  # also for a 3 owed only to known rejections: not news
    if noteworthy and code in (ExitCode.PARTIAL, ExitCode.GUARD, ExitCode.HELD):
        level = logging.WARNING
    elif noteworthy and code in (ExitCode.FAILED, ExitCode.USAGE, ExitCode.LOCKED):
        level = logging.ERROR
    if json_format():
        event("finished", text, level=level, always=noteworthy, **fields)
    elif message is None and not (report is not None and report.guards):
        event("finished", text, level=level, **fields)
