"""Writing files that hold personal data (reports, plans, rejected rows)."""

from __future__ import annotations

import os
from pathlib import Path

from sync.errors import SyncError


def write_private(path: Path, text: str) -> None:
    """Create or replace `path` readable by the owner only, whatever the umask."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise SyncError(f"cannot write {path}: {exc.strerror}") from None
