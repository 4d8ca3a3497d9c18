"""One source's raw rows → its accepted users, values, groups, manager links and rejections.

Everything is computed column by column over the whole frame; a row's fate is decided
at the end from the problems collected on the way, so one bad cell rejects its row
and the rest of the file still syncs. Filtered rows are dropped first and are not
rejections. Cross-source questions (precedence, conflicts, whether a manager exists)
are left to `merge`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from sync.core.mapping.spec import (
    LANGUAGES,
    ROLES,
    BooleanWords,
    Condition,
    DateField,
    ExtraSpec,
    MappingSpec,
    RolesSpec,
    ValueSpec,
)
from sync.core.mapping.template import parse_template
from sync.core.mapping.transforms import (
    Problem,
    apply_transforms,
    as_text,
    collapse_spaces,
    fill_empty,
    filled,
    frame_of,
    parse_booleans,
    parse_dates,
    per_unique_checked,
    per_unique_raw,
    render_template,
    shared_factorize,
    strip_all,
    text,
    text_op,
    validate_emails,
)
from sync.errors import SourceError
from sync.hashing import hash_strings, keyed, row_set_hash
from sync.model import (
    ERROR,
    EXTRAS_HASH,
    GROUPS_HASH,
    PROVENANCE,
    REJECTION_COLUMNS,
    USER_FIELDS,
    empty_frame,
)

ROW_COLUMNS = (
    "ref",
    *USER_FIELDS,
    "status",
    "start_date",
    "end_date",
    *PROVENANCE,
    EXTRAS_HASH,
    GROUPS_HASH,
)
EXTRA_COLUMNS = ("user_ref", "category_ref", "category_type", "value", *PROVENANCE)
LINK_COLUMNS = ("group_ref", "user_ref", "member_ref", "_file", "_line", "column")

FILTERED_COLUMNS = ("ref", "filter", "_file", "_line")

STATUS_USER = "user"
STATUS_PENDING = "pending"
STATUS_ENDED = "ended"


@dataclass
class MappingStats:
    rows: int = 0
    filtered: int = 0
    rejected: int = 0
    users: int = 0
    pending: int = 0
    ended: int = 0


@dataclass
class SourceMapping:
    """What one source says, before it is merged with the others."""

    source: str
    rows: pd.DataFrame = field(default_factory=lambda: empty_frame(ROW_COLUMNS))
    extra_values: pd.DataFrame = field(default_factory=lambda: empty_frame(EXTRA_COLUMNS))
    groups: pd.DataFrame = field(default_factory=lambda: empty_frame(["ref", "name", "_source"]))
    memberships: pd.DataFrame = field(
        default_factory=lambda: empty_frame(["group_ref", "user_ref"])
    )
    manager_links: pd.DataFrame = field(default_factory=lambda: empty_frame(LINK_COLUMNS))
    rejections: pd.DataFrame = field(default_factory=lambda: empty_frame(REJECTION_COLUMNS))
    filtered: pd.DataFrame = field(default_factory=lambda: empty_frame(FILTERED_COLUMNS))
    """The refs of the rows the mapping's filters dropped, with the filter and line:
    a person synced yesterday whom a filter drops today leaves, and must be named."""
    stats: MappingStats = field(default_factory=MappingStats)


def check_columns(
    source: str,
    columns: Sequence[str],
    spec: MappingSpec,
    *,
    files: Sequence[str] = (),
    mapping_file: str | None = None,
) -> None:
    """A file lacking a column the mapping reads is unusable as a whole: fail before any
    change, naming the mapping file and the keys that read each missing column (it may
    be the export that changed, or the mapping that is wrong)."""
    present = list(columns)
    uses = spec.column_uses()
    missing = [c for c in uses if c not in present]
    if not missing:
        return
    folded = {c.casefold(): c for c in present}
    described = []
    for column in missing:
        close = folded.get(column.casefold())
        guesses = [close] if close else difflib.get_close_matches(column, present, n=1, cutoff=0.6)
        hint = f" (did you mean '{guesses[0]}'?)" if guesses else ""
        described.append(f"'{column}'{hint} [{', '.join(uses[column])}]")
    where = ", ".join(Path(f).name for f in files) or "the data"
    mapping = f"mapping {mapping_file}" if mapping_file else "the mapping file"
    raise SourceError(
        f"source {source}: {where} lacks column(s) {', '.join(described)} that {mapping} reads",
        hint=f"columns found: {', '.join(present) or 'none'}",
    )


class _Rows:
    """The frame being mapped, with stripped columns computed once and shared."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.length = len(frame)
        self._cache: dict[str, pd.Series[str]] = {}

    def column(self, name: str) -> pd.Series[str]:
        if name not in self._cache:
            raw = text(self.frame[name].to_numpy(dtype=object))
            try:
                self._cache[name] = strip_all(raw)
            except (AttributeError, TypeError):  # not the adapter's contract: be lenient
                self._cache[name] = strip_all(as_text(self.frame[name]))
        return self._cache[name]

    def constant(self, value: str) -> pd.Series[str]:
        return pd.Series(filled(self.length, value), dtype=object, copy=False)


