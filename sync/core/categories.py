"""The mappings' extra categories held against Pluvo's, before anything is planned.

A mapping's `extra:` entries are validated on their own (sync/core/mapping/spec.py),
but only Pluvo knows which categories exist, their types and their choice options.
A mistyped category ref, or a type that differs from Pluvo's, would otherwise pass
`plan` and then fail `updateExtraCategoryValues` for every user of every run, taking
each user's good values down with the bad one. So `plan`, `run` and `reconcile` read
the organisation's USER categories (one read, needing no write scope; none at all
when no mapping writes a category) and hold every mapped category against them:

- a category Pluvo lacks, one of another type, or one not for users is a
  configuration error naming the mapping file and key (exit 2), raised before the
  diff, so nothing is planned, let alone sent;
- a value naming a choice option Pluvo lacks rejects its row, with file, line,
  column and reason, like the mapper's own rejections (the other rows still sync);
  with `unknown: drop` only that option is left out, with a warning, as the mapper
  leaves out options the mapping does not know.

`compare` is also what `doctor` reports, so the two cannot disagree on what a match is.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import difflib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from sync.config import Config
from sync.core.mapping.spec import ExtraSpec, MappingSpec, load_mapping
from sync.core.mapping.transforms import frame_of
from sync.errors import ConfigError
from sync.hashing import extras_hash_at
from sync.model import ERROR, EXTRAS_HASH, REJECTION_COLUMNS, WARNING, Desired
from sync.pluvo import ops
from sync.pluvo.api import ApiFactory, PluvoApi, pluvo_client
from sync.pluvo.results import ExtraCategory

log = logging.getLogger(__name__)

CONTENT_TYPE = "USER"


@dataclass(frozen=True)
class MappedCategory:
    """One `extra:` entry of one source's mapping, with where it is written."""

    source: str
    mapping_file: str
    index: int
    spec: ExtraSpec

    @property
    def key(self) -> str:
        return f"extra[{self.index}]"

    @property
    def column(self) -> str:
        """What rejections name as the column: the label the mapper gives its problems."""
        spec = self.spec
        return spec.column or spec.template or "(constant)"


@dataclass(frozen=True)
class Mismatch:
    """How a mapped category differs from Pluvo's.

    `blocking` ones (missing, other type, not for users) make every value of the
    category fail, so no run may start; `missing_options` only fail the values that
    use them.
    """

    mapped: MappedCategory
    field: str
    """The mapping key at fault: `category` or `type` (or `options`)."""
    problem: str
    blocking: bool
    missing_options: tuple[str, ...] = ()
    pluvo_options: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.mapped.key}.{self.field}"


@dataclass
class CategoryCheck:
    """What the check did: whether it read Pluvo, and the rows it rejected per source."""

    read: bool = False
    categories: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    dropped: int = 0


def mapped_in(
    mappings: Mapping[str, MappingSpec], files: Mapping[str, str] | None = None
) -> list[MappedCategory]:
    """Every `extra:` entry of the given mappings (source name → spec)."""
    return [
        MappedCategory(source, (files or {}).get(source, source), index, extra)
        for source, spec in mappings.items()
        for index, extra in enumerate(spec.extra)
    ]


def mapped_categories(config: Config) -> list[MappedCategory]:
    """Every `extra:` entry of the config's mappings (already validated by `load`)."""
    found: list[MappedCategory] = []
    for src in config.sources:
        spec = load_mapping(src.mapping)
        found += mapped_in({src.name: spec}, {src.name: str(src.mapping)})
    return found


