"""Paths in a config file are relative to that file, not to the working directory.

Cron runs from an arbitrary directory; resolving against the config keeps a config
and its mappings movable as one folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    path = value.expanduser()
    if base is not None and not path.is_absolute():
        path = Path(base) / path
    return path


ConfigPath = Annotated[Path, AfterValidator(_resolve)]


def resolve_glob(pattern: str, base_dir: Path | None) -> str:
    """A glob pattern relative to the config file's directory."""
    path = Path(pattern).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    return str(path)