def _evaluate(rows: _Rows, spec: ValueSpec) -> tuple[pd.Series[str], str, list[Problem]]:
    if spec.column is not None:
        values, label = rows.column(spec.column), spec.column
    elif spec.template is not None:
        template = spec.parsed_template()
        assert template is not None
        values, empty = render_template(template, rows.column, rows.length, strip=True)
        label = spec.template
        if empty.any():
            # An empty placeholder leaves double or edge spaces ("Jan  Jansen").
            array = values.to_numpy(dtype=object).copy()
            array[empty] = collapse_spaces(text(array[empty])).to_numpy(dtype=object)
            values = text(array)
    else:
        values, label = rows.constant(spec.value or ""), "(constant)"
    values, problems = apply_transforms(values, spec.transforms, label)
    if spec.default is not None:
        values = fill_empty(values, spec.default)
    return values, label, problems


def _described(cond: Condition) -> str:
    """A filter as a reviewer reads it: `Status in [Active]`, `Email ~ .*@corp.nl`."""
    test = f"in [{', '.join(cond.values)}]" if cond.values is not None else f"~ {cond.regex}"
    return f"{cond.column} {test}" + (" (any case)" if cond.ignore_case else "")


def _filtered(
    dropped: pd.DataFrame, why: npt.NDArray[np.object_], spec: MappingSpec
) -> pd.DataFrame:
    """The dropped rows' refs (as the mapping makes them), filter and line."""
    dropped = dropped.reset_index(drop=True)
    ref, _, _ = _evaluate(_Rows(dropped), spec.users.ref)
    n = len(dropped)
    out = frame_of(
        {
            "ref": ref.to_numpy(dtype=object),
            "filter": why,
            "_file": dropped["_file"].to_numpy(dtype=object)
            if "_file" in dropped
            else filled(n, ""),
            "_line": (
                dropped["_line"].to_numpy(dtype=np.int64)
                if "_line" in dropped
                else np.zeros(n, dtype=np.int64)
            ),
        }
    )
    return out[out["ref"] != ""]


def condition_mask(rows: _Rows, cond: Condition) -> npt.NDArray[np.bool_]:
    values = rows.column(cond.column)
    test: Callable[[str], bool]
    if cond.values is not None:
        if cond.ignore_case:
            folded = {v.strip().casefold() for v in cond.values}
            test = lambda v: v.casefold() in folded  # noqa: E731
        else:
            exact = {v.strip() for v in cond.values}
            test = exact.__contains__
    else:
        assert cond.regex is not None
        pattern = re.compile(cond.regex, re.IGNORECASE if cond.ignore_case else 0)
        test = lambda v: pattern.fullmatch(v) is not None  # noqa: E731
    results, codes = per_unique_raw(values, lambda uniques: [test(v) for v in uniques])
    return np.asarray(results.astype(bool)[codes], dtype=bool)


def _enum_list(
    values: pd.Series[str], allowed: Sequence[str], split: str | None, what: str, label: str
) -> tuple[pd.Series[str], Problem | None]:
    """Canonical "A,B" for enum lists (roles) or single enums (language); None if unknown."""
    known = set(allowed)

    def one(text: str) -> str | None:
        items = text.split(split) if split else [text]
        names = sorted({item.strip().upper() for item in items if item.strip()})
        if any(name not in known for name in names):
            return None
        return ",".join(names)

    parsed, bad = per_unique_checked(values, one)
    reason = f"unknown {what} '{{value}}' (expected {', '.join(allowed)})"
    return parsed, Problem.where(bad, label, reason, values)


