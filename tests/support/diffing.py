"""Desired states and state-store views from a few lines of Python, for diff and guard tests.

The diff is a pure function of a `Desired` (what HR says) and a `StateView` (what the
store says the engine applied). These builders make both without a database or a
mapping, so a test states its case in data. A stored user built from the same
`Person` as a desired one is unchanged: the diff has nothing to do for it.

Plans are read only through `kind`, `ref` and `changes`; `method`, `pluvo_id` and
`reason` of a leaver operation through the accessors below, which follow the plan
model whichever way it carries them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from sync.config import LeaverConfig
from sync.core.diff import DiffOptions, diff
from sync.hashing import extras_hash_at, fields_hash, groups_hash_at
from sync.model import USER_FIELDS, Desired, StateView, empty_frame

NOW = datetime(2024, 6, 3, 2, 0, tzinfo=UTC)
"""A fixed 'now' for plans, so day-based graces do not depend on the wall clock."""

_PAIRS = ("group_ref", "user_ref")


@dataclass(frozen=True)
class Person:
    """One user as HR describes it: fields, groups it is in, groups it manages, values."""

    ref: str
    name: str = ""
    email: str = ""
    language: str = "NL"
    roles: str = "PARTICIPANT"
    is_active: str = "true"
    groups: tuple[str, ...] = ()
    manages: tuple[str, ...] = ()
    extras: Mapping[str, str] = field(default_factory=dict)
    """category_ref → value, all of type string."""

    def but(self, **changes: Any) -> Person:
        return replace(self, **changes)

    def fields(self) -> dict[str, str]:
        return {
            "email": self.email or f"{self.ref.lower()}@example.com",
            "name": self.name or f"Person {self.ref}",
            "language": self.language,
            "roles": self.roles,
            "is_active": self.is_active,
        }


def people(*refs: str, **common: Any) -> list[Person]:
    return [Person(ref, **common) for ref in refs]


@dataclass(frozen=True)
class Stored:
    """A user as the state store remembers it: what was last applied, plus the
    leaver bookkeeping the engine keeps between runs."""

    person: Person
    missing_runs: int = 0
    missing_since: datetime | None = None
    left_action: str | None = None
    """None while the user is synced; "archive" or "deactivate" once it left."""
    pluvo_id: str = ""
    """Pluvo's id as the store knows it; empty: `pluvo-<ref>`."""
    id_known: bool = True
    """False: the store has no Pluvo id for this user."""

    @property
    def ref(self) -> str:
        return self.person.ref

    def known_id(self) -> str | None:
        return (self.pluvo_id or f"pluvo-{self.ref}") if self.id_known else None


def _users_frame(persons: list[Person]) -> pd.DataFrame:
    columns: dict[str, list[Any]] = {f: [p.fields()[f] for p in persons] for f in USER_FIELDS}
    columns["_source"] = ["hr"] * len(persons)
    columns["_file"] = ["hr.csv"] * len(persons)
    columns["_line"] = list(range(2, len(persons) + 2))
    frame = pd.DataFrame(
        {k: pd.Series(v, dtype=np.int64 if k == "_line" else object) for k, v in columns.items()}
    )
    frame.index = pd.Index([p.ref for p in persons], dtype=object, name="ref")
    return frame


def _pairs(persons: list[Person], attribute: str) -> pd.DataFrame:
    rows = [(g, p.ref) for p in persons for g in getattr(p, attribute)]
    if not rows:
        return empty_frame(list(_PAIRS))
    return pd.DataFrame(rows, columns=list(_PAIRS), dtype=object)


def _values(persons: list[Person], *, provenance: bool) -> pd.DataFrame:
    rows: list[tuple[Any, ...]] = [
        (p.ref, category, "string", value)
        for p in persons
        for category, value in sorted(p.extras.items())
    ]
    columns = ["user_ref", "category_ref", "category_type", "value"]
    if provenance:
        columns += ["_source", "_file", "_line"]
        rows = [(*row, "hr", "hr.csv", 1) for row in rows]
    if not rows:
        return empty_frame(columns)
    return pd.DataFrame(rows, columns=columns)


def _groups(persons: list[Person]) -> pd.DataFrame:
    refs = sorted({g for p in persons for g in (*p.groups, *p.manages)})
    frame = pd.DataFrame(
        {"name": [f"Group {r}" for r in refs], "_source": ["dept"] * len(refs)}, dtype=object
    )
    frame.index = pd.Index(refs, dtype=object, name="ref")
    return frame


def _refs_frame(refs: Iterable[str], column: str, value: str) -> pd.DataFrame:
    refs = list(refs)
    frame = pd.DataFrame({column: [value] * len(refs)}, dtype=object)
    frame.index = pd.Index(refs, dtype=object, name="ref")
    return frame


