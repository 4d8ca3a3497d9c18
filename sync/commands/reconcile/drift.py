"""Reconcile's report: the three sets (desired, owned, present) compared with merges.

A pure function of its frames, so the interesting cases are unit tests: what Pluvo
has that HR does not know (left alone), drift in what the engine applied (its to
correct), members of owned groups the engine did not add (reported, never removed),
and owned rows whose Pluvo object vanished.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sync.commands.reconcile.live import PAIR_COLUMNS, LiveSnapshot
from sync.core.diff import UNMANAGED_WHEN_EMPTY
from sync.model import USER_FIELDS, Desired
from sync.state.read import Owned

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


def pairs(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[list(PAIR_COLUMNS)].astype(str).drop_duplicates()


def flag(left: pd.DataFrame, right: pd.DataFrame, on: list[str], name: str) -> pd.DataFrame:
    """`left` with a boolean column `name`: is the key also in `right`?"""
    keys = right[on].drop_duplicates().assign(**{name: True})
    merged = left.merge(keys, on=on, how="left")
    merged[name] = merged[name].fillna(False).astype(bool)
    return merged


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
        ours, theirs, wanted = pairs(ours), pairs(theirs), pairs(wanted)
        checkable = ours[ours["user_ref"].isin(both) & ours["group_ref"].isin(live.groups.index)]
        flagged = flag(checkable, theirs, list(PAIR_COLUMNS), "live")
        missing = flagged.loc[~flagged["live"], list(PAIR_COLUMNS)]
        missing_parts.append(missing.assign(relation=relation))
        seen = theirs[theirs["group_ref"].isin(owned_group_refs)]
        flagged = flag(seen, ours, list(PAIR_COLUMNS), "ours")
        flagged = flag(flagged, wanted, list(PAIR_COLUMNS), "wanted")
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
