"""Logging to stderr, human or JSON, with every known secret scrubbed.

Secrets are registered as soon as they are known (config load, token receipt); the
filter replaces them in every record, so a careless f-string can never leak one.

Every record carries the id of the run in progress (set once per plan, run or
reconcile by `set_run_id`), so the JSON lines of one night's job can be grouped.
Under `--quiet` only warnings and errors pass, plus the records marked `always`
(the `finished` event of a run that changed, failed or rejected something). Python
warnings from libraries are routed through logging too (`py.warnings`), so they obey
the same format and are silent under `--quiet`. While a
progress display is live on the terminal, lines are printed above it through its
console instead of tearing it.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

_secrets: set[str] = set()
_lock = threading.Lock()
REDACTED = "***"

_run_id: ContextVar[str | None] = ContextVar("pluvo_sync_run_id", default=None)
_process_run_id: str | None = None
"""The same id for threads, which start with an empty context (one run per process)."""
_format = "human"
_console: Console | None = None


def register_secret(value: str | None) -> None:
    """Scrub this value from every log record and redact() result from now on."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redacted_json(data: Any, *, piece: int = 1 << 20) -> Iterator[str]:
    """`data` as JSON, secrets scrubbed, in pieces of about `piece` characters.

    A report of a first load runs to hundreds of megabytes: built as one string and
    then redacted, it was there twice at once; indented by the json module's pure
    Python encoder, writing it cost more CPU than applying it. So containers are
    indented two spaces, but each object in a list (an operation, a review line, a
    failure) is one line from the C encoder, and a list may be an iterator, encoded
    as it is consumed. Every JSON string (where a secret would be) lies within one
    token, and pieces are cut only between tokens, so redacting piece by piece
    scrubs exactly what redacting the whole would.
    """
    encoder = json.JSONEncoder(default=_plain, ensure_ascii=False)
    tokens: list[str] = []
    size = 0
    for token in _json_tokens(data, encoder.encode, 0):
        tokens.append(token)
        size += len(token)
        if size >= piece:
            yield redact("".join(tokens))
            tokens.clear()
            size = 0
    if tokens:
        yield redact("".join(tokens))


def _plain(value: Any) -> str:
    """Datetimes, paths and the like as their text; an iterator the writer did not
    reach (one nested in an object written on one line) is a bug, not a string."""
    if isinstance(value, Iterator):
        raise TypeError(f"an iterator inside an object written on one line: {value!r}")
    return str(value)


def _json_tokens(value: Any, encode: Callable[[Any], str], depth: int) -> Iterator[str]:
    inner = "\n" + "  " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            yield "{}"
            return
        separator = "{"
        for key, item in value.items():
            yield f"{separator}{inner}{encode(key if isinstance(key, str) else str(key))}: "
            yield from _json_tokens(item, encode, depth + 1)
            separator = ","
        yield "\n" + "  " * depth + "}"
    elif isinstance(value, list | tuple | Iterator):
        separator = "["
        for item in value:
            yield separator + inner
            if isinstance(item, dict) and not any(isinstance(v, Iterator) for v in item.values()):
                yield encode(item)
            else:
                yield from _json_tokens(item, encode, depth + 1)
            separator = ","
        yield "[]" if separator == "[" else "\n" + "  " * depth + "]"
    else:
        yield encode(value)


def set_run_id(run_id: str | None) -> None:
    """From now on, every log record of this process carries this run id."""
    global _process_run_id
    _run_id.set(run_id)
    _process_run_id = run_id


def current_run_id() -> str | None:
    return _run_id.get() or _process_run_id


def json_format() -> bool:
    """Whether logs are JSON (then every line on stderr must be a JSON object)."""
    return _format == "json"


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if getattr(record, "run_id", None) is None:
            record.run_id = current_run_id()
        return True


class _QuietFilter(logging.Filter):
    """Lets through records at or above `floor`, and those marked `always`."""

    def __init__(self, floor: int) -> None:
        super().__init__()
        self.floor = floor

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.floor or bool(getattr(record, "always", False))


class _FirstLineFilter(logging.Filter):
    """A captured warning without the library's source line that Python appends to it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = record.getMessage().strip().splitlines()[0]
        record.args = None
        return True


_FIELDS = ("run_id", "event", "op", "ref")


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                payload.setdefault(key, value)
        if record.exc_info:
            payload["exception"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(payload, ensure_ascii=False, default=str))


class _StderrHandler(logging.Handler):
    """Writes to the stderr of the moment, or above the live display when one is up."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            console = _console
            if console is not None:
                from rich.text import Text

                console.print(Text(text), soft_wrap=True)
            else:
                stream = sys.stderr
                stream.write(text + "\n")
                stream.flush()
        except Exception:
            self.handleError(record)


def setup_logging(level: str = "INFO", fmt: str = "human", *, quiet: bool = False) -> None:
    """Logs on stderr; `quiet` keeps only warnings, errors and records marked `always`."""
    global _format
    _format = fmt
    handler = _StderrHandler()
    handler.addFilter(_RedactingFilter())
    handler.addFilter(_QuietFilter(logging.WARNING if quiet else logging.NOTSET))
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger("sync")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    _capture_warnings(handler, quiet=quiet)


def _capture_warnings(handler: logging.Handler, *, quiet: bool) -> None:
    """Python warnings (a library's deprecation, say) become log records of `py.warnings`.

    Left to themselves they are written raw to stderr: a line that is not JSON under
    `--log-format json`, and noise in cron's mail under `--quiet`, about a library the
    operator did not choose. Through logging they are JSON lines in JSON mode, ordinary
    warning lines otherwise, and silent under `--quiet` (which keeps the engine's own
    warnings: those are about the operator's data).
    """
    logging.captureWarnings(True)
    captured = logging.getLogger("py.warnings")
    captured.filters[:] = [_FirstLineFilter()]
    captured.handlers[:] = [handler]
    captured.propagate = False
    captured.setLevel(logging.CRITICAL + 1 if quiet else logging.WARNING)


@contextmanager
def above(console: Console) -> Iterator[None]:
    """Print log lines through this console (above its live display) while inside."""
    global _console
    previous, _console = _console, console
    try:
        yield
    finally:
        _console = previous


def print_error(message: str, *, exit_code: int | None = None) -> None:
    """The one fatal line: `pluvo-sync: error: ...`, a JSON object under JSON logs."""
    print_fatal(f"pluvo-sync: error: {message}", exit_code=exit_code)


def print_fatal(line: str, *, exit_code: int | None = None) -> None:
    """A line that ends the command, on stderr whatever the level (JSON under JSON logs)."""
    line = redact(line)
    if json_format():
        fields = {"exit_code": exit_code} if exit_code is not None else {}
        logging.getLogger("sync.cli").error(
            line, extra={"event": "error", "fields": fields, "always": True}
        )
    else:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def event(
    name: str,
    message: str,
    /,
    *,
    level: int = logging.INFO,
    always: bool = False,
    **fields: Any,
) -> None:
    """A structured event: its fields become keys of the JSON line, the message is for
    people. `always` lets it through `--quiet` and a configured level above its own."""
    logger = logging.getLogger("sync.cli")
    if not always and not logger.isEnabledFor(level):
        return
    record = logger.makeRecord(
        logger.name,
        level,
        "(event)",
        0,
        message,
        (),
        None,
        extra={"event": name, "fields": fields, "always": always},
    )
    logger.handle(record)
