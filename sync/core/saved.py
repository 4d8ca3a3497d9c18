"""Saved plans: what an administrator reviewed, applied exactly, or refused.

`plan --out FILE` writes the report with the plan inside, plus a fingerprint of
everything the plan was computed from: the rows each source file gave, the config
(secrets left out), each mapping file, and the state store's last applied run.
`run --plan FILE` reads the sources again, recomputes the fingerprint under the run
lock and applies the saved operations only when nothing changed; otherwise it is
refused (exit 4) naming what changed. Parts are kept apart so the refusal can say
which one moved: "source hr: hr/hr.csv changed since the plan was made".

The file holds hashes and file names only, never a secret: a hash of the config is
taken with its secret fields left out, and a URL's password hidden.

`plan_hash` identifies the plan: a hash of its operations (re-encoded from their
types, so what is applied is what was hashed) and of its fingerprint. The run that
applies it records it in the runs table.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sync.config import Config
from sync.config.sources import DatabaseSourceConfig, SourceConfig
from sync.core.plan import Plan
from sync.core.sources import FILE_COLUMN, Source, SourceData, open_source
from sync.errors import ConfigError, StalePlanError
from sync.state.store import safe_url

FORMAT = 1
"""The fingerprint's layout; a file of another version is refused, never guessed at."""

UNAFFECTING_SECTIONS = frozenset({"logging", "report"})
"""Config sections that change how a run talks and where it writes its report, never
which operations it sends: editing them does not make a saved plan stale."""


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------ the parts


