"""Where local CSV exports live: a path or glob beside the config file.

Only *finding* files is done here; parsing is the CsvParser's, so the same rules
apply to a file on disk and one fetched over SFTP.
"""

from __future__ import annotations

import glob
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

from sync.config.paths import resolve_glob
from sync.config.sources import CsvSourceConfig
from sync.core.sources.base import SourceData, concat_frames
from sync.core.sources.csv import CsvParser
from sync.errors import SourceError

log = logging.getLogger(__name__)


def pick_files(matches: list[tuple[str, float]], pick: str) -> list[str]:
    """`newest`: the latest mtime (name breaks ties); `all`: every match, oldest first.

    Oldest first keeps rows in the order the HR system produced them.
    """
    ordered = sorted(matches, key=lambda item: (item[1], item[0]))
    if pick == "newest":
        return [ordered[-1][0]]
    return [name for name, _ in ordered]


def archive_name(directory: Path, name: str) -> Path:
    """A free name in the archive; a clash gets a timestamp so nothing is overwritten."""
    target = directory / name
    if not target.exists():
        return target
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem, dot, suffix = name.rpartition(".")
    if not stem:
        return directory / f"{name}.{stamp}"
    return directory / f"{stem}.{stamp}{dot}{suffix}"


class LocalCsvSource:
    def __init__(self, config: CsvSourceConfig, *, base_dir: Path) -> None:
        self.name = config.name
        self.config = config
        self.pattern = resolve_glob(config.path, base_dir)
        self.parser = CsvParser(
            source=config.name, encoding=config.encoding, delimiter=config.delimiter
        )
        self._read: list[str] = []

    def __repr__(self) -> str:
        return f"LocalCsvSource(name={self.name!r}, path={self.pattern!r})"

    def _matches(self) -> list[tuple[str, float]]:
        matches = []
        for name in glob.glob(self.pattern):
            path = Path(name)
            try:
                if path.is_file():
                    matches.append((name, path.stat().st_mtime))
            except OSError:
                continue
        return matches

    def read(self) -> SourceData:
        matches = self._matches()
        if not matches:
            raise SourceError(f"source {self.name}: no file matched {self.pattern}")
        files = pick_files(matches, self.config.pick)
        parsed = [self.parser.parse_path(Path(f), f) for f in files]
        frame, columns = concat_frames([p.frame for p in parsed])
        for item in parsed:
            log.info(
                "source %s: read %d rows from %s (%s, delimiter %r)",
                self.name,
                len(item.frame),
                item.display,
                item.encoding,
                item.delimiter,
            )
        self._read = files
        return SourceData(name=self.name, frame=frame, files=files, columns=columns)

    def finalize(self, *, applied: bool) -> None:
        """Move the files of an applied run to archive_dir, so the next run sees new ones only."""
        if not applied or self.config.archive_dir is None or not self._read:
            return
        directory = self.config.archive_dir
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name in self._read:
                target = archive_name(directory, Path(name).name)
                shutil.move(name, target)
                log.info("source %s: archived %s to %s", self.name, name, target)
        except OSError as exc:
            raise SourceError(
                f"source {self.name}: cannot archive to {directory}: {exc.strerror or exc}"
            ) from None
        self._read = []
