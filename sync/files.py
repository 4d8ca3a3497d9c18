"""Writing files that hold personal data (reports, plans, rejected rows)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from sync.errors import SyncError


def write_private(path: Path, text: str | Iterable[str]) -> None:
    """Create or replace `path` readable by the owner only, whatever the umask.

    `text` may come in pieces (a large report, written as it is encoded)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                handle.writelines(text)
    except OSError as exc:
        raise SyncError(f"cannot write {path}: {exc.strerror}") from None


def copy_private(source: Path, path: Path) -> None:
    """`write_private` with the content of another file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle, source.open("rb") as original:
            shutil.copyfileobj(original, handle)
    except OSError as exc:
        raise SyncError(f"cannot write {path}: {exc.strerror}") from None


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""OWASP's list of first characters a spreadsheet may read as a formula."""


def spreadsheet_safe(value: object) -> object:
    """A cell for a CSV that people open in a spreadsheet: text that would start a
    formula (`=HYPERLINK(...)` in a name from HR) gets a leading `'`, so it shows as
    the text it is; everything else is left as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