def _options(
    values: pd.Series[str], spec: ExtraSpec, label: str
) -> tuple[pd.Series[str], Problem | None]:
    options = {o.strip().casefold(): o for o in spec.options or []}
    multi = spec.type == "multiselect"
    drop = spec.unknown == "drop"

    def one(text: str) -> str | None:
        items = [i.strip() for i in text.split(spec.separator)] if multi else [text]
        chosen = set()
        for item in items:
            if not item:
                continue
            option = options.get(item.casefold())
            if option is None:
                if drop:
                    continue
                return None
            chosen.add(option)
        return "\n".join(sorted(chosen))

    parsed, bad = per_unique_checked(values, one)
    reason = (
        f"unknown choice '{{value}}' for {spec.category} (options: {', '.join(spec.options or [])})"
    )
    return parsed, Problem.where(bad, label, reason, values)


def _extra(
    rows: _Rows, spec: ExtraSpec, booleans: BooleanWords
) -> tuple[pd.Series[str], list[Problem]]:
    values, label, problems = _evaluate(rows, spec)
    problem: Problem | None = None
    if spec.type == "datetime":
        formats = spec.format or ["%Y-%m-%d"]
        with_time = any(d in f for f in formats for d in ("%H", "%M", "%S"))
        values, problem = parse_dates(values, formats, label, with_time=with_time)
    elif spec.type == "boolean":
        words = spec.booleans or booleans
        values, problem = parse_booleans(values, words.truthy, words.falsy, label)
    elif spec.type in ("choice", "multiselect"):
        values, problem = _options(values, spec, label)
    if problem is not None:
        problems.append(problem)
    return values, problems


def _date(rows: _Rows, spec: DateField | None) -> tuple[pd.Series[str], list[Problem]]:
    if spec is None:
        return rows.constant(""), []
    values, label, problems = _evaluate(rows, spec)
    values, problem = parse_dates(values, spec.format, label)
    if problem is not None:
        problems.append(problem)
    return values, problems


def _lines_text(files: npt.NDArray[np.object_], lines: npt.NDArray[np.int64], own_file: str) -> str:
    return ", ".join(
        str(line) if file == own_file else f"{Path(str(file)).name}:{line}"
        for file, line in zip(files, lines, strict=True)
    )


def _duplicates(
    keys: pd.Series[str],
    eligible: npt.NDArray[np.bool_],
    files: npt.NDArray[np.object_],
    lines: npt.NDArray[np.int64],
    refs: pd.Series[str] | None,
    what: str,
    label: str,
) -> Problem | None:
    """Every copy of a key used more than once (by different refs when `refs` is given)."""
    values = keys.to_numpy(dtype=object)
    positions = np.flatnonzero(eligible)
    # Hashing once to find repeated keys is cheap; grouping (and counting refs) is
    # then done for those few rows only, not for a million unique ones.
    repeated = pd.Series(values[positions], dtype=object, copy=False).duplicated(keep=False)
    positions = positions[repeated.to_numpy()]
    dup = frame_of({"key": values[positions]})
    dup.index = pd.Index(positions)
    if refs is not None and not dup.empty:
        dup["ref"] = refs.to_numpy(dtype=object)[positions]
        counts = dup.groupby("key", sort=False)["ref"].transform("nunique")
        dup = dup[counts.to_numpy() > 1]
    if dup.empty:
        return None
    reasons = np.empty(len(keys), dtype=object)
    mask = np.zeros(len(keys), dtype=bool)
    for key, group in dup.groupby("key", sort=False):
        positions = group.index.to_numpy()
        for pos in positions:
            others = positions[positions != pos]
            where = _lines_text(files[others], lines[others], str(files[pos]))
            extra = ""
            if refs is not None:
                other_refs = sorted({str(r) for r in group.loc[others, "ref"]})
                extra = f" by ref(s) {', '.join(other_refs)}"
            reasons[pos] = f"duplicate {what} '{key}' (also used{extra} on line(s) {where})"
            mask[pos] = True
    positions = np.flatnonzero(mask)
    return Problem(positions, label, reasons[positions])


