"""Checks that need no Pluvo: mapping files, sources, the state store.

Sources are read for real (file opened, SFTP login with host-key verification,
database query run) because "the file exists" says nothing about whether tonight's
run can parse it; the row count is reported so a truncated export is visible.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from sync.commands.doctor.checks import CheckResult, fail, ok, skip
from sync.config import Config
from sync.core.load import load_mapping_for
from sync.core.mapping.mapper import check_columns
from sync.core.mapping.spec import MappingSpec
from sync.core.sources import open_source
from sync.errors import SyncError
from sync.state.store import StateStore, current_revision, head_revision, safe_url

UPGRADE = "run `pluvo-sync db upgrade`"


def check_mappings(config: Config) -> tuple[list[CheckResult], dict[str, MappingSpec]]:
    """One line per source's mapping file; the valid specs, by source name."""
    results: list[CheckResult] = []
    specs: dict[str, MappingSpec] = {}
    for src in config.sources:
        name = f"mapping {src.name}"
        try:
            spec = load_mapping_for(src.mapping)
        except SyncError as exc:
            results.append(fail(name, exc.message, exc.hint or f"fix {src.mapping}"))
            continue
        specs[src.name] = spec
        results.append(
            ok(
                name,
                f"{Path(src.mapping).name} valid ({len(spec.required_columns())} columns read)",
            )
        )
    return results, specs


def check_sources(config: Config, specs: dict[str, MappingSpec]) -> list[CheckResult]:
    """Read every source and check it has the columns its mapping reads."""
    results: list[CheckResult] = []
    for src in config.sources:
        name = f"source {src.name}"
        own = f"source {src.name}: "  # the line already names the source
        try:
            data = open_source(src, base_dir=config.base_dir).read()
        except SyncError as exc:
            message = exc.message.removeprefix(own)
            results.append(fail(name, message, exc.hint or _source_remedy(src.type)))
            continue
        columns = data.columns or [str(c) for c in data.frame.columns]
        spec = specs.get(src.name)
        files = ", ".join(Path(f).name for f in data.files) or src.type
        rows = len(data.frame)
        if spec is None:
            results.append(skip(name, f"mapping invalid ({rows} rows read from {files})"))
            continue
        try:
            check_columns(src.name, columns, spec, files=data.files, mapping_file=str(src.mapping))
        except SyncError as exc:
            results.append(fail(name, exc.message.removeprefix(own), exc.hint))
            continue
        results.append(ok(name, f"{rows} rows from {files}; every mapped column present"))
    return results


def _source_remedy(kind: str) -> str:
    return {
        "csv": "check sources[].path (relative to the config file) and the file's permissions",
        "sftp": "check host, port, username, credentials and the pinned host key or known_hosts",
        "database": "check the source's url, table or query, and the database's availability",
    }.get(kind, "check the source's settings")


def _missing_sqlite_file(url: str) -> Path | None:
    """A SQLite store that does not exist yet; opening it would create an empty file."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    path = Path(database)
    return None if path.exists() else path


def _without_db_noise(message: str) -> str:
    """SQLAlchemy appends a documentation link to its errors; it is no remedy."""
    lines = message.splitlines()
    return "\n".join(line for line in lines if "Background on this error at" not in line)


def check_state(config: Config) -> CheckResult:
    """Reachable and at Alembic's head; never creates or migrates anything."""
    url = config.state_url()
    where = safe_url(url)
    missing = _missing_sqlite_file(url)
    if missing is not None:
        return fail("state store", f"{where}: the database file does not exist yet", UPGRADE)
    try:
        store = StateStore(url)
    except SyncError as exc:
        return fail("state store", exc.message, exc.hint or "check state.url")
    try:
        current = current_revision(store.engine)
        head = head_revision()
    except SyncError as exc:
        message = _without_db_noise(exc.message)
        return fail("state store", message, exc.hint or "check state.url and the database")
    finally:
        store.close()
    if current is None:
        return fail("state store", f"{where} is empty (not migrated; head is {head})", UPGRADE)
    if current != head:
        return fail("state store", f"{where} is at revision {current}, expected {head}", UPGRADE)
    return ok("state store", f"{where} reachable, at revision {head} (current)")