def compare(
    categories: Sequence[ExtraCategory], mapped: Sequence[MappedCategory]
) -> list[Mismatch]:
    """Every way the mapped categories differ from Pluvo's, in mapping order.

    Types are compared by name (mapping `choice` ~ Pluvo `CHOICE`); options by exact
    text, because values are sent by stringValue (sync/pluvo/ops.py `value_input`).
    """
    by_ref = {c.ref: c for c in categories if c.ref}
    known = sorted(by_ref)
    found: list[Mismatch] = []
    for item in mapped:
        spec = item.spec
        category = by_ref.get(spec.category)
        if category is None:
            guess = _guess(spec.category, known)
            hint = f"did you mean '{guess}'? " if guess else ""
            problem = f"does not exist in Pluvo ({hint}known: {', '.join(known) or 'none'})"
            found.append(Mismatch(item, "category", problem, blocking=True))
            continue
        if category.category_type.upper() != spec.type.upper():
            problem = f"is {category.category_type} in Pluvo, the mapping says {spec.type}"
            found.append(Mismatch(item, "type", problem, blocking=True))
            continue
        if category.for_model_types and CONTENT_TYPE not in category.for_model_types:
            shown = ", ".join(category.for_model_types)
            problem = f"is not for users in Pluvo (it is for {shown})"
            found.append(Mismatch(item, "category", problem, blocking=True))
            continue
        if spec.options:
            present = tuple(o.string_value for o in category.choice_options)
            missing = tuple(o for o in spec.options if o not in present)
            if missing:
                problem = (
                    f"lacks the option(s) {', '.join(missing)} in Pluvo "
                    f"(has: {', '.join(sorted(present)) or 'none'})"
                )
                found.append(
                    Mismatch(item, "options", problem, False, missing, tuple(sorted(present)))
                )
    return found


def _guess(ref: str, known: Sequence[str]) -> str | None:
    folded = {k.casefold(): k for k in known}
    if ref.casefold() in folded:
        return folded[ref.casefold()]
    close = difflib.get_close_matches(ref, known, n=1, cutoff=0.6)
    return close[0] if close else None


class CategoryRead:
    """Pluvo's categories, read in a thread of its own while the sources are read.

    The read is a fixed cost (a token, then one query: round trips, and the client's
    imports) that does not depend on the rows, so `plan` and `run` start it before
    reading the sources instead of after. What the caller sees does not change: its
    outcome, categories or error, is only looked at by `check_categories` once the
    sources have been read and mapped, so a source or mapping error still comes
    first; `cancel` stops a read whose answer will not be asked for (the sources
    failed), closing its connections.
    """

    def __init__(self, config: Config, api_factory: ApiFactory | None = None) -> None:
        self.mapped = mapped_categories(config)
        self._categories: list[ExtraCategory] = []
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[list[ExtraCategory]] | None = None
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        if self.mapped:
            context = contextvars.copy_context()  # the run id, for the client's log lines
            self._thread = threading.Thread(
                target=context.run,
                args=(self._run, config, api_factory),
                name="pluvo-categories",
                daemon=True,
            )
            self._thread.start()

    def _run(self, config: Config, api_factory: ApiFactory | None) -> None:
        async def main() -> list[ExtraCategory]:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            self._started.set()
            return await _read(config, api_factory)

        try:
            self._categories = asyncio.run(main())
        except BaseException as exc:  # handed to the caller's thread by `result`
            self._error = exc
        finally:
            self._started.set()

    def result(self) -> list[ExtraCategory]:
        """The categories, or the read's error raised here, in the caller's thread."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._categories

    def cancel(self) -> None:
        """Stop the read (its answer is not wanted) and wait until it has let go."""
        if self._thread is None:
            return
        self._started.wait()
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            # RuntimeError: the loop closed in between, and the read is over anyway.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(task.cancel)
        self._thread.join()


def check_categories(
    config: Config,
    desired: Desired,
    api_factory: ApiFactory | None = None,
    *,
    read: CategoryRead | None = None,
) -> CategoryCheck:
    """Hold the mappings' categories against Pluvo's: raise ConfigError for a category
    no value of which could land; reject (or trim) the rows using options Pluvo lacks.

    Reads Pluvo once, and not at all when no mapping writes a category; `read` is that
    read already under way (CategoryRead). `desired` is changed in place, as
    adoption's rejections change it.
    """
    if read is None:
        mapped = mapped_categories(config)
        if not mapped:
            return CategoryCheck()
        categories = asyncio.run(_read(config, api_factory))
    else:
        mapped = read.mapped
        if not mapped:
            return CategoryCheck()
        categories = read.result()
    check = CategoryCheck(read=True, categories=len(categories))
    mismatches = compare(categories, mapped)
    blocking = [m for m in mismatches if m.blocking]
    if blocking:
        raise ConfigError(
            _message(blocking),
            hint="fix the mapping's `extra:` entry or the category in Pluvo; nothing was sent",
        )
    for mismatch in mismatches:
        log.warning(
            "mapping %s: %s: extra category '%s' %s",
            mismatch.mapped.mapping_file,
            mismatch.where,
            mismatch.mapped.spec.category,
            mismatch.problem,
        )
    _apply_options(desired, [m for m in mismatches if m.missing_options], check)
    return check


async def _read(config: Config, api_factory: ApiFactory | None) -> list[ExtraCategory]:
    async with (api_factory or pluvo_client)(config) as api:
        return await read_categories(api)


async def read_categories(api: PluvoApi) -> list[ExtraCategory]:
    """The organisation's USER categories; a refused read fails the run like any read."""
    (answer,) = await api.run_calls([ops.list_extra_categories(CONTENT_TYPE)])
    if answer.error is not None:
        raise answer.error
    return [ExtraCategory.parse(c) for c in answer.data or ()]