@dataclass(frozen=True)
class Fingerprint:
    """What a plan was computed from, part by part (each a hash or a run id)."""

    sources: dict[str, dict[str, str]]
    """Per source: per file (as the source names it), a hash of the rows it gave."""
    config: dict[str, str]
    """Per config section (secrets left out): a hash of its canonical content."""
    mappings: dict[str, dict[str, str]]
    """Per source: its mapping file (`file`) and a hash of its bytes (`sha256`)."""
    store: dict[str, str | None] | None
    """The last run that changed the store (`run`, `finished_at`); None for a store
    no run has changed yet."""
    base_dir: str = field(default="", compare=False)
    """The config's folder, to show file names relative to it (not compared)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT,
            "sources": self.sources,
            "config": self.config,
            "mappings": self.mappings,
            "store": self.store,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Fingerprint:
        if data.get("version") != FORMAT:
            raise ValueError(f"fingerprint version {data.get('version')!r}, expected {FORMAT}")
        store = data["store"]
        return cls(
            sources={
                str(k): {str(f): str(h) for f, h in v.items()} for k, v in data["sources"].items()
            },
            config={str(k): str(v) for k, v in data["config"].items()},
            mappings={
                str(k): {str(f): str(h) for f, h in v.items()} for k, v in data["mappings"].items()
            },
            store=None if store is None else {str(k): v for k, v in store.items()},
        )

    def changes_since(self, saved: Fingerprint) -> list[str]:
        """What differs from `saved` (the plan's), each in words; empty when nothing did."""
        out: list[str] = []
        for name in sorted(set(saved.sources) | set(self.sources)):
            out += self._source_changes(name, saved.sources.get(name), self.sources.get(name))
        changed = sorted(
            key
            for key in set(saved.config) | set(self.config)
            if saved.config.get(key) != self.config.get(key)
        )
        if changed:
            out.append(f"config: {', '.join(changed)} changed")
        for name in sorted(set(saved.mappings) | set(self.mappings)):
            before, now = saved.mappings.get(name), self.mappings.get(name)
            if before is None or now is None:
                continue  # a source added or removed: said by the source and config lines
            if before.get("file") != now.get("file"):
                out.append(
                    f"source {name}: mapping is {now.get('file')} now, was {before.get('file')}"
                )
            elif before.get("sha256") != now.get("sha256"):
                out.append(f"mapping {now.get('file')} changed")
        if saved.store != self.store:
            if self.store is None:
                out.append("the state store has no applied run, the plan's had (another store?)")
            else:
                out.append(f"the state store was changed by run {self.store.get('run')}")
        return out

    def _source_changes(
        self, name: str, before: dict[str, str] | None, now: dict[str, str] | None
    ) -> list[str]:
        if before is None:
            return [f"source {name}: new in the config"]
        if now is None:
            return [f"source {name}: no longer in the config"]
        if list(before) != list(now):
            return [
                f"source {name}: reads {self._files(now)} now, the plan read {self._files(before)}"
            ]
        changed = [f for f in now if before[f] != now[f]]
        if changed:
            return [f"source {name}: {self._files(changed)} changed"]
        return []

    def _files(self, files: Any) -> str:
        return ", ".join(_shown(str(f), self.base_dir) for f in files) or "no file"


def _shown(file: str, base_dir: str) -> str:
    """A local file relative to the config's folder when it lies inside it."""
    if base_dir and os.path.isabs(file):
        relative = os.path.relpath(file, base_dir)
        if not relative.startswith(".."):
            return relative
    return file


def config_digests(config: Config) -> dict[str, str]:
    """A hash per config section that can change the plan, secrets left out.

    Taken from the validated config, so comments, key order and spelling of defaults
    do not count; a secret (`SecretStr`) dumps as a mask, and the store's and database
    sources' URLs are hashed with their password hidden (a changed password does not
    change what is planned)."""
    data = config.model_dump(mode="json")
    data["state"]["url"] = safe_url(config.state_url())
    for index, source in enumerate(config.sources):
        if isinstance(source, DatabaseSourceConfig):
            data["sources"][index]["url"] = safe_url(source.url.get_secret_value())
    return {
        key: _sha256(_canonical(value))
        for key, value in sorted(data.items())
        if key not in UNAFFECTING_SECTIONS
    }


def mapping_digests(config: Config) -> dict[str, dict[str, str]]:
    """Each source's mapping file and a hash of its bytes (an unreadable one is left to
    the mapping loader to report)."""
    out: dict[str, dict[str, str]] = {}
    for source in config.sources:
        path = Path(source.mapping)
        try:
            digest = _sha256(path.read_bytes())
        except OSError:
            digest = "unreadable"
        out[source.name] = {"file": _shown(str(path), str(config.base_dir)), "sha256": digest}
    return out


def store_print(last: tuple[str, Any] | None) -> dict[str, str | None] | None:
    """The store's part: the id and finish time of its last applied run."""
    if last is None:
        return None
    run_id, finished = last
    return {"run": run_id, "finished_at": None if finished is None else str(finished)}


def source_digests(data: SourceData) -> dict[str, str]:
    """Per file of a source, a hash of the rows it gave as read (every column, with its
    line numbers), in the order the source read them. Hashing the rows rather than the
    bytes treats a database table and a file alike, and hashes exactly what was mapped.
    """
    frame = data.frame
    columns = _canonical([str(c) for c in frame.columns])
    files = list(data.files)
    if len(frame) == 0:
        return {f: _sha256(columns) for f in files}
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    if FILE_COLUMN in frame.columns and len(files) > 1:
        owner = frame[FILE_COLUMN].to_numpy()
        return {
            f: _sha256(columns + np.ascontiguousarray(rows[owner == f]).tobytes()) for f in files
        }
    digest = _sha256(columns + np.ascontiguousarray(rows).tobytes())
    return dict.fromkeys(files, digest) if files else {"": digest}


class DigestingSource:
    """A source that remembers the hash of the rows it read, for the fingerprint."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.name = source.name
        self.digests: dict[str, str] | None = None

    def __repr__(self) -> str:
        return repr(self.source)

    def read(self) -> SourceData:
        data = self.source.read()
        self.digests = source_digests(data)
        return data

    def finalize(self, *, applied: bool) -> None:
        self.source.finalize(applied=applied)


# ------------------------------------------------------------------ the saved plan


def plan_hash(plan: Plan, fingerprint: Fingerprint) -> str:
    """The plan's identity: its operations and what they were computed from."""
    return _sha256(_canonical({"plan": plan.to_json(), "fingerprint": fingerprint.to_json()}))


def sections(plan: Plan, fingerprint: Fingerprint) -> dict[str, Any]:
    """What `plan --out` adds to the report to make it a saved plan."""
    return {"fingerprint": fingerprint.to_json(), "plan_hash": plan_hash(plan, fingerprint)}


@dataclass(frozen=True)
class SavedPlan:
    file: Path
    plan: Plan
    fingerprint: Fingerprint
    plan_hash: str


def read_saved(path: Path) -> SavedPlan:
    """A saved plan file, checked: ConfigError (exit 2) when it is not one, and
    StalePlanError (exit 4) when its content no longer matches its hash (edited)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read the saved plan {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not a saved plan: not JSON ({exc})") from None
    if not isinstance(data, dict) or "fingerprint" not in data or "plan" not in data:
        raise ConfigError(
            f"{path} is not a saved plan (no plan or fingerprint)",
            hint="write one with `pluvo-sync plan --out FILE.json`",
        )
    try:
        plan = Plan.from_json(data["plan"])
        fingerprint = Fingerprint.from_json(data["fingerprint"])
        recorded = str(data["plan_hash"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"{path} is not a readable saved plan: {exc}") from None
    actual = plan_hash(plan, fingerprint)
    if actual != recorded:
        raise StalePlanError(
            f"the saved plan {path} was edited after it was made (its content does not "
            "match its plan_hash); nothing was applied",
            hint="make and review a new plan with `pluvo-sync plan --out FILE.json`",
        )
    return SavedPlan(path, plan, fingerprint, recorded)


def refuse_if_stale(saved: SavedPlan, current: Fingerprint) -> None:
    """Raise StalePlanError naming every part that changed since the plan was made."""
    changes = current.changes_since(saved.fingerprint)
    if changes:
        raise StalePlanError(
            f"the saved plan {saved.file} is stale, nothing was applied: "
            + "; ".join(changes)
            + " since the plan was made",
            hint="make and review a new plan with `pluvo-sync plan --out FILE.json`",
        )


class Fingerprinter:
    """Takes a fingerprint while a plan is made (or re-made): the mapping files and the
    store's last run first, then the rows the sources give as they are read. A part
    that changes in between is seen as changed by the run (a refusal, never a stale
    plan applied)."""

    def __init__(self, config: Config, last_run: tuple[str, Any] | None) -> None:
        self.config = config
        self.mappings = mapping_digests(config)
        self.store = store_print(last_run)
        self.sources: list[DigestingSource] = []

    def opener(self, source: SourceConfig) -> Source:
        opened = DigestingSource(open_source(source, base_dir=self.config.base_dir))
        self.sources.append(opened)
        return opened

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(
            sources={s.name: dict(s.digests or {}) for s in self.sources},
            config=config_digests(self.config),
            mappings=self.mappings,
            store=self.store,
            base_dir=str(self.config.base_dir),
        )
