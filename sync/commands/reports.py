"""Keeping the report folder from growing without bound.

Every run writes its JSON report (and the rejected rows) there; a first run over
20,000 people writes tens of megabytes of personal data, every night adds more. After
a report is written, the files this tool wrote there that are older than
`report.keep_days` are deleted. Only names the tool itself gives are touched
(`run-<id>.json`, `reconcile-<id>.json`, `release-<id>.json`, `rejected-<id>.csv`,
their `.html`), so a folder shared with other files, or pointed at the wrong place,
loses nothing else.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

log = logging.getLogger(__name__)

_RUN_ID = r"\d{8}T\d{6}-[0-9a-f]{6}"
OWN_FILES = re.compile(
    rf"^(?:(?:run|reconcile|release)-{_RUN_ID}\.(?:json|html)|rejected-{_RUN_ID}\.csv)$"
)
"""The names of the files a run writes to the report folder."""

DAY = 86400.0


def prune_reports(folder: Path, keep_days: float | None, *, now: float | None = None) -> list[Path]:
    """Delete the tool's report files last modified more than `keep_days` days ago.

    Never fails the run: a file that cannot be deleted is logged and left. Returns the
    files deleted.
    """
    if keep_days is None:
        return []
    cutoff = (time.time() if now is None else now) - keep_days * DAY
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        log.warning("report folder %s not pruned: %s", folder, exc.strerror)
        return removed
    for path in sorted(entries):
        if not OWN_FILES.match(path.name):
            continue
        try:
            if not path.is_file() or path.is_symlink() or path.stat().st_mtime >= cutoff:
                continue
            path.unlink()
        except OSError as exc:
            log.warning("old report %s not deleted: %s", path, exc.strerror)
            continue
        removed.append(path)
    if removed:
        log.info("deleted %d report file(s) older than %g day(s)", len(removed), keep_days)
    return removed


def say_written(what: str, path: Path) -> None:
    """One line saying where a file asked for (--out, --html) went: a relative path
    is resolved, so the line is right whatever folder cron started in."""
    log.info("%s written to %s", what, path.resolve())
