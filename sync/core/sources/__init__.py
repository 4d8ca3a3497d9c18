"""Source adapters: one `type:` in the config, one adapter class.

Adapters are looked up lazily so that a CSV-only deployment never imports asyncssh
or a database driver.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from sync.config.sources import SourceConfig
from sync.core.sources.base import FILE_COLUMN, LINE_COLUMN, Source, SourceData
from sync.errors import ConfigError

# type -> "module:Class"; the class takes (config, *, base_dir=...).
REGISTRY: dict[str, str] = {
    "csv": "sync.core.sources.local:LocalCsvSource",
    "sftp": "sync.core.sources.sftp:SftpCsvSource",
    "database": "sync.core.sources.database:DatabaseSource",
}


def open_source(config: SourceConfig, *, base_dir: Path) -> Source:
    """The adapter for this config; nothing is read or connected until `read()`."""
    target = REGISTRY.get(config.type)
    if target is None:
        raise ConfigError(f"source {config.name}: unknown type {config.type!r}")
    module_name, _, class_name = target.partition(":")
    cls: Any = getattr(importlib.import_module(module_name), class_name)
    source: Source = cls(config, base_dir=base_dir)
    return source


__all__ = ["FILE_COLUMN", "LINE_COLUMN", "REGISTRY", "Source", "SourceData", "open_source"]