def _message(blocking: Sequence[Mismatch]) -> str:
    """One line: per mapping file, each key at fault and why."""
    by_file: dict[str, list[str]] = {}
    for m in blocking:
        text = f"{m.where}: extra category '{m.mapped.spec.category}' {m.problem}"
        by_file.setdefault(m.mapped.mapping_file, []).append(text)
    return "; ".join(f"mapping {file}: {'; '.join(items)}" for file, items in by_file.items())


# ---------------------------------------------------------------- values using missing options


def _apply_options(desired: Desired, mismatches: Sequence[Mismatch], check: CategoryCheck) -> None:
    """Reject the rows (or drop the options) that name options Pluvo lacks.

    Only the values of the categories concerned are looked at, once per distinct value.
    """
    values = desired.extra_values
    if not mismatches or values.empty:
        return
    rejections: list[pd.DataFrame] = []
    rejected: dict[str, set[str]] = {}  # source → refs (a row fails once, whatever the count)
    trimmed: dict[int, str] = {}  # row label in extra_values → value without the options
    for mismatch in mismatches:
        mapped = mismatch.mapped
        mask = values["category_ref"].to_numpy(dtype=object) == mapped.spec.category
        if "_source" in values:
            mask &= values["_source"].to_numpy(dtype=object) == mapped.source
        part = values[mask]
        if part.empty:
            continue
        missing = set(mismatch.missing_options)
        unknown = {
            value: [o for o in str(value).split("\n") if o in missing]
            for value in pd.unique(part["value"])
        }
        unknown = {value: options for value, options in unknown.items() if options}
        if not unknown:
            continue
        hit = part[part["value"].isin(list(unknown))]
        drop = mapped.spec.unknown == "drop"
        reasons = [
            _reason(mapped, unknown[value], mismatch.pluvo_options, drop=drop)
            for value in hit["value"]
        ]
        rejections.append(_rejection_rows(mapped, hit, reasons, WARNING if drop else ERROR))
        if drop:
            for label, value in zip(hit.index, hit["value"], strict=True):
                trimmed[label] = "\n".join(o for o in str(value).split("\n") if o not in missing)
            check.dropped += len(hit)
        else:
            rejected.setdefault(mapped.source, set()).update(hit["user_ref"])
    if not rejections:
        return
    rejected_refs = set().union(*rejected.values())
    check.rejected = {source: len(refs) for source, refs in rejected.items()}
    if trimmed:
        _trim(desired, trimmed)
    if rejected_refs:
        _without_users(desired, rejected_refs)
    _add_rejections(desired, rejections)
    log.info(
        "extra categories: %d row(s) rejected and %d value(s) trimmed for options Pluvo lacks",
        len(rejected_refs),
        check.dropped,
    )


