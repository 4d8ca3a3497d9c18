"""The live view: live Pluvo shaped as the store's StateView, restricted to what we own.

`reconcile --apply` hands it to the ordinary diff instead of the store's view, so
drift is corrected by the same plan, guards, journal and executor as a run, and a
value or member the engine never claimed is invisible to the diff and never removed.
"""

from __future__ import annotations

from collections.abc import Collection

import pandas as pd

from sync.commands.reconcile.live import PAIR_COLUMNS, VALUE_COLUMNS, LiveSnapshot
from sync.config import LeaverConfig
from sync.core.adopt import Adoption, PluvoUser, match_people
from sync.core.diff import UNMANAGED_WHEN_EMPTY
from sync.hashing import extras_hash, fields_hash, groups_hash
from sync.model import USER_FIELDS, Desired, StateView
from sync.state.read import Owned

_FOREVER = 10**9  # missing runs that satisfy any leaver grace


def live_fields(desired: Desired, live: LiveSnapshot, refs: pd.Index) -> pd.DataFrame:
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


def restricted(
    live_frame: pd.DataFrame, keys: list[str], owned_refs: pd.Index, *claims: pd.DataFrame
) -> pd.DataFrame:
    """Live rows of owned users whose key is claimed by the engine (owned or desired)."""
    frame = live_frame[live_frame["user_ref"].isin(owned_refs)]
    claimed = pd.concat([c[keys].astype(str) for c in claims], ignore_index=True)
    return frame.merge(claimed.drop_duplicates(), on=keys, how="inner")


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
    fields = live_fields(desired, live, refs)
    extras = restricted(
        live.extra_values,
        ["user_ref", "category_ref"],
        refs,
        desired.extra_values,
        owned.extra_values,
    )
    memberships = restricted(
        live.memberships, list(PAIR_COLUMNS), refs, desired.memberships, owned.memberships
    )
    managers = restricted(live.managers, list(PAIR_COLUMNS), refs, desired.managers, owned.managers)

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


def adoption_from_live(
    people: list[tuple[str, str]], live: LiveSnapshot, match: Collection[str]
) -> Adoption:
    """Adoption's matching rule (sync.core.adopt), answered from the snapshot instead
    of one lookup per user."""
    by_ref: dict[str, PluvoUser] = {}
    by_email: dict[str, PluvoUser] = {}
    for ref, row in live.users[["email", "pluvo_id", "archived"]].iterrows():
        user = PluvoUser(str(row["pluvo_id"]), str(ref), bool(row["archived"]))
        by_ref[str(ref)] = user
        if row["email"]:
            by_email[str(row["email"])] = user
    for loose in live.unreffed.to_dict(orient="records"):
        if loose["email"]:
            by_email.setdefault(
                str(loose["email"]),
                PluvoUser(str(loose["pluvo_id"]), None, bool(loose["archived"])),
            )
    return match_people(people, by_ref, by_email, match)