def map_source(
    source: str, frame: pd.DataFrame, spec: MappingSpec, *, today: date
) -> SourceMapping:
    """Map one source's raw frame; `frame` has string columns plus `_file` and `_line`."""
    with shared_factorize():
        return _map_source(source, frame, spec, today)


def _map_source(source: str, frame: pd.DataFrame, spec: MappingSpec, today: date) -> SourceMapping:
    total = len(frame)
    result = SourceMapping(source)
    result.stats.rows = total
    frame = frame.reset_index(drop=True)
    rows = _Rows(frame)
    if spec.filters.include or spec.filters.exclude:
        keep = np.ones(total, dtype=bool)
        why = np.full(total, "", dtype=object)  # the first filter that drops each row
        tests = [(c, True, "include") for c in spec.filters.include]
        tests += [(c, False, "exclude") for c in spec.filters.exclude]
        for cond, wanted, which in tests:
            dropped = condition_mask(rows, cond) != wanted
            why[dropped & keep] = f"filters.{which} {_described(cond)}"
            keep &= ~dropped
        if not keep.all():
            result.filtered = _filtered(frame.loc[~keep], why[~keep], spec)
            frame = frame.loc[keep].reset_index(drop=True)
            rows = _Rows(frame)
        result.stats.filtered = int(total - keep.sum())
    n = len(frame)
    if n == 0:
        return result

    files = (
        frame["_file"].to_numpy(dtype=object, na_value="") if "_file" in frame else filled(n, "")
    )
    lines = (
        frame["_line"].to_numpy(dtype=np.int64)
        if "_line" in frame
        else np.arange(2, n + 2, dtype=np.int64)
    )
    problems: list[Problem | None] = []
    users = spec.users

    ref, ref_label, found = _evaluate(rows, users.ref)
    problems += found
    problems.append(Problem.where((ref == "").to_numpy(), ref_label, "missing ref"))

    email, email_label, found = _evaluate(rows, users.email)
    problems += found
    email = text_op(email, "lower")
    email_empty = (email == "").to_numpy()
    problems.append(Problem.where(email_empty, email_label, "missing email"))
    bad_email = validate_emails(email, email_label)
    problems.append(bad_email)

    name, _, found = _evaluate(rows, users.name)
    problems += found

    language = rows.constant("")
    if users.language is not None:
        language, label, found = _evaluate(rows, users.language)
        problems += found
        language, problem = _enum_list(language, LANGUAGES, None, "language", label)
        problems.append(problem)

    roles = rows.constant("")
    if users.roles is not None:
        roles_spec: RolesSpec = users.roles
        roles, label, found = _evaluate(rows, roles_spec)
        problems += found
        roles, problem = _enum_list(roles, ROLES, roles_spec.split, "role", label)
        problems.append(problem)

    active = rows.constant("true")
    if users.active is not None:
        active, label, found = _evaluate(rows, users.active)
        problems += found
        words = users.active.booleans or spec.booleans
        active, problem = parse_booleans(active, words.truthy, words.falsy, label)
        problems.append(problem)
        active = fill_empty(active, "true")

    start, found = _date(rows, spec.dates.start_date)
    problems += found
    end, found = _date(rows, spec.dates.end_date)
    problems += found

    extras: list[tuple[ExtraSpec, pd.Series[str]]] = []
    for extra in spec.extra:
        values, found = _extra(rows, extra, spec.booleans)
        problems += found
        extras.append((extra, values))

    has_ref = (ref != "").to_numpy()
    problems.append(_duplicates(ref, has_ref, files, lines, None, "ref", ref_label))

    horizon = (today + timedelta(days=spec.dates.prehire_lead_days)).isoformat()
    today_iso = today.isoformat()
    end_values = end.to_numpy(dtype=object)
    has_end = end_values != ""
    if spec.dates.end_date_inclusive:
        ended = has_end & (end_values < today_iso)
    else:
        ended = has_end & (end_values <= today_iso)
    pending = ~ended & (start.to_numpy(dtype=object) > horizon)
    status = filled(n, STATUS_USER)
    status[pending] = STATUS_PENDING
    status[ended] = STATUS_ENDED

    email_ok = has_ref & ~email_empty
    if bad_email is not None:
        email_ok[bad_email.positions] = False
    email_ok &= status == STATUS_USER
    problems.append(_duplicates(email, email_ok, files, lines, ref, "email", email_label))

    found_problems = [p for p in problems if p is not None]
    rejected = np.zeros(n, dtype=bool)
    for problem in found_problems:
        rejected[problem.positions] = True
    result.rejections = _rejection_frame(source, found_problems, files, lines, ref)
    accepted = ~rejected
    result.stats.rejected = int(rejected.sum())

    provenance: dict[str, object] = {"_source": source, "_file": files, "_line": lines}
    result.rows = frame_of(
        {
            "ref": ref.to_numpy(dtype=object),
            "email": email.to_numpy(dtype=object),
            "name": name.to_numpy(dtype=object),
            "language": language.to_numpy(dtype=object),
            "roles": roles.to_numpy(dtype=object),
            "is_active": active.to_numpy(dtype=object),
            "status": status,
            "start_date": start.to_numpy(dtype=object),
            "end_date": end_values,
            **provenance,
        }
    )[accepted].reset_index(drop=True)
    result.stats.users = int((accepted & (status == STATUS_USER)).sum())
    result.stats.pending = int((accepted & (status == STATUS_PENDING)).sum())
    result.stats.ended = int((accepted & (status == STATUS_ENDED)).sum())

    live = accepted & (status == STATUS_USER)
    result.extra_values, extras_hash = _extra_frame(extras, ref, live, provenance)
    groups_hash = _groups(result, spec, rows, ref, live, files, lines)
    result.rows[EXTRAS_HASH] = extras_hash[accepted]
    result.rows[GROUPS_HASH] = groups_hash[accepted]
    return result