def _reason(
    mapped: MappedCategory, options: Sequence[str], pluvo: Sequence[str], *, drop: bool
) -> str:
    quoted = ", ".join(f"'{o}'" for o in options)
    has = ", ".join(pluvo) or "none"
    text = (
        f"choice {quoted} for {mapped.spec.category} does not exist in Pluvo "
        f"(Pluvo's options: {has})"
    )
    return f"{text}; left out (the user still syncs)" if drop else text


def _rejection_rows(
    mapped: MappedCategory, hit: pd.DataFrame, reasons: list[str], severity: str
) -> pd.DataFrame:
    n = len(hit)

    def column(name: str, default: object) -> object:
        return hit[name].to_numpy(dtype=object) if name in hit else np.full(n, default, object)

    return frame_of(
        {
            "source": np.full(n, mapped.source, dtype=object),
            "file": column("_file", ""),
            "line": hit["_line"].to_numpy(dtype=np.int64) if "_line" in hit else np.zeros(n, int),
            "column": np.full(n, mapped.column, dtype=object),
            "ref": hit["user_ref"].to_numpy(dtype=object),
            "severity": np.full(n, severity, dtype=object),
            "reason": np.array(reasons, dtype=object),
        }
    )


def _trim(desired: Desired, trimmed: Mapping[int, str]) -> None:
    """Set the trimmed values (dropping the emptied ones) and re-hash their users, whose
    row hashes the mapper computed from the untrimmed values."""
    values = desired.extra_values
    labels = list(trimmed)
    refs = pd.Index(sorted({str(r) for r in values.loc[labels, "user_ref"]}), dtype=object)
    values = values.copy()
    values.loc[labels, "value"] = [trimmed[label] for label in labels]
    values = values.drop(index=[label for label in labels if not trimmed[label]])
    desired.extra_values = values
    users = desired.users
    if EXTRAS_HASH not in users:
        return  # the diff hashes the values itself
    hashes = extras_hash_at(values[values["user_ref"].isin(refs)], refs)
    at = users.index.get_indexer(refs)
    column = users[EXTRAS_HASH].to_numpy(dtype=np.int64).copy()
    column[at[at >= 0]] = hashes[at >= 0]
    desired.users = users.assign(**{EXTRAS_HASH: column})


def _without_users(desired: Desired, refs: set[str]) -> None:
    """Take rejected users out of the desired state, as the mapper leaves out rejected
    rows: their values, memberships and manager links go, and a rule's group only they
    were in is not created."""
    users = desired.users
    desired.users = users[~users.index.isin(list(refs))]
    members = desired.memberships
    theirs = members["user_ref"].isin(list(refs)).to_numpy()
    lost_groups = set(members.loc[theirs, "group_ref"])
    for name in ("extra_values", "memberships", "managers"):
        frame = getattr(desired, name)
        setattr(desired, name, frame[~frame["user_ref"].isin(list(refs)).to_numpy()])
    if lost_groups:
        still = set(pd.unique(desired.memberships["group_ref"]))
        groups = desired.groups
        empty = groups.index.isin([g for g in lost_groups if g not in still])
        if "_source" in groups:
            empty &= (groups["_source"] != "static").to_numpy()
        desired.groups = groups[~empty]


def _add_rejections(desired: Desired, frames: list[pd.DataFrame]) -> None:
    new = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    old = desired.rejections
    if old.empty:
        desired.rejections = new.reindex(columns=list(REJECTION_COLUMNS))
        return
    desired.rejections = pd.concat(
        [old, new.reindex(columns=list(REJECTION_COLUMNS))], ignore_index=True
    )


__all__ = [
    "CategoryCheck",
    "CategoryRead",
    "MappedCategory",
    "Mismatch",
    "check_categories",
    "compare",
    "mapped_categories",
    "mapped_in",
    "read_categories",
]
