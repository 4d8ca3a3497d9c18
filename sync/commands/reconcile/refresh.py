"""What the store learns from Pluvo where Pluvo already matches HR.

Computed before applying and disjoint from the plan by construction, written after
the plan was applied (and only if it was not aborted), with the state store's own
write functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from sqlalchemy.orm import Session

from sync.commands.reconcile.drift import flag, pairs
from sync.commands.reconcile.live import PAIR_COLUMNS, LiveSnapshot
from sync.commands.reconcile.view import live_fields, restricted
from sync.core.plan import Plan
from sync.model import USER_FIELDS, Desired
from sync.state import write
from sync.state.models import ManagerRow, MembershipRow
from sync.state.read import Owned


@dataclass
class Refresh:
    """Store corrections where Pluvo already matches HR (computed before applying)."""

    users: list[tuple[str, Mapping[str, str], str | None, bool]] = field(default_factory=list)
    pluvo_ids: list[tuple[str, str]] = field(default_factory=list)  # (ref, live id)
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

    def apply(self, session: Session, stamp: datetime) -> None:
        """Write it in the caller's transaction."""
        write.record_users(session, self.users, stamp)
        write.record_pluvo_ids(session, self.pluvo_ids)
        for ref, name, pluvo_id, how in self.groups:
            write.record_group(session, ref, name, pluvo_id, how)
        write.record_links(
            session,
            [
                (MembershipRow if relation == "member" else ManagerRow, group_ref, users, add)
                for relation, group_ref, users, add in self.pairs
            ],
        )
        write.record_values(session, self.values)
        write.forget_users(session, self.dropped_users)
        write.forget_groups(session, self.dropped_groups)


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
        have = live_fields(desired, live, calm)
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
        refresh.pluvo_ids.append((str(ref), str(row["live"])))

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
        mine, theirs, wanted = pairs(mine), pairs(theirs), pairs(wanted)
        adopt = flag(
            flag(theirs, wanted, list(PAIR_COLUMNS), "wanted"), mine, list(PAIR_COLUMNS), "ours"
        )
        adopt = adopt[adopt["wanted"] & ~adopt["ours"] & adopt["user_ref"].isin(both)]
        stale = flag(
            flag(mine, theirs, list(PAIR_COLUMNS), "live"), wanted, list(PAIR_COLUMNS), "wanted"
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

    managed = restricted(
        live.extra_values, ["user_ref", "category_ref"], both, desired.extra_values
    )
    merged = managed.merge(
        desired.extra_values[["user_ref", "category_ref", "value"]],
        on=["user_ref", "category_ref"],
        suffixes=("", "_wanted"),
    )
    merged = merged[merged["value"] == merged["value_wanted"]]
    merged = flag(merged, owned.extra_values, ["user_ref", "category_ref", "value"], "stored")
    updates: dict[str, list[tuple[str, str, str | None]]] = {}
    for rec in merged[~merged["stored"]].to_dict(orient="records"):
        updates.setdefault(str(rec["user_ref"]), []).append(
            (str(rec["category_ref"]), str(rec["category_type"]), str(rec["value"]))
        )
    stored = owned.extra_values[owned.extra_values["user_ref"].isin(both)]
    stored = flag(stored, live.extra_values, ["user_ref", "category_ref"], "live")
    stored = flag(stored, desired.extra_values, ["user_ref", "category_ref"], "wanted")
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