def _rejection_frame(
    source: str,
    problems: list[Problem],
    files: npt.NDArray[np.object_],
    lines: npt.NDArray[np.int64],
    ref: pd.Series[str],
) -> pd.DataFrame:
    if not problems:
        return empty_frame(REJECTION_COLUMNS)
    positions = np.concatenate([p.positions for p in problems])
    frame = frame_of(
        {
            "source": filled(positions.size, source),
            "file": files[positions],
            "line": lines[positions],
            "column": np.concatenate([filled(p.positions.size, p.column) for p in problems]),
            "ref": ref.to_numpy(dtype=object)[positions],
            "severity": ERROR,
            "reason": np.concatenate([p.reasons for p in problems]),
        }
    )
    return frame.sort_values("line", kind="stable").reset_index(drop=True)


def _extra_frame(
    extras: list[tuple[ExtraSpec, pd.Series[str]]],
    ref: pd.Series[str],
    live: npt.NDArray[np.bool_],
    provenance: dict[str, object],
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """The long (user, category, value) frame, built with one take per column, and
    each row's `extras_hash`.

    With a million users and six categories this frame has millions of rows, so it
    is assembled from integer positions rather than by concatenating per-category
    frames (each copy of an object column touches every string's refcount).
    """
    positions: list[npt.NDArray[np.intp]] = []
    values: list[npt.NDArray[np.object_]] = []
    specs: list[ExtraSpec] = []
    for spec, series in extras:
        raw = series.to_numpy(dtype=object)
        keep = np.flatnonzero(live & (raw != ""))
        if keep.size:
            positions.append(keep)
            values.append(raw[keep])
            specs.append(spec)
    row_hash = row_set_hash(
        len(live),
        (
            (keep, keyed(spec.category, kept))
            for spec, keep, kept in zip(specs, positions, values, strict=True)
        ),
    )
    if not positions:
        return empty_frame(EXTRA_COLUMNS), row_hash
    rows = np.concatenate(positions)
    # Constant-per-category columns are filled slice by slice: references to one
    # string object, rather than a gather over millions of rows.
    category_ref = np.empty(rows.size, dtype=object)
    category_type = np.empty(rows.size, dtype=object)
    start = 0
    for spec, keep in zip(specs, positions, strict=True):
        category_ref[start : start + keep.size].fill(spec.category)
        category_type[start : start + keep.size].fill(spec.type)
        start += keep.size
    columns: dict[str, object] = {
        "user_ref": ref.to_numpy(dtype=object)[rows],
        "category_ref": category_ref,
        "category_type": category_type,
        "value": np.concatenate(values),
    }
    for key, value in provenance.items():
        if isinstance(value, np.ndarray):
            single = value.dtype == object and len(value) and (value == value[0]).all()
            columns[key] = filled(rows.size, value[0]) if single else value[rows]
        else:
            columns[key] = value
    return frame_of(columns), row_hash


def _groups(
    result: SourceMapping,
    spec: MappingSpec,
    rows: _Rows,
    ref: pd.Series[str],
    live: npt.NDArray[np.bool_],
    files: npt.NDArray[np.object_],
    lines: npt.NDArray[np.int64],
) -> npt.NDArray[np.int64]:
    """Groups, memberships and manager links into `result`; returns each row's `groups_hash`."""
    refs = ref.to_numpy(dtype=object)
    groups: list[pd.DataFrame] = []
    members: list[pd.DataFrame] = []
    links: list[pd.DataFrame] = []
    rule_refs: dict[str, tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]] = {}
    # Per rule or static group: the group ref of each row, and which rows are members.
    row_groups: list[tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]] = []
    for rule in spec.groups.rules:
        group_ref, ref_empty = render_template(
            parse_template(rule.ref), rows.column, rows.length, strip=True
        )
        group_name, name_empty = render_template(
            parse_template(rule.name), rows.column, rows.length, strip=True
        )
        ref_values = group_ref.to_numpy(dtype=object)
        has = live & ~ref_empty & ~name_empty & (ref_values != "")
        rule_refs[rule.id] = (ref_values, has)
        groups.append(
            frame_of(
                {
                    "ref": ref_values[has],
                    "name": group_name.to_numpy(dtype=object)[has],
                    "_source": rule.id,
                }
            ).drop_duplicates("ref")
        )
        members.append(frame_of({"group_ref": ref_values[has], "user_ref": refs[has]}))
        row_groups.append((ref_values, has))
    live_refs = refs[live]
    for static in spec.groups.static:
        groups.append(frame_of({"ref": [static.ref], "name": [static.name], "_source": "static"}))
        members.append(frame_of({"group_ref": static.ref, "user_ref": live_refs}))
        row_groups.append((filled(len(refs), static.ref), live))
    for manager in spec.managers:
        group_values, has = rule_refs[manager.group]
        if manager.column is not None:
            label = manager.column
            manager_refs, _ = apply_transforms(
                rows.column(manager.column), spec.users.ref.transforms, label
            )
            values = manager_refs.to_numpy(dtype=object)
            take = has & (values != "")
        else:
            assert manager.when is not None
            label = manager.when.column
            values = refs
            take = has & condition_mask(rows, manager.when)
        links.append(
            frame_of(
                {
                    "group_ref": group_values[take],
                    "user_ref": values[take],
                    "member_ref": refs[take],
                    "_file": files[take],
                    "_line": lines[take],
                    "column": label,
                }
            )
        )
    if groups:
        result.groups = pd.concat(groups, ignore_index=True).drop_duplicates("ref")
    overlap = False
    if members:
        memberships = pd.concat(members, ignore_index=True)
        # Each rule gives a user one group, so pairs repeat only when two rules (or a
        # rule and a static group) produce the same group ref; skip the costly check
        # otherwise.
        rule_groups = [set(g["ref"]) for g in groups]
        total = sum(len(g) for g in rule_groups)
        overlap = len(set().union(*rule_groups)) < total
        if overlap:
            memberships = memberships.drop_duplicates(ignore_index=True)
        result.memberships = memberships
    if links:
        result.manager_links = pd.concat(links, ignore_index=True)
    return _groups_hash(row_groups, len(refs), dedupe=overlap)


def _groups_hash(
    row_groups: list[tuple[npt.NDArray[np.object_], npt.NDArray[np.bool_]]],
    length: int,
    *,
    dedupe: bool,
) -> npt.NDArray[np.int64]:
    """Each row's set-of-groups hash; a group two rules give one row counts once."""
    parts = []
    for number, (values, has) in enumerate(row_groups):
        if dedupe:
            has = has.copy()
            for earlier, earlier_has in row_groups[:number]:
                has &= ~(earlier_has & (earlier == values))
        rows = np.flatnonzero(has)
        parts.append((rows, hash_strings(values[rows])))
    return row_set_hash(length, parts)
