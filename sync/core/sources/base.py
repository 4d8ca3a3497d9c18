"""What every source adapter hands to the mapping layer.

The mapping layer must not care where rows came from, so every adapter returns the
same shape: raw HR values as strings (never NaN, never numbers, so "00123" survives)
plus `_file`/`_line`, which let a rejected row be traced back to the exact place a
human can open and fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

FILE_COLUMN = "_file"
LINE_COLUMN = "_line"
META_COLUMNS = (FILE_COLUMN, LINE_COLUMN)


@dataclass
class SourceData:
    """The rows of one source.

    `frame` holds one row per data row: every HR column as `str` values in an object
    column ("" for missing), then `_file` (display path/URL) and `_line` (physical line
    where the record starts, header = 1; the 1-based row number for a database).
    A header-only file gives an empty frame: whether an empty source may proceed is
    the run's empty-source guard's decision, not the adapter's.
    """

    name: str
    frame: pd.DataFrame
    files: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)


@runtime_checkable
class Source(Protocol):
    name: str

    def read(self) -> SourceData:
        """All rows of the source; raises SourceError when a file is unusable."""
        ...

    def finalize(self, *, applied: bool) -> None:
        """Called after a real run (never a dry run), e.g. to archive processed files."""
        ...


def empty_frame(columns: list[str]) -> pd.DataFrame:
    """A zero-row frame with the contract's columns and dtypes."""
    data: dict[str, pd.Series] = {c: pd.Series([], dtype=object) for c in columns}
    data[FILE_COLUMN] = pd.Series([], dtype=object)
    data[LINE_COLUMN] = pd.Series([], dtype=np.int64)
    return pd.DataFrame(data)


def with_meta(frame: pd.DataFrame, display: str, lines: np.ndarray) -> pd.DataFrame:
    """Append `_file` and `_line`; the frame's own index is reset to 0..n-1."""
    frame = frame.reset_index(drop=True)
    frame[FILE_COLUMN] = pd.Series([display] * len(frame), dtype=object)
    frame[LINE_COLUMN] = lines.astype(np.int64, copy=False)
    return frame


def concat_frames(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, list[str]]:
    """Stack the frames of several files; a column missing in one file becomes ""."""
    columns: list[str] = []
    seen: set[str] = set()
    for frame in frames:
        for column in frame.columns:
            if column not in seen and column not in META_COLUMNS:
                seen.add(column)
                columns.append(str(column))
    if not frames:
        return empty_frame(columns), columns
    if len(frames) == 1:
        return frames[0], columns
    aligned = []
    for frame in frames:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            frame = frame.copy()
            for column in missing:
                frame[column] = pd.Series([""] * len(frame), dtype=object, index=frame.index)
        aligned.append(frame[[*columns, *META_COLUMNS]])
    return pd.concat(aligned, ignore_index=True), columns