def desired_state(
    *persons: Person,
    ended: Iterable[str] = (),
    pending: Iterable[str] = (),
    rejected: Iterable[str] = (),
    warned: Iterable[str] = (),
) -> Desired:
    """What the sources say, as the mapping would hand it to the diff.

    ended: refs whose end date passed (not synced users, as the mapping leaves them);
    pending: pre-hires not created yet; rejected: refs of rows rejected with severity
    "error" (not synced); warned: refs of synced users whose row had a warning.
    """
    listed = list(persons)
    desired = Desired()
    desired.users = _users_frame(listed)
    desired.groups = _groups(listed)
    desired.memberships = _pairs(listed, "groups")
    desired.managers = _pairs(listed, "manages")
    desired.extra_values = _values(listed, provenance=True)
    desired.ended = _refs_frame(ended, "end_date", "2024-05-31")
    desired.pending = _refs_frame(pending, "start_date", "2024-09-01")
    rejections = [
        ("hr", "hr.csv", 90 + i, "E-mailadres", ref, "error", "invalid email")
        for i, ref in enumerate(rejected)
    ] + [
        ("hr", "hr.csv", 95 + i, "Leidinggevende", ref, "warning", "manager is not a synced user")
        for i, ref in enumerate(warned)
    ]
    if rejections:
        desired.rejections = pd.DataFrame(
            rejections, columns=["source", "file", "line", "column", "ref", "severity", "reason"]
        )
    desired.source_rows = {"hr": len(listed)}
    return desired


def state_view(*users: Person | Stored) -> StateView:
    """The store after the engine applied these users (and their groups) earlier."""
    stored = [u if isinstance(u, Stored) else Stored(u) for u in users]
    persons = [s.person for s in stored]
    frame = _users_frame(persons)
    memberships = _pairs(persons, "groups")
    values = _values(persons, provenance=False)
    index = frame.index
    view = pd.DataFrame(
        {
            "fields_hash": fields_hash(frame).to_numpy(dtype=np.int64),
            "extras_hash": extras_hash_at(values, index),
            "groups_hash": groups_hash_at(memberships, index),
            "archived": np.array([s.left_action == "archive" for s in stored], dtype=bool),
            "left_action": pd.Series([s.left_action for s in stored], dtype=object).to_numpy(),
            "missing_since": pd.Series([s.missing_since for s in stored], dtype=object).to_numpy(),
            "missing_runs": np.array([s.missing_runs for s in stored], dtype=np.int64),
        },
        index=index,
    )
    ids = pd.DataFrame(
        {"pluvo_id": [s.known_id() for s in stored]},
        index=index,
        dtype=object,
    )
    groups = _groups(persons)[["name"]]

    def load_fields(refs: list[str]) -> pd.DataFrame:
        return frame.loc[index.intersection(refs), list(USER_FIELDS)]

    def load_extras(refs: list[str]) -> pd.DataFrame:
        return values[values["user_ref"].isin(refs)].reset_index(drop=True)

    def load_memberships(refs: list[str]) -> pd.DataFrame:
        return memberships[memberships["user_ref"].isin(refs)].reset_index(drop=True)

    def load_ids(refs: list[str]) -> pd.DataFrame:
        return ids.loc[index.intersection(refs)]

    return StateView(
        view,
        groups,
        _pairs(persons, "manages"),
        load_fields,
        load_extras,
        load_memberships,
        load_ids=load_ids,
    )


def plan_for(
    desired: Desired, state: StateView, leavers: LeaverConfig | None = None, now: datetime = NOW
) -> Any:
    """The diff's plan, with a fixed clock (grace_runs=0 unless `leavers` says otherwise)."""
    config = leavers if leavers is not None else LeaverConfig(grace_runs=0)
    return diff(desired, state, DiffOptions(leavers=config, now=now))


def kinds_by_ref(plan: Any) -> dict[str, list[str]]:
    """ref → the kinds (as strings) of its operations, in plan order."""
    out: dict[str, list[str]] = {}
    for op in plan.operations:
        out.setdefault(op.ref, []).append(str(op.kind))
    return out


def _leaver_attribute(op: Any, name: str) -> Any:
    value = getattr(op, name, None)
    if value is None:
        data = getattr(op, "data", None) or {}
        value = data.get(name)
    return value


def archive_method(op: Any) -> str | None:
    """ "upsert", "update" or "bulk": how a leaver operation archives."""
    return _leaver_attribute(op, "method")  # type: ignore[no-any-return]


def pluvo_id(op: Any) -> str | None:
    return _leaver_attribute(op, "pluvo_id")  # type: ignore[no-any-return]


def leaver_reason(op: Any) -> str | None:
    """ "gone from the sources" or "end date passed"."""
    return _leaver_attribute(op, "reason")  # type: ignore[no-any-return]
