"""Sources + mapping files → the desired state.

The order of the steps is the safety argument: every mapping file is validated, then
every source is read and its columns checked, and only then is anything mapped. A
wrong mapping (ConfigError) or an unusable file (SourceError) therefore stops the
run before the diff engine has seen a single row, let alone sent a change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from sync.config import Config
from sync.config.sources import SourceConfig
from sync.core.mapping.mapper import MappingStats, SourceMapping, check_columns, map_source
from sync.core.mapping.merge import merge
from sync.core.mapping.spec import MappingSpec, load_mapping
from sync.core.sources import Source, SourceData, open_source
from sync.model import Desired

log = logging.getLogger(__name__)

Opener = Callable[[SourceConfig], Source]


@dataclass
class Loaded:
    """The desired state plus what the run's report and guards want to know about it."""

    desired: Desired
    stats: dict[str, MappingStats] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    """The opened sources, so the runner can `finalize(applied=...)` them after a run."""


def load(config: Config, *, today: date | None = None, opener: Opener | None = None) -> Loaded:
    """Read, map and merge every source of the config (in config order, earlier wins)."""
    day = today or date.today()
    specs: list[MappingSpec] = [load_mapping(src.mapping) for src in config.sources]

    def default_opener(src: SourceConfig) -> Source:
        return open_source(src, base_dir=config.base_dir)

    open_one = opener or default_opener
    sources = [open_one(src) for src in config.sources]
    datas: list[SourceData] = []
    for src, spec, source in zip(config.sources, specs, sources, strict=True):
        data = source.read()
        check_columns(
            src.name,
            data.columns or list(data.frame.columns),
            spec,
            files=data.files,
            mapping_file=str(src.mapping),
        )
        datas.append(data)

    results: list[SourceMapping] = []
    for src, spec, data in zip(config.sources, specs, datas, strict=True):
        result = map_source(src.name, data.frame, spec, today=day)
        stats = result.stats
        log.info(
            "source %s: %d rows, %d users, %d pre-hires, %d leavers by date, "
            "%d filtered, %d rejected",
            src.name,
            stats.rows,
            stats.users,
            stats.pending,
            stats.ended,
            stats.filtered,
            stats.rejected,
        )
        results.append(result)
    desired = merge(results)
    desired.source_files = {
        src.name: list(d.files) for src, d in zip(config.sources, datas, strict=True)
    }
    return Loaded(desired, {r.source: r.stats for r in results}, sources)


def load_desired(config: Config, *, today: date | None = None) -> Desired:
    """The desired state of every source; ConfigError / SourceError before any mapping."""
    return load(config, today=today).desired


def load_mapping_for(path: Path) -> MappingSpec:
    """Validate one mapping file on its own (for `doctor`)."""
    return load_mapping(path)
