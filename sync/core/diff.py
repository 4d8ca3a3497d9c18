"""Desired (HR) against owned (the state store) → the smallest correct plan.

A pure function of its inputs: the same desired state and store give the same plan,
in the same order, whatever the order of the HR rows. The comparison is vectorised:
per-user content hashes are merged on `ref`, and only users whose hashes differ are
looked at in detail and turned into operation objects.

Ownership is respected by construction: removals and archives are computed only from
the state store, which holds only what the engine created or adopted, so a member
added by hand in Pluvo is never even seen here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sync.config import LeaverConfig
from sync.core.plan import (
    AddManagers,
    AddMembers,
    ArchiveUser,
    Change,
    CreateGroup,
    CreateUser,
    DeactivateUser,
    ExtraValue,
    GroupLinks,
    LeaverFacts,
    Operation,
    Plan,
    RemoveManagers,
    RemoveMembers,
    RenameGroup,
    RestoreUser,
    SetExtraValues,
    UpdateUser,
    UserFields,
)
from sync.hashing import extras_hash_at, fields_hash, groups_hash_at, pair_keys
from sync.model import EXTRAS_HASH, GROUPS_HASH, USER_FIELDS, Desired, StateView

MEMBERS_PER_CALL = 100
UNMANAGED_WHEN_EMPTY = frozenset({"language", "roles"})


@dataclass
class DiffOptions:
    leavers: LeaverConfig = field(default_factory=LeaverConfig)
    now: datetime | None = None


def _origin(row: dict[str, Any]) -> str:
    file, line = row.get("_file", ""), row.get("_line", "")
    return f"{file}:{line}" if file else ""


def _records(frame: pd.DataFrame, refs: list[str]) -> dict[str, dict[str, Any]]:
    """Rows of an index-`ref` frame as plain dicts: per-row pandas access is slow."""
    part = frame.loc[frame.index.intersection(refs)]
    return dict(zip(part.index, part.to_dict(orient="records"), strict=True))


def diff(desired: Desired, state: StateView, options: DiffOptions | None = None) -> Plan:
    options = options or DiffOptions()
    ops: list[Operation] = []
    ops += _group_ops(desired, state)

    want = desired.users
    have = state.users
    d_fields = fields_hash(want).to_numpy()
    if EXTRAS_HASH in want:
        d_extras = want[EXTRAS_HASH].to_numpy(dtype=np.int64)
    else:
        d_extras = extras_hash_at(desired.extra_values, want.index)
    if GROUPS_HASH in want:
        d_groups = want[GROUPS_HASH].to_numpy(dtype=np.int64)
    else:
        d_groups = groups_hash_at(desired.memberships, want.index)

    # One hash lookup aligns the two sides; everything after is positional. The
    # lookup goes into want's hash table, which merge usually built already.
    found = want.index.get_indexer(have.index)
    position = np.full(len(want), -1, dtype=np.intp)
    hit = found >= 0
    position[found[hit]] = np.flatnonzero(hit)
    known = position >= 0
    at = position[known]
    new_refs = want.index[~known]
    common = want.index[known]
    fields_changed = common[d_fields[known] != have["fields_hash"].to_numpy()[at]]
    left = common[pd.notna(have["left_action"].to_numpy()[at])]
    extras_changed = common[d_extras[known] != have["extras_hash"].to_numpy()[at]]
    groups_changed = common[d_groups[known] != have["groups_hash"].to_numpy()[at]]
    matched = np.zeros(len(have), dtype=bool)
    matched[at] = True

    ops += _user_ops(want, new_refs, fields_changed, left, state)
    extras_refs = _union(new_refs[d_extras[~known] != 0], extras_changed)
    ops += _extra_ops(desired, extras_refs, state)
    group_refs = _union(new_refs[d_groups[~known] != 0], groups_changed)
    ops += _membership_ops(desired, group_refs, state)
    held = held_refs(desired)
    in_grace: list[tuple[str, str]] = []
    leavers = _leaver_ops(desired, state, options, held, matched, in_grace)
    leaving = {op.ref for op in leavers}
    unsynced = set(have.index[~matched]) - leaving
    ops += _manager_ops(desired, state, unsynced)
    ops += leavers

    ops.sort(key=lambda op: (op.phase, op.kind, op.ref))
    return Plan(
        operations=tuple(ops),
        state_users=int((~state.users["archived"]).sum()) if len(state.users) else 0,
        desired_users=len(desired.users),
        filtered_out=_filtered_out(desired, have[~matched]),
        in_grace=tuple(in_grace),
    )


def _filtered_out(desired: Desired, unmatched: pd.DataFrame) -> tuple[tuple[str, str], ...]:
    """(ref, why) of the people synced today whom a filter drops: they leave (now, or
    after the grace), and a reviewer must see them by name, not only in a count."""
    filtered = desired.filtered
    if filtered.empty or unmatched.empty:
        return ()
    active = unmatched.index[unmatched["left_action"].isna().to_numpy()]
    hit = _records(filtered, list(active))
    return tuple((ref, _filter_reason(hit[ref])) for ref in sorted(hit))


def _grace_note(
    ref: str,
    since: Any,
    runs_missing: int,
    now: datetime,
    grace_runs: int,
    grace_days: float,
    action: str,
) -> tuple[str, str]:
    """(ref, "missing from today's sources since <date>; archived at the next run unless
    they return"): when the grace lets the leaver go, in runs and in days."""
    start = now if pd.isna(since) else since.to_pydatetime()
    runs_needed = max(0, grace_runs - runs_missing + 1)
    when = []
    if runs_needed:
        when.append("at the next run" if runs_needed == 1 else f"after {runs_needed} more runs")
    due_day = start + timedelta(days=grace_days)
    if due_day > now:
        when.append(f"from {due_day.date().isoformat()}")
    verb = "archived" if action == "archive" else "deactivated"
    return ref, (
        f"missing from today's sources since {start.date().isoformat()}; "
        f"{verb} {' and '.join(when) or 'at the next run'} unless they return"
    )


def _filter_reason(row: dict[str, Any]) -> str:
    where = _origin(row)
    return f"filtered out by {row['filter']}" + (f" ({where})" if where else "")


def _union(a: Iterable[str], b: Iterable[str]) -> list[str]:
    return sorted(set(a) | set(b))


def _group_ops(desired: Desired, state: StateView) -> list[Operation]:
    ops: list[Operation] = []
    old_names = state.groups[["name"]].rename(columns={"name": "name_old"})
    merged = (
        desired.groups[["name"]]
        .merge(old_names, left_index=True, right_index=True, how="left")
        .sort_index()
    )
    for ref, row in merged.iterrows():
        old = row["name_old"]
        if isinstance(old, float) or old is None:
            ops.append(
                CreateGroup(
                    ref=str(ref), changes=(Change("name", "", row["name"]),), name=row["name"]
                )
            )
        elif old != row["name"]:
            ops.append(
                RenameGroup(
                    ref=str(ref), changes=(Change("name", old, row["name"]),), name=row["name"]
                )
            )
    return ops


def _user_ops(
    want: pd.DataFrame,
    new_refs: pd.Index,
    fields_changed: pd.Index,
    left: pd.Index,
    state: StateView,
) -> list[Operation]:
    ops: list[Operation] = []
    rows = _records(want, list(new_refs))
    for ref in new_refs:
        row = rows[ref]
        origin = _origin(row)
        full = UserFields.of(row)
        values = full.as_dict()
        # An empty language or role list means "not managed by the mapping": not sent.
        sent = tuple(f for f in USER_FIELDS if values[f] or f not in UNMANAGED_WHEN_EMPTY)
        ops.append(CreateUser(ref=str(ref), origin=origin, fields=full, send=sent))
    touched = sorted(set(fields_changed) | set(left))
    if not touched:
        return ops
    old = _records(state.load_fields(touched), touched)
    rows = _records(want, touched)
    left_set = set(left)
    for ref in touched:
        row = rows[ref]
        origin = _origin(row)
        full = UserFields.of(row)
        values = full.as_dict()
        before = old.get(ref)
        changed: list[Change] = []
        send: list[str] = []
        for f in USER_FIELDS:
            previous = "" if before is None else str(before[f])
            if previous != values[f]:
                changed.append(Change(f, previous, values[f], origin))
                if values[f] or f not in UNMANAGED_WHEN_EMPTY:
                    send.append(f)
        if ref in left_set:
            if "is_active" not in send:
                send.append("is_active")
            ops.append(
                RestoreUser(
                    ref=ref,
                    changes=(Change("archived", "true", "false", origin), *changed),
                    fields=full,
                    send=tuple(f for f in USER_FIELDS if f in send),
                )
            )
        elif changed:
            ops.append(UpdateUser(ref=ref, changes=tuple(changed), fields=full, send=tuple(send)))
    return ops


def _extra_ops(desired: Desired, refs: list[str], state: StateView) -> list[Operation]:
    if not refs:
        return []
    values = desired.extra_values
    want = values[values["user_ref"].isin(refs)]
    have = state.load_extras(refs)
    merged = want.merge(
        have[["user_ref", "category_ref", "category_type", "value"]],
        on=["user_ref", "category_ref"],
        how="outer",
        suffixes=("", "_old"),
    )
    merged = merged[merged["value"].fillna("\0") != merged["value_old"].fillna("\0")]
    ops: list[Operation] = []
    merged = merged.sort_values(["user_ref", "category_ref"], kind="stable")
    # Column by column, not a dict per row: a first load of a million people has six
    # million values, and their records were the plan's largest transient (gigabytes).
    # Rows are sorted by user, so each user's values are one run of rows.
    column = {c: merged[c].tolist() for c in merged.columns if c in _EXTRA_COLUMNS}
    users, n = column["user_ref"], len(merged)
    files = column.get("_file")
    origins: dict[tuple[Any, Any], str] = {}  # one string per source line, shared
    start = 0
    while start < n:
        ref = str(users[start])
        end = start + 1
        while end < n and str(users[end]) == ref:
            end += 1
        send = []
        changes = []
        for i in range(start, end):
            value, value_old = column["value"][i], column["value_old"][i]
            new = None if _missing(value) else str(value)
            old = "" if _missing(value_old) else str(value_old)
            kind = column["category_type"][i]
            if _missing(kind):
                kind = column["category_type_old"][i]
            category = str(column["category_ref"][i])
            send.append(ExtraValue(category, str(kind), new))
            origin = ""
            if files is not None and not _missing(files[i]):
                key = (files[i], column["_line"][i])
                origin = origins.get(key) or origins.setdefault(key, f"{key[0]}:{key[1]}")
            changes.append(Change(category, old, new or "", origin))
        ops.append(SetExtraValues(ref=ref, changes=tuple(changes), values=tuple(send)))
        start = end
    return ops


_EXTRA_COLUMNS = frozenset(
    {"user_ref", "category_ref", "category_type", "category_type_old", "value", "value_old",
     "_file", "_line"}
)  # fmt: skip


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _pairs_ops(
    want: pd.DataFrame,
    have: pd.DataFrame,
    add: type[GroupLinks],
    remove: type[GroupLinks],
    names: dict[str, str] | None = None,
) -> list[Operation]:
    # Integer keys and isin instead of a merge on two string columns: a million
    # unchanged pairs cost a fraction of a second.
    want_keys, have_keys = pd.Index(pair_keys(want)), pd.Index(pair_keys(have))
    added = want[~want_keys.isin(have_keys)]
    removed = have[~have_keys.isin(want_keys)]
    ops: list[Operation] = []
    for part, kind in ((added, add), (removed, remove)):
        if part.empty:
            continue
        part = part[["group_ref", "user_ref"]].astype(str).drop_duplicates()
        for group_ref, users in part.groupby("group_ref", sort=True)["user_ref"]:
            refs = sorted(users)
            for start in range(0, len(refs), MEMBERS_PER_CALL):
                chunk = refs[start : start + MEMBERS_PER_CALL]
                ops.append(
                    kind(
                        ref=str(group_ref),
                        users=tuple(chunk),
                        group_name="" if kind.adds else (names or {}).get(str(group_ref), ""),
                    )
                )
    return ops


def _membership_ops(desired: Desired, refs: list[str], state: StateView) -> list[Operation]:
    if not refs:
        return []
    members = desired.memberships
    want = members[members["user_ref"].isin(refs)]
    have = state.load_memberships(refs)
    return _pairs_ops(want, have, AddMembers, RemoveMembers, _group_names(state))


def held_refs(desired: Desired) -> pd.Index:
    """Refs the sources still name but that are not synced this run: left as they are.

    A rejected row (bad email, duplicate ref) or a pre-hire is not a leaver: archiving
    someone because HR mistyped their email would be the worst possible answer.
    """
    rejections = desired.rejections
    refs = rejections["ref"].astype(str) if len(rejections) else pd.Series([], dtype=object)
    if len(rejections):
        from sync.model import is_warning

        refs = refs[~is_warning(rejections).to_numpy() & (refs != "").to_numpy()]
    held: pd.Index = pd.Index(refs.unique()).union(desired.pending.index)
    return held


def _manager_ops(desired: Desired, state: StateView, unsynced: set[str]) -> list[Operation]:
    """Manager links follow the desired state, except for people who are neither synced
    nor leaving now (rejected, pre-hires, missing within the grace): theirs stay."""
    have = state.managers
    if len(have) and unsynced:
        have = have[~have["user_ref"].isin(unsynced).to_numpy()]
    return _pairs_ops(desired.managers, have, AddManagers, RemoveManagers, _group_names(state))


def _group_names(state: StateView) -> dict[str, str]:
    groups = state.groups
    return {str(k): str(v) for k, v in groups["name"].items()} if "name" in groups else {}


def _leaver_ops(
    desired: Desired,
    state: StateView,
    options: DiffOptions,
    held: pd.Index,
    matched: np.ndarray,
    in_grace: list[tuple[str, str]],
) -> list[Operation]:
    """`matched`: per state user (by position), whether the desired state has it. The
    people missing but still within the grace go to `in_grace`, each with when they
    leave: no operation, but a reviewer must see them the first day."""
    config = options.leavers
    if config.action == "ignore" or len(state.users) == 0:
        return []
    have = state.users
    is_active = have["left_action"].isna().to_numpy()
    active = have[is_active]
    gone = ~matched[is_active] & ~active.index.isin(held)
    ended = active.index.isin(desired.ended.index)
    now = options.now or pd.Timestamp.now(tz="UTC").to_pydatetime()
    since = pd.to_datetime(active["missing_since"], utc=True)
    # This run counts as one more run the user is missing.
    runs_missing = active["missing_runs"].astype(int) + 1
    # Never seen missing before: this run starts the clock (0 days).
    days_missing = ((pd.Timestamp(now) - since).dt.total_seconds() / 86400).fillna(0.0)
    due = (
        gone
        & (runs_missing > config.grace_runs).to_numpy()
        & (days_missing >= config.grace_days).to_numpy()
    )
    waiting = gone & ~due & ~ended
    in_grace.extend(
        _grace_note(
            str(ref),
            since.iloc[i],
            int(runs_missing.iloc[i]),
            now,
            config.grace_runs,
            config.grace_days,
            config.action,
        )
        for i, ref in sorted(
            (
                (int(i), r)
                for i, r in zip(np.flatnonzero(waiting), active.index[waiting], strict=True)
            ),
            key=lambda p: str(p[1]),
        )
    )
    candidates = active[due | ended]
    if "pluvo_id" not in candidates.columns:
        # Pluvo ids are read for the few leavers only, not for a million stayers.
        ids = (
            state.load_ids(list(candidates.index))["pluvo_id"]
            if state.load_ids is not None and len(candidates)
            else pd.Series(dtype=object)
        )
        candidates = candidates.assign(pluvo_id=ids.reindex(candidates.index).to_numpy())
    ops: list[Operation] = []
    ended_set = set(desired.ended.index)
    filtered = _records(desired.filtered, [str(r) for r in candidates.index])
    facts = _leaver_facts(desired, state, candidates, now, config)
    for ref, row in candidates.sort_index().iterrows():
        reason = "end date passed" if ref in ended_set else "gone from the sources"
        if ref in filtered:
            reason = _filter_reason(filtered[ref])
        who = facts.get(str(ref))
        if config.action == "archive":
            pluvo_id = None if _missing(row["pluvo_id"]) else str(row["pluvo_id"])
            ops.append(
                ArchiveUser(
                    ref=str(ref),
                    changes=(Change("archived", "false", "true"),),
                    method=config.archive_method,
                    pluvo_id=pluvo_id,
                    reason=reason,
                    who=who,
                )
            )
        else:
            ops.append(
                DeactivateUser(
                    ref=str(ref),
                    changes=(Change("is_active", "true", "false"),),
                    reason=reason,
                    who=who,
                )
            )
    return ops


def _leaver_facts(
    desired: Desired,
    state: StateView,
    candidates: pd.DataFrame,
    now: datetime,
    config: LeaverConfig,
) -> dict[str, LeaverFacts]:
    """Name, email, groups and the why of each leaver, for the people who sign the plan
    off: read from the store for the few leavers only."""
    refs = [str(r) for r in candidates.index]
    if not refs:
        return {}
    fields = _records(state.load_fields(refs), refs)
    links = state.load_memberships(refs)
    names = state.groups["name"].to_dict() if "name" in state.groups else {}
    groups: dict[str, list[str]] = {}
    for group_ref, user_ref in zip(links["group_ref"], links["user_ref"], strict=True):
        groups.setdefault(str(user_ref), []).append(str(names.get(group_ref, group_ref)))
    ended = desired.ended["end_date"].to_dict() if "end_date" in desired.ended else {}
    today = pd.Timestamp(now).date().isoformat()
    grace = " and ".join(
        text
        for count, text in (
            (config.grace_runs, f"{config.grace_runs} run(s)"),
            (config.grace_days, f"{config.grace_days:g} day(s)"),
        )
        if count
    )
    out: dict[str, LeaverFacts] = {}
    for ref, row in candidates.iterrows():
        key = str(ref)
        person = fields.get(key, {})
        missing = row.get("missing_since")
        if key in ended:
            since, runs, used = str(ended[key]), 0, ""
        else:
            since = today if _missing(missing) or pd.isna(missing) else str(missing)[:10]
            runs, used = int(row.get("missing_runs", 0)) + 1, grace
        out[key] = LeaverFacts(
            name=str(person.get("name", "")),
            email=str(person.get("email", "")),
            groups=tuple(sorted(groups.get(key, []))),
            since=since,
            missing_runs=runs,
            grace=used,
        )
    return out
