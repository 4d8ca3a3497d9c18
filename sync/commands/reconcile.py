"""`pluvo-sync reconcile [--apply]`: live Pluvo against the desired and the owned state.

The regular run compares HR (desired) with the state store (owned) and trusts that
Pluvo still holds what the engine applied. Reconcile checks that trust: it reads live
Pluvo (present) and compares the three sets. What it reports:

- users in Pluvo that HR does not know (never touched);
- users in HR whose live fields, values or memberships differ from what the engine
  applied (drift the engine owns);
- members and managers of owned groups that the engine did not add (reported,
  never removed: they are not ours);
- state rows whose Pluvo object vanished.

`--apply` does not invent a second write path. It builds the same `StateView` the
diff engine reads from the store, but from live data restricted to what the engine
owns (foreign members and values are left out, so the diff can never remove them),
and lets the ordinary diff, guards and journaled executor correct the drift. Then
the store is refreshed where Pluvo already matches HR, so that the next run and the
next reconcile agree with Pluvo.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.orm import Session

from sync.commands.live import PAIR_COLUMNS, VALUE_COLUMNS, LiveSnapshot, read_live
from sync.config import Config, LeaverConfig
from sync.core import guards
from sync.core.adopt import Adoption, Match, adopt_in_plan, reject_ambiguous
from sync.core.diff import UNMANAGED_WHEN_EMPTY, DiffOptions, diff
from sync.core.engine import source_history
from sync.core.executor import Execution, Executor, journal_plan, settle_dead_runs
from sync.core.plan import Kind, Plan
from sync.errors import ExitCode, SyncError
from sync.files import write_private
from sync.hashing import extras_hash, fields_hash, groups_hash
from sync.logs import redact
from sync.model import USER_FIELDS, Desired, StateView
from sync.state import write
from sync.state.models import (
    ExtraValueRow,
    GroupRow,
    ManagerRow,
    MembershipRow,
    UserRow,
)
from sync.state.read import read_frame
from sync.state.store import StateStore, now, require_current

log = logging.getLogger(__name__)

SHOWN = 10
"""Examples per drift kind in the readable report (the JSON has them all)."""

DRIFT_KINDS = (
    "unknown_users",
    "field_drift",
    "value_drift",
    "membership_drift",
    "foreign_members",
    "vanished",
)
# Drift that is ours to correct (and so makes the exit code 3); the other kinds are
# facts about things the engine does not own and are only reported.
OWNED_KINDS = ("field_drift", "value_drift", "membership_drift", "vanished")

_FOREVER = 10**9  # missing runs that satisfy any leaver grace


# ------------------------------------------------------------------ the owned set


@dataclass
class Owned:
    """The whole state store as frames (what the engine applied and owns)."""

    users: pd.DataFrame  # index ref; pluvo_id, USER_FIELDS, owned, archived, left_action, ...
    groups: pd.DataFrame  # index ref; pluvo_id, name
    memberships: pd.DataFrame  # group_ref, user_ref
    managers: pd.DataFrame  # group_ref, user_ref
    extra_values: pd.DataFrame  # user_ref, category_ref, category_type, value


def read_owned(engine: Engine) -> Owned:
    users = read_frame(
        engine,
        select(
            UserRow.ref,
            UserRow.pluvo_id,
            *(getattr(UserRow, f) for f in USER_FIELDS),
            UserRow.owned,
            UserRow.archived,
            UserRow.left_action,
            UserRow.missing_since,
            UserRow.missing_runs,
        ),
    ).set_index("ref")
    users["archived"] = users["archived"].astype(bool)
    users["missing_runs"] = users["missing_runs"].astype("int64")
    users["left_action"] = users["left_action"].astype(object)
    groups = read_frame(engine, select(GroupRow.ref, GroupRow.pluvo_id, GroupRow.name)).set_index(
        "ref"
    )
    return Owned(
        users=users,
        groups=groups,
        memberships=read_frame(engine, select(MembershipRow.group_ref, MembershipRow.user_ref)),
        managers=read_frame(engine, select(ManagerRow.group_ref, ManagerRow.user_ref)),
        extra_values=read_frame(
            engine,
            select(
                ExtraValueRow.user_ref,
                ExtraValueRow.category_ref,
                ExtraValueRow.category_type,
                ExtraValueRow.value,
            ),
        ),
    )


# ------------------------------------------------------------------ helpers on sets


def _pairs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(PAIR_COLUMNS)].astype(str).drop_duplicates()


def _flag(left: pd.DataFrame, right: pd.DataFrame, on: list[str], name: str) -> pd.DataFrame:
    """`left` with a boolean column `name`: is the key also in `right`?"""
    keys = right[on].drop_duplicates().assign(**{name: True})
    merged = left.merge(keys, on=on, how="left")
    merged[name] = merged[name].fillna(False).astype(bool)
    return merged


def _live_fields(desired: Desired, live: LiveSnapshot, refs: pd.Index) -> pd.DataFrame:
    """Live user fields as the diff should see them.

    An empty desired language or role list means "not managed by the mapping" (the
    diff never sends it), so whatever Pluvo has there is not drift: the field is
    blanked to match.
    """
    fields = live.users.loc[refs, list(USER_FIELDS)].copy()
    for name in UNMANAGED_WHEN_EMPTY:
        wanted = desired.users[name].reindex(refs) if name in desired.users else None
        if wanted is not None:
            fields.loc[wanted.eq("").to_numpy(), name] = ""
    return fields


def _restricted(
    live_frame: pd.DataFrame, keys: list[str], owned_refs: pd.Index, *claims: pd.DataFrame
) -> pd.DataFrame:
    """Live rows of owned users whose key is claimed by the engine (owned or desired)."""
    frame = live_frame[live_frame["user_ref"].isin(owned_refs)]
    claimed = pd.concat([c[keys].astype(str) for c in claims], ignore_index=True)
    return frame.merge(claimed.drop_duplicates(), on=keys, how="inner")


# ------------------------------------------------------------------ drift (report)


@dataclass
class Drift:
    unknown_users: pd.DataFrame  # ref, email, name, archived
    field_drift: pd.DataFrame  # ref, field, applied, live
    value_drift: pd.DataFrame  # ref, category, applied, live
    membership_drift: pd.DataFrame  # relation, group_ref, user_ref (owned, missing live)
    foreign_members: pd.DataFrame  # relation, group_ref, user_ref, user_owned
    vanished: pd.DataFrame  # kind, ref, pluvo_id, desired, now_ref

    def frames(self) -> dict[str, pd.DataFrame]:
        return {kind: getattr(self, kind) for kind in DRIFT_KINDS}

    def counts(self) -> dict[str, int]:
        return {kind: len(frame) for kind, frame in self.frames().items()}

    @property
    def owned_total(self) -> int:
        return sum(len(getattr(self, kind)) for kind in OWNED_KINDS)


def compute_drift(desired: Desired, owned: Owned, live: LiveSnapshot) -> Drift:
    """The three sets compared with merges on ref; a pure function (unit-tested)."""
    known = desired.users.index.union(desired.pending.index).union(owned.users.index)
    strangers = live.users[~live.users.index.isin(known)]
    unknown = pd.concat(
        [
            strangers.reset_index()[["ref", "email", "name", "archived"]],
            live.unreffed.assign(ref="")[["ref", "email", "name", "archived"]],
        ],
        ignore_index=True,
    ).sort_values(["ref", "email"], kind="stable", ignore_index=True)

    both = owned.users.index.intersection(live.users.index)
    in_hr = both.intersection(desired.users.index)

    applied = owned.users.loc[in_hr, list(USER_FIELDS)].rename_axis("ref").reset_index()
    present = live.users.loc[in_hr, list(USER_FIELDS)].rename_axis("ref").reset_index()
    fields = applied.melt(id_vars="ref", var_name="field", value_name="applied").merge(
        present.melt(id_vars="ref", var_name="field", value_name="live"), on=["ref", "field"]
    )
    unmanaged = fields["field"].isin(list(UNMANAGED_WHEN_EMPTY)) & fields["applied"].eq("")
    fields = fields[(fields["applied"] != fields["live"]) & ~unmanaged]
    archived = pd.DataFrame(
        {
            "ref": both,
            "field": "archived",
            "applied": owned.users.loc[both, "archived"].map({True: "true", False: "false"}),
            "live": live.users.loc[both, "archived"].map({True: "true", False: "false"}),
        }
    ).reset_index(drop=True)
    archived = archived[archived["applied"] != archived["live"]]
    field_drift = pd.concat([fields, archived], ignore_index=True).sort_values(
        ["ref", "field"], kind="stable", ignore_index=True
    )

    state_values = owned.extra_values[owned.extra_values["user_ref"].isin(in_hr)]
    values = state_values.merge(
        live.extra_values[["user_ref", "category_ref", "value"]],
        on=["user_ref", "category_ref"],
        how="left",
        suffixes=("", "_live"),
    )
    values = values[values["value"] != values["value_live"]]
    value_drift = (
        pd.DataFrame(
            {
                "ref": values["user_ref"],
                "category": values["category_ref"],
                "applied": values["value"],
                "live": values["value_live"].fillna(""),
            }
        )
        .sort_values(["ref", "category"], kind="stable")
        .reset_index(drop=True)
    )

    missing_parts, foreign_parts = [], []
    owned_group_refs = owned.groups.index
    for relation, ours, theirs, wanted in (
        ("member", owned.memberships, live.memberships, desired.memberships),
        ("manager", owned.managers, live.managers, desired.managers),
    ):
        ours, theirs, wanted = _pairs(ours), _pairs(theirs), _pairs(wanted)
        checkable = ours[ours["user_ref"].isin(both) & ours["group_ref"].isin(live.groups.index)]
        flagged = _flag(checkable, theirs, list(PAIR_COLUMNS), "live")
        missing = flagged.loc[~flagged["live"], list(PAIR_COLUMNS)]
        missing_parts.append(missing.assign(relation=relation))
        seen = theirs[theirs["group_ref"].isin(owned_group_refs)]
        flagged = _flag(seen, ours, list(PAIR_COLUMNS), "ours")
        flagged = _flag(flagged, wanted, list(PAIR_COLUMNS), "wanted")
        foreign = flagged.loc[~flagged["ours"] & ~flagged["wanted"], list(PAIR_COLUMNS)]
        foreign_parts.append(
            foreign.assign(relation=relation, user_owned=foreign["user_ref"].isin(both))
        )
    membership_drift = pd.concat(missing_parts, ignore_index=True)[
        ["relation", "group_ref", "user_ref"]
    ].sort_values(["relation", "group_ref", "user_ref"], kind="stable", ignore_index=True)
    foreign_members = pd.concat(foreign_parts, ignore_index=True)[
        ["relation", "group_ref", "user_ref", "user_owned"]
    ].sort_values(["relation", "group_ref", "user_ref"], kind="stable", ignore_index=True)

    vanished = _vanished(desired, owned, live)
    return Drift(unknown, field_drift, value_drift, membership_drift, foreign_members, vanished)


def _vanished(desired: Desired, owned: Owned, live: LiveSnapshot) -> pd.DataFrame:
    """Owned rows with no live object; a user whose Pluvo id lives on under another ref
    was re-keyed by hand (`now_ref`)."""
    gone_users = owned.users.loc[~owned.users.index.isin(live.users.index), ["pluvo_id"]]
    by_id = live.users.reset_index()[["ref", "pluvo_id"]].rename(columns={"ref": "now_ref"})
    users = (
        gone_users.rename_axis("ref")
        .reset_index()
        .merge(by_id, on="pluvo_id", how="left")
        .assign(kind="user")
    )
    users["desired"] = users["ref"].isin(desired.users.index)
    gone_groups = owned.groups.loc[~owned.groups.index.isin(live.groups.index), ["pluvo_id"]]
    groups = gone_groups.rename_axis("ref").reset_index().assign(kind="group", now_ref=None)
    groups["desired"] = groups["ref"].isin(desired.groups.index)
    columns = ["kind", "ref", "pluvo_id", "desired", "now_ref"]
    frame = pd.concat([users[columns], groups[columns]], ignore_index=True)
    frame["now_ref"] = frame["now_ref"].astype(object).where(frame["now_ref"].notna(), "")
    return frame.sort_values(["kind", "ref"], kind="stable", ignore_index=True)


# ------------------------------------------------------------------ the live view


def live_view(
    desired: Desired, owned: Owned, live: LiveSnapshot, leavers: LeaverConfig | None = None
) -> StateView:
    """A StateView of live Pluvo restricted to what the engine owns.

    Users are the owned users as Pluvo has them (a vanished one is absent, so the diff
    re-creates it); extra values, memberships and managers are live rows of owned
    users whose key is owned in the store or desired, so a value or a member the
    engine never claimed is invisible to the diff and can never be removed.
    """
    refs = owned.users.index.intersection(live.users.index)
    fields = _live_fields(desired, live, refs)
    extras = _restricted(
        live.extra_values,
        ["user_ref", "category_ref"],
        refs,
        desired.extra_values,
        owned.extra_values,
    )
    memberships = _restricted(
        live.memberships, list(PAIR_COLUMNS), refs, desired.memberships, owned.memberships
    )
    managers = _restricted(
        live.managers, list(PAIR_COLUMNS), refs, desired.managers, owned.managers
    )

    state = owned.users.loc[refs]
    users = pd.DataFrame(index=pd.Index(refs, name="ref"))
    users["pluvo_id"] = live.users.loc[refs, "pluvo_id"]
    users["fields_hash"] = fields_hash(fields).reindex(refs).astype("int64")
    users["extras_hash"] = extras_hash(extras).reindex(refs, fill_value=0).astype("int64")
    users["groups_hash"] = groups_hash(memberships).reindex(refs, fill_value=0).astype("int64")
    users["owned"] = state["owned"]
    archived = live.users.loc[refs, "archived"].astype(bool)
    users["archived"] = archived
    left = state["left_action"].astype(object).copy()
    missing_runs = state["missing_runs"].astype("int64").copy()
    missing_since = pd.to_datetime(state["missing_since"], utc=True).copy()
    wanted = refs.isin(desired.users.index)
    # Archived in Pluvo while HR still wants them: the diff's restore brings them back.
    left[(left.isna() & archived & wanted).to_numpy()] = "archive"
    # The engine archived or deactivated a leaver and someone undid it in Pluvo: the
    # leaver is due again at once (grace was served when the engine first acted).
    undone = (
        left.notna().to_numpy()
        & ~wanted
        & (
            ((left == "archive") & ~archived)
            | ((left == "deactivate") & live.users.loc[refs, "is_active"].eq("true"))
        ).to_numpy()
    )
    left[undone] = None
    missing_runs[undone] = _FOREVER
    missing_since[undone] = pd.Timestamp("1970-01-01", tz="UTC")
    users["left_action"] = left
    users["missing_since"] = missing_since
    users["missing_runs"] = missing_runs

    groups = live.groups[["name", "pluvo_id"]]

    def load_fields(wanted_refs: list[str]) -> pd.DataFrame:
        return fields.loc[fields.index.intersection(wanted_refs)]

    def load_extras(wanted_refs: list[str]) -> pd.DataFrame:
        return extras[extras["user_ref"].isin(wanted_refs)][list(VALUE_COLUMNS)]

    def load_memberships(wanted_refs: list[str]) -> pd.DataFrame:
        return memberships[memberships["user_ref"].isin(wanted_refs)][list(PAIR_COLUMNS)]

    return StateView(users, groups, managers, load_fields, load_extras, load_memberships)


def adoption_from_live(plan: Plan, live: LiveSnapshot, match: Collection[str]) -> Adoption:
    """sync.core.adopt's matching, answered from the snapshot instead of one lookup per user.

    A creation whose ref Pluvo already has is an adoption by ref; one whose email
    belongs to a Pluvo user without a ref is an adoption by email; an email held by a
    user with another ref is ambiguous (the row is rejected, never merged).
    """
    result = Adoption({}, {})
    by_email: dict[str, tuple[str | None, str, bool]] = {}
    if "email" in match:
        for ref, row in live.users[["email", "pluvo_id", "archived"]].iterrows():
            if row["email"]:
                by_email[str(row["email"])] = (
                    str(ref),
                    str(row["pluvo_id"]),
                    bool(row["archived"]),
                )
        for loose in live.unreffed.to_dict(orient="records"):
            if loose["email"]:
                by_email.setdefault(
                    str(loose["email"]), (None, str(loose["pluvo_id"]), bool(loose["archived"]))
                )
    for op in plan.operations:
        if op.kind is not Kind.CREATE_USER:
            continue
        ref = op.ref
        if "ref" in match and ref in live.users.index:
            found = live.users.loc[ref]
            result.matches[ref] = Match(
                ref, "ref", str(found["pluvo_id"]), ref, bool(found["archived"])
            )
            continue
        email = str(op.data["fields"].get("email") or "")
        hit = by_email.get(email) if email else None
        if hit is None:
            continue
        other, pluvo_id, archived = hit
        if other and other != ref:
            result.ambiguous[ref] = (
                f"email {email} already belongs to Pluvo user with ref '{other}'; "
                "not adopted (fix the ref or the email in the HR system or in Pluvo)"
            )
        elif other is None:
            result.matches[ref] = Match(ref, "email", pluvo_id, None, archived)
    return result


# ------------------------------------------------------------------ refreshing the store


@dataclass
class Refresh:
    """Store corrections where Pluvo already matches HR (computed before applying)."""

    users: list[tuple[str, Mapping[str, str], str | None, bool]] = field(default_factory=list)
    pluvo_ids: list[dict[str, str]] = field(default_factory=list)
    groups: list[tuple[str, str, str | None, str]] = field(default_factory=list)
    pairs: list[tuple[str, str, list[str], bool]] = field(default_factory=list)
    values: list[tuple[str, list[tuple[str, str, str | None]]]] = field(default_factory=list)
    dropped_users: list[str] = field(default_factory=list)
    dropped_groups: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {
            "users": len(self.users),
            "pluvo_ids": len(self.pluvo_ids),
            "groups": len(self.groups),
            "pairs": sum(len(p[2]) for p in self.pairs),
            "values": sum(len(v[1]) for v in self.values),
            "dropped_users": len(self.dropped_users),
            "dropped_groups": len(self.dropped_groups),
        }


def plan_refresh(desired: Desired, owned: Owned, live: LiveSnapshot, plan: Plan) -> Refresh:
    """What the store should learn from Pluvo, for things the plan does not touch.

    Disjoint from the plan by construction: a pair present live and desired is in the
    live view (no operation), a value equal live and desired yields no operation, and
    rows that are neither live nor desired yield none either.
    """
    refresh = Refresh()
    both = owned.users.index.intersection(live.users.index)
    touched = {op.ref for op in plan.operations if op.phase == 1}

    # Users whose live fields already are what HR wants, while the store says otherwise.
    calm = both.intersection(desired.users.index)
    calm = calm[
        owned.users.loc[calm, "left_action"].isna().to_numpy()
        & ~live.users.loc[calm, "archived"].astype(bool).to_numpy()
    ]
    calm = calm[~calm.isin(list(touched))]
    if len(calm):
        want = desired.users.loc[calm, list(USER_FIELDS)].astype(str)
        have = _live_fields(desired, live, calm)
        stored = owned.users.loc[calm, list(USER_FIELDS)].astype(str)
        same_live = (want.to_numpy() == have.to_numpy()).all(axis=1)
        stale = (want.to_numpy() != stored.to_numpy()).any(axis=1)
        for ref, row in want[same_live & stale].iterrows():
            pluvo_id = str(live.users.at[ref, "pluvo_id"])
            refresh.users.append((str(ref), {k: str(v) for k, v in row.items()}, pluvo_id, False))

    ids = pd.DataFrame(
        {"stored": owned.users.loc[both, "pluvo_id"], "live": live.users.loc[both, "pluvo_id"]}
    )
    for ref, row in ids[ids["stored"] != ids["live"]].iterrows():
        refresh.pluvo_ids.append({"b_ref": str(ref), "b_id": str(row["live"])})

    for ref in desired.groups.index.intersection(live.groups.index):
        name = str(live.groups.at[ref, "name"])
        if ref not in owned.groups.index:
            refresh.groups.append((str(ref), name, str(live.groups.at[ref, "pluvo_id"]), "adopted"))
        elif name == str(desired.groups.at[ref, "name"]) != str(owned.groups.at[ref, "name"]):
            refresh.groups.append((str(ref), name, None, "created"))

    for relation, mine, theirs, wanted in (
        ("member", owned.memberships, live.memberships, desired.memberships),
        ("manager", owned.managers, live.managers, desired.managers),
    ):
        mine, theirs, wanted = _pairs(mine), _pairs(theirs), _pairs(wanted)
        adopt = _flag(
            _flag(theirs, wanted, list(PAIR_COLUMNS), "wanted"), mine, list(PAIR_COLUMNS), "ours"
        )
        adopt = adopt[adopt["wanted"] & ~adopt["ours"] & adopt["user_ref"].isin(both)]
        stale = _flag(
            _flag(mine, theirs, list(PAIR_COLUMNS), "live"), wanted, list(PAIR_COLUMNS), "wanted"
        )
        stale = stale[
            ~stale["live"]
            & ~stale["wanted"]
            & stale["user_ref"].isin(both)
            & stale["group_ref"].isin(live.groups.index)
        ]
        for frame, add in ((adopt, True), (stale, False)):
            for group_ref, users in frame.groupby("group_ref", sort=True)["user_ref"]:
                refresh.pairs.append((relation, str(group_ref), sorted(users.astype(str)), add))

    managed = _restricted(
        live.extra_values, ["user_ref", "category_ref"], both, desired.extra_values
    )
    merged = managed.merge(
        desired.extra_values[["user_ref", "category_ref", "value"]],
        on=["user_ref", "category_ref"],
        suffixes=("", "_wanted"),
    )
    merged = merged[merged["value"] == merged["value_wanted"]]
    merged = _flag(merged, owned.extra_values, ["user_ref", "category_ref", "value"], "stored")
    updates: dict[str, list[tuple[str, str, str | None]]] = {}
    for rec in merged[~merged["stored"]].to_dict(orient="records"):
        updates.setdefault(str(rec["user_ref"]), []).append(
            (str(rec["category_ref"]), str(rec["category_type"]), str(rec["value"]))
        )
    stored = owned.extra_values[owned.extra_values["user_ref"].isin(both)]
    stored = _flag(stored, live.extra_values, ["user_ref", "category_ref"], "live")
    stored = _flag(stored, desired.extra_values, ["user_ref", "category_ref"], "wanted")
    for rec in stored[~stored["live"] & ~stored["wanted"]].to_dict(orient="records"):
        updates.setdefault(str(rec["user_ref"]), []).append(
            (str(rec["category_ref"]), str(rec["category_type"]), None)
        )
    refresh.values = sorted(updates.items())

    gone = owned.users.index[~owned.users.index.isin(live.users.index)]
    keep = desired.users.index.union(desired.pending.index)
    refresh.dropped_users = sorted(str(r) for r in gone[~gone.isin(keep)])
    gone_groups = owned.groups.index[~owned.groups.index.isin(live.groups.index)]
    refresh.dropped_groups = sorted(
        str(r) for r in gone_groups[~gone_groups.isin(desired.groups.index)]
    )
    return refresh


def apply_refresh(session: Session, refresh: Refresh, stamp: datetime) -> None:
    """Write a Refresh in the caller's transaction, with write.py's functions."""
    write.record_users(session, refresh.users, stamp)
    if refresh.pluvo_ids:
        from sqlalchemy import bindparam

        session.execute(
            update(UserRow.__table__)  # type: ignore[arg-type]
            .where(UserRow.__table__.c.ref == bindparam("b_ref"))
            .values(pluvo_id=bindparam("b_id")),
            refresh.pluvo_ids,
        )
    for ref, name, pluvo_id, how in refresh.groups:
        write.record_group(session, ref, name, pluvo_id, how)
    for relation, group_ref, users, add in refresh.pairs:
        table = MembershipRow if relation == "member" else ManagerRow
        write.record_pairs(session, table, group_ref, users, add=add)
    write.record_values(session, refresh.values)
    for start in range(0, len(refresh.dropped_users), 900):
        chunk = refresh.dropped_users[start : start + 900]
        session.execute(delete(MembershipRow).where(MembershipRow.user_ref.in_(chunk)))
        session.execute(delete(ManagerRow).where(ManagerRow.user_ref.in_(chunk)))
        session.execute(delete(ExtraValueRow).where(ExtraValueRow.user_ref.in_(chunk)))
        session.execute(delete(UserRow).where(UserRow.ref.in_(chunk)))
    for start in range(0, len(refresh.dropped_groups), 900):
        chunk = refresh.dropped_groups[start : start + 900]
        affected = list(
            session.scalars(
                select(MembershipRow.user_ref).where(MembershipRow.group_ref.in_(chunk))
            )
        )
        session.execute(delete(MembershipRow).where(MembershipRow.group_ref.in_(chunk)))
        session.execute(delete(ManagerRow).where(ManagerRow.group_ref.in_(chunk)))
        session.execute(delete(GroupRow).where(GroupRow.ref.in_(chunk)))
        write.rehash_groups(session, sorted(set(affected)))


# ------------------------------------------------------------------ the command


@dataclass
class ReconcileReport:
    run_id: str
    apply: bool
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"
    exit_code: int = 0
    message: str | None = None
    drift: Drift | None = None
    plan: Plan | None = None
    execution: Execution | None = None
    refresh: Refresh | None = None
    guards: list[str] = field(default_factory=list)
    live_counts: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    rejected: int = 0

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "mode": "reconcile",
            "apply": self.apply,
            "status": self.status,
            "exit_code": self.exit_code,
            "message": self.message,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "live": self.live_counts,
            "requests": self.requests,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "guards": self.guards,
            "rejected_rows": self.rejected,
        }
        if self.drift is not None:
            data["drift_counts"] = self.drift.counts()
            data["drift"] = {
                kind: json.loads(frame.to_json(orient="records", force_ascii=False))
                for kind, frame in self.drift.frames().items()
            }
        if self.plan is not None:
            data["planned"] = self.plan.counts()
            data["plan"] = self.plan.to_json()
        if self.execution is not None:
            ex = self.execution
            data["applied"] = ex.done
            data["failed"] = [{"kind": f.kind, "ref": f.ref, "error": f.error} for f in ex.failed]
            data["skipped"] = ex.skipped
        if self.refresh is not None:
            data["state_refreshed"] = self.refresh.counts()
        return data


async def _read(config: Config, report: ReconcileReport) -> LiveSnapshot:
    from sync.pluvo.client import PluvoClient

    async with PluvoClient(config.pluvo) as client:
        snapshot = await read_live(client)
        report.requests += client.counters.requests
    return snapshot


async def _execute(config: Config, store: StateStore, run_id: str, plan: Plan) -> Execution:
    from sync.pluvo.client import PluvoClient

    if not plan.operations:
        return Execution()
    async with PluvoClient(config.pluvo) as client:
        executor = Executor(store, client, run_id, send_invite=config.pluvo.send_invite)
        execution = await executor.execute(plan)
        execution.requests = client.counters.requests
        return execution


def _compare(
    config: Config,
    store: StateStore,
    report: ReconcileReport,
    *,
    overrides: Collection[str],
    today: date | None,
) -> tuple[Desired, Owned, LiveSnapshot, Plan]:
    from sync.core.load import load

    t0 = time.monotonic()
    desired = load(config, today=today).desired
    from sync.model import is_warning

    if not desired.rejections.empty:
        report.rejected = int((~is_warning(desired.rejections)).sum())
    t1 = time.monotonic()
    live = asyncio.run(_read(config, report))
    t2 = time.monotonic()
    owned = read_owned(store.engine)
    report.live_counts = {
        "users": len(live.users) + len(live.unreffed),
        "groups": len(live.groups) + live.unreffed_groups,
        "memberships": len(live.memberships),
        "managers": len(live.managers),
        "extra_values": len(live.extra_values),
        "user_pages": live.user_pages,
    }
    report.drift = compute_drift(desired, owned, live)
    options = DiffOptions(leavers=config.leavers)
    plan = diff(desired, live_view(desired, owned, live), options)
    if config.adoption.match:
        adoption = adoption_from_live(plan, live, config.adoption.match)
        if adoption.ambiguous:
            reject_ambiguous(desired, adoption.ambiguous)
            report.rejected += len(adoption.ambiguous)
            plan = diff(desired, live_view(desired, owned, live), options)
        adopt_in_plan(plan, adoption.matches)
    report.plan = plan
    report.timings.update(
        {"read_and_map": t1 - t0, "read_live": t2 - t1, "compare": time.monotonic() - t2}
    )
    tripped = guards.check(
        plan,
        config.safety,
        source_rows=desired.source_rows,
        history=source_history(store, config.safety.source_history_runs),
        overrides=overrides,
    )
    report.guards = [str(t) for t in tripped]
    return desired, owned, live, plan


def reconcile(
    config: Config,
    *,
    apply: bool,
    overrides: Collection[str] = (),
    today: date | None = None,
) -> ReconcileReport:
    """Report drift between live Pluvo, HR and the store; with `apply`, correct it."""
    from sync.core.engine import new_run_id

    report = ReconcileReport(run_id=new_run_id(), apply=apply, started_at=now())
    store = StateStore(config.state_url())
    try:
        require_current(store.engine)
        if not apply:
            _compare(config, store, report, overrides=overrides, today=today)
            assert report.drift is not None
            assert report.plan is not None
            pending = report.drift.owned_total > 0 or len(report.plan) > 0
            if report.guards:
                report.status, report.exit_code = "guarded", ExitCode.GUARD
            elif pending:
                report.status, report.exit_code = "drift", ExitCode.PARTIAL
            else:
                report.status, report.exit_code = "in_sync", ExitCode.OK
            report.finished_at = now()
            return report
        store.acquire_lock(report.run_id)
        try:
            _apply(config, store, report, overrides=overrides, today=today)
        finally:
            store.release_lock(report.run_id)
        return report
    finally:
        store.close()


def _apply(
    config: Config,
    store: StateStore,
    report: ReconcileReport,
    *,
    overrides: Collection[str],
    today: date | None,
) -> None:
    settled = settle_dead_runs(store)
    if settled:
        log.warning("settled %d interrupted run(s): %s", len(settled), ", ".join(settled))
    store.start_run(report.run_id, "reconcile")
    try:
        desired, owned, live, plan = _compare(
            config, store, report, overrides=overrides, today=today
        )
    except SyncError as exc:
        store.finish_run(
            report.run_id,
            status="failed",
            exit_code=int(exc.exit_code),
            summary={},
            source_rows={},
            message=str(exc),
        )
        raise
    if report.guards:
        report.status, report.exit_code = "guarded", ExitCode.GUARD
        report.message = "; ".join(report.guards)
        report.finished_at = now()
        store.finish_run(
            report.run_id,
            status="guarded",
            exit_code=ExitCode.GUARD,
            summary={"planned": plan.counts()},
            source_rows={},
            message=report.message,
        )
        return
    refresh = plan_refresh(desired, owned, live, plan)
    with store.session() as session, session.begin():
        journal_plan(session, report.run_id, plan)
    t0 = time.monotonic()
    execution = asyncio.run(_execute(config, store, report.run_id, plan))
    report.execution = execution
    report.requests += execution.requests
    report.timings["apply"] = time.monotonic() - t0
    if not execution.aborted:
        with store.session() as session, session.begin():
            apply_refresh(session, refresh, now())
        report.refresh = refresh
    if execution.aborted:
        report.status, report.exit_code = "failed", ExitCode.FAILED
    elif execution.failed:
        report.status, report.exit_code = "partial", ExitCode.PARTIAL
    else:
        report.status, report.exit_code = "succeeded", ExitCode.OK
    report.message = execution.aborted
    report.finished_at = now()
    assert report.drift is not None
    store.finish_run(
        report.run_id,
        status=report.status,
        exit_code=report.exit_code,
        summary={
            "drift": report.drift.counts(),
            "planned": plan.counts(),
            "applied": execution.done,
            "failed": len(execution.failed),
            "skipped": execution.skipped,
            "refreshed": refresh.counts(),
            "requests": report.requests,
        },
        source_rows={},
        message=report.message,
    )


# ------------------------------------------------------------------ output

_TITLES = {
    "unknown_users": "users in Pluvo unknown to HR (left alone)",
    "field_drift": "user fields changed in Pluvo",
    "value_drift": "extra values changed in Pluvo",
    "membership_drift": "memberships/managers the engine added, gone from Pluvo",
    "foreign_members": "members/managers of owned groups the engine did not add (left alone)",
    "vanished": "state rows whose Pluvo object vanished",
}


def _shown(text: Any) -> str:
    value = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    value = value.replace("\n", ", ")
    return f"'{value}'" if value else "(empty)"


def _example(kind: str, rec: Mapping[Any, Any]) -> str:
    if kind == "unknown_users":
        state = " (archived)" if rec["archived"] else ""
        return f"{rec['ref'] or '(no ref)'} <{rec['email']}> {rec['name']}{state}"
    if kind == "field_drift":
        return f"{rec['ref']} {rec['field']}: {_shown(rec['applied'])} → {_shown(rec['live'])}"
    if kind == "value_drift":
        return f"{rec['ref']} {rec['category']}: {_shown(rec['applied'])} → {_shown(rec['live'])}"
    if kind == "membership_drift":
        return f"{rec['relation']} {rec['user_ref']} of group {rec['group_ref']}: missing"
    if kind == "foreign_members":
        return f"{rec['relation']} {rec['user_ref']} of group {rec['group_ref']}"
    moved = f", now ref {rec['now_ref']}" if rec.get("now_ref") else ""
    again = ", recreated by --apply" if rec["desired"] else ""
    return f"{rec['kind']} {rec['ref']}{moved}{again}"


def render_reconcile(report: ReconcileReport, *, verbose: bool = False) -> str:
    from sync.commands.render import render_operation

    title = "Reconcile --apply" if report.apply else "Reconcile (report only, nothing sent)"
    live = report.live_counts
    out = [
        f"{title}: live Pluvo has {live.get('users', 0)} user(s), {live.get('groups', 0)} group(s)"
    ]
    if report.drift is not None:
        for kind, frame in report.drift.frames().items():
            out.append(f"  {kind:<18} {len(frame):>8}  {_TITLES[kind]}")
        for kind, frame in report.drift.frames().items():
            if frame.empty:
                continue
            limit = len(frame) if verbose else SHOWN
            out.append("")
            out.append(f"{_TITLES[kind].capitalize()}:")
            for rec in frame.head(limit).to_dict(orient="records"):
                out.append(f"  {_example(kind, rec)}")
            if len(frame) > limit:
                out.append(f"  … and {len(frame) - limit} more (use --verbose or --out)")
    plan = report.plan
    if plan is not None:
        counts = plan.counts()
        out.append("")
        verb = "Corrections applied from" if report.execution else "Corrections --apply would send"
        out.append(f"{verb}: {sum(counts.values())} operation(s)")
        for kind, count in counts.items():
            out.append(f"  {kind:<18} {count:>8}")
        shown = plan.operations if verbose else plan.operations[:SHOWN]
        for op in shown:
            out.extend(render_operation(op))
        if len(shown) < len(plan):
            out.append(f"  … and {len(plan) - len(shown)} more")
    if report.rejected:
        out.append(f"Rejected HR rows: {report.rejected} (see `pluvo-sync plan`)")
    if report.guards:
        out.append("")
        out.append("STOPPED by safety guard(s), nothing applied:")
        out.extend(f"  {g}" for g in report.guards)
    ex = report.execution
    if ex is not None:
        out.append("")
        applied = ", ".join(f"{k} {v}" for k, v in ex.done.items()) or "nothing"
        out.append(f"Applied: {applied}")
        for failure in ex.failed[:SHOWN]:
            out.append(f"  failed {failure.kind} {failure.ref}: {failure.error}")
        if ex.skipped:
            out.append(f"  not attempted: {ex.skipped} operation(s)")
    if report.refresh is not None:
        changed = {k: v for k, v in report.refresh.counts().items() if v}
        text = ", ".join(f"{k} {v}" for k, v in changed.items()) or "nothing to learn"
        out.append(f"State store refreshed from Pluvo: {text}")
    out.append("")
    out.append(
        f"Reconcile {report.run_id}: {report.status} (exit {report.exit_code}), "
        f"{report.requests} request(s)"
    )
    if report.message:
        out.append(f"  {report.message}")
    return "\n".join(out)


def reconcile_command(
    config: Config,
    *,
    apply: bool,
    out: Path | None,
    overrides: tuple[str, ...],
    verbose: bool,
) -> int:
    """The CLI's `reconcile`: run, write the JSON (to --out; and reports/ when applying),
    print the readable report, return the exit code."""
    report = reconcile(config, apply=apply, overrides=overrides)
    text = redact(json.dumps(report.to_json(), indent=2, default=str, ensure_ascii=False))
    if out is not None:
        write_private(out, text)
    if apply:
        write_private(config.report.dir / f"reconcile-{report.run_id}.json", text)
    sys.stdout.write(render_reconcile(report, verbose=verbose) + "\n")
    sys.stdout.flush()
    return int(report.exit_code)


__all__ = [
    "Drift",
    "Owned",
    "ReconcileReport",
    "Refresh",
    "apply_refresh",
    "compute_drift",
    "live_view",
    "plan_refresh",
    "read_owned",
    "reconcile",
    "reconcile_command",
    "render_reconcile",
]
