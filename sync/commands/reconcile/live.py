"""Reading live Pluvo into frames shaped like the desired state, for reconcile.

Everything read is canonicalised exactly as the mapping canonicalises HR data
(sync/model.py), so that a live value and a desired value that mean the same thing
compare equal as strings and hash equal with sync.hashing. Without that, every
datetime or multiselect would look drifted.

Users are read with sync.pluvo.reads: the first page brings the count, the other
offset pages go out side by side, aliased several to a request, within
`pluvo.concurrency`, and a list that changed while it was read (the pages do not add
up) is read again by cursor rather than compared torn.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sync.model import USER_FIELDS, empty_frame
from sync.pluvo.api import PluvoApi
from sync.pluvo.reads import TornReadError, count_of, read_connection

log = logging.getLogger("sync.reconcile")

USER_NODE_SELECTION = (
    "id ref email name isActive archived roles language "
    "extraCategoryValues { __typename "
    "... on ExtraCategoryStringValue { category { ref } stringValue } "
    "... on ExtraCategoryDatetimeValue { category { ref } datetimeValue } "
    "... on ExtraCategoryBooleanValue { category { ref } booleanValue } "
    "... on ExtraCategoryChoiceValue { category { ref categoryType } "
    "choiceValue { stringValue } } } "
    "participantGroups { ref } managerGroups { ref }"
)

LIVE_USER_COLUMNS = ("pluvo_id", *USER_FIELDS, "archived")
VALUE_COLUMNS = ("user_ref", "category_ref", "category_type", "value")
PAIR_COLUMNS = ("group_ref", "user_ref")


@dataclass
class LiveSnapshot:
    """Live Pluvo, canonical.

    users: index ref; pluvo_id, email, name, language, roles, is_active (canonical
    strings) and archived (bool). Users without a ref cannot be matched to anything
    and are kept apart in `unreffed` (pluvo_id, email, name, archived).
    extra_values: user_ref, category_ref, category_type, value (canonical).
    groups: index ref; pluvo_id, name (groups without a ref are only counted).
    memberships / managers: group_ref, user_ref (users without a ref left out).
    """

    users: pd.DataFrame = field(
        default_factory=lambda: empty_frame(list(LIVE_USER_COLUMNS), index="ref")
    )
    unreffed: pd.DataFrame = field(
        default_factory=lambda: empty_frame(["pluvo_id", "email", "name", "archived"])
    )
    extra_values: pd.DataFrame = field(default_factory=lambda: empty_frame(VALUE_COLUMNS))
    groups: pd.DataFrame = field(default_factory=lambda: empty_frame(["pluvo_id", "name"], "ref"))
    unreffed_groups: int = 0
    memberships: pd.DataFrame = field(default_factory=lambda: empty_frame(PAIR_COLUMNS))
    managers: pd.DataFrame = field(default_factory=lambda: empty_frame(PAIR_COLUMNS))
    user_pages: int = 0


# ------------------------------------------------------------------ canonical forms


def canonical_datetime(value: str) -> str:
    """ISO 8601 → "YYYY-MM-DD" at midnight UTC, else "YYYY-MM-DDTHH:MM:SS+00:00"."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return value
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if (parsed.hour, parsed.minute, parsed.second, parsed.microsecond) == (0, 0, 0, 0):
        return parsed.strftime("%Y-%m-%d")
    return parsed.replace(microsecond=0).isoformat()


def canonical_roles(roles: Iterable[Any] | None) -> str:
    return ",".join(sorted({str(r).upper() for r in roles or () if r}))


def canonical_user(node: Mapping[str, Any]) -> dict[str, Any]:
    active = node.get("isActive")
    return {
        "pluvo_id": str(node.get("id") or ""),
        "email": str(node.get("email") or "").lower(),
        "name": str(node.get("name") or ""),
        "language": str(node.get("language") or ""),
        "roles": canonical_roles(node.get("roles")),
        # Pluvo's isActive is nullable; a user is active unless it says otherwise.
        "is_active": "false" if active is False else "true",
        "archived": bool(node.get("archived")),
    }


def canonical_values(user_ref: str, items: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One user's extraCategoryValues → canonical rows (one per category).

    Pluvo returns one ExtraCategoryChoiceValue per selected option, so multiselect
    options are gathered per category, sorted and joined as the mapping does.
    """
    out: dict[str, dict[str, str]] = {}
    options: dict[str, list[str]] = {}
    for item in items:
        category = item.get("category") or {}
        ref = category.get("ref")
        if not ref:
            continue
        kind = item.get("__typename")
        if kind == "ExtraCategoryStringValue":
            text = item.get("stringValue")
            if text:
                out[ref] = _value_row(user_ref, ref, "string", str(text))
        elif kind == "ExtraCategoryDatetimeValue":
            if item.get("datetimeValue"):
                stamp = canonical_datetime(str(item["datetimeValue"]))
                out[ref] = _value_row(user_ref, ref, "datetime", stamp)
        elif kind == "ExtraCategoryBooleanValue":
            if item.get("booleanValue") is not None:
                flag = "true" if item["booleanValue"] else "false"
                out[ref] = _value_row(user_ref, ref, "boolean", flag)
        elif kind == "ExtraCategoryChoiceValue":
            option = (item.get("choiceValue") or {}).get("stringValue")
            if option is None:
                continue
            multi = str(category.get("categoryType") or "").upper() == "MULTISELECT"
            options.setdefault(ref, []).append(str(option))
            joined = "\n".join(sorted(options[ref]))
            out[ref] = _value_row(user_ref, ref, "multiselect" if multi else "choice", joined)
    return list(out.values())


def _value_row(user_ref: str, category_ref: str, kind: str, value: str) -> dict[str, str]:
    return {
        "user_ref": user_ref,
        "category_ref": category_ref,
        "category_type": kind,
        "value": value,
    }


# ------------------------------------------------------------------ reading


LIST_ROUNDS = 3
"""Reads of the two user lists before a user moving between them ends the read."""


async def read_users(client: PluvoApi) -> tuple[list[dict[str, Any]], int]:
    """Every user node, active and archived, and the number of pages read.

    Active and archived users are read as two explicit lists: what `paginatedUsers`
    returns without `archived` is not documented (active only, on the documentation's
    reading), and an archived leaver missing from the read would look vanished.

    Each list is checked on its own (sync.pluvo.reads), but a user restored between
    the two reads would be in neither (and one archived, in both): after the archived
    list the active one is counted again, and a count that moved means both are read
    again.
    """
    pages = 0
    for _ in range(LIST_ROUNDS):
        lists = [
            await read_connection(
                client,
                "paginatedUsers",
                {"archived": archived},
                USER_NODE_SELECTION,
                what="archived users" if archived else "active users",
            )
            for archived in (False, True)
        ]
        pages += sum(read.pages for read in lists)
        active = lists[0]
        moved = await count_of(client, "paginatedUsers", {"archived": False}, what="users")
        if moved == active.count:
            nodes = {str(n["id"]): n for read in lists for n in read.nodes if n.get("id")}
            return list(nodes.values()), pages
        log.warning(
            "active users went from %d to %d while the archived ones were read; reading both again",
            active.count,
            moved,
        )
    raise TornReadError(
        f"reading users: users kept moving between active and archived ({LIST_ROUNDS} reads)",
        hint="run again when Pluvo is quieter",
    )


async def read_live(client: PluvoApi) -> LiveSnapshot:
    """Users with their extra values, groups with members and managers."""
    nodes, pages = await read_users(client)
    # Memberships come with the user pages (participantGroups / managerGroups): reading
    # them group by group costs a request per 50 members of every group instead.
    groups = await client.list_groups(members=False, managers=False)
    snapshot = build_snapshot(nodes, groups, user_pages=pages)
    members, managers = _pairs_from_users(nodes)
    snapshot.memberships = pd.concat([snapshot.memberships, members]).drop_duplicates()
    snapshot.managers = pd.concat([snapshot.managers, managers]).drop_duplicates()
    return snapshot


def _pairs_from_users(nodes: Sequence[Mapping[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    members: list[tuple[str, str]] = []
    managers: list[tuple[str, str]] = []
    for node in nodes:
        ref = node.get("ref")
        if not ref:
            continue
        for target, key in ((members, "participantGroups"), (managers, "managerGroups")):
            for group in node.get(key) or ():
                if group and group.get("ref"):
                    target.append((str(group["ref"]), str(ref)))
    return (
        pd.DataFrame(members, columns=list(PAIR_COLUMNS)),
        pd.DataFrame(managers, columns=list(PAIR_COLUMNS)),
    )


def build_snapshot(
    nodes: Sequence[Mapping[str, Any]], groups: Sequence[Any], *, user_pages: int = 0
) -> LiveSnapshot:
    """Raw nodes and `GroupInfo`s → canonical frames (pure; unit-tested)."""
    snapshot = LiveSnapshot(user_pages=user_pages)
    reffed: list[dict[str, Any]] = []
    unreffed: list[dict[str, Any]] = []
    values: list[dict[str, str]] = []
    ref_of_id: dict[str, str] = {}
    for node in nodes:
        row = canonical_user(node)
        ref = node.get("ref")
        if ref:
            ref = str(ref)
            ref_of_id[row["pluvo_id"]] = ref
            reffed.append({"ref": ref, **row})
            values.extend(canonical_values(ref, node.get("extraCategoryValues") or ()))
        else:
            unreffed.append({k: row[k] for k in ("pluvo_id", "email", "name", "archived")})
    if reffed:
        users = pd.DataFrame(reffed).drop_duplicates("ref", keep="first").set_index("ref")
        snapshot.users = users[list(LIVE_USER_COLUMNS)]
    if unreffed:
        snapshot.unreffed = pd.DataFrame(unreffed)
    if values:
        snapshot.extra_values = pd.DataFrame(values, columns=list(VALUE_COLUMNS))
    group_rows: list[dict[str, str]] = []
    members: list[tuple[str, str]] = []
    managers: list[tuple[str, str]] = []
    for group in groups:
        if not group.ref:
            snapshot.unreffed_groups += 1
            continue
        group_rows.append({"ref": str(group.ref), "pluvo_id": group.id, "name": group.name or ""})
        for target, people in ((members, group.members), (managers, group.managers)):
            for person in people:
                user_ref = person.ref or ref_of_id.get(person.id)
                if user_ref:
                    target.append((str(group.ref), str(user_ref)))
    if group_rows:
        snapshot.groups = pd.DataFrame(group_rows).drop_duplicates("ref").set_index("ref")
    if members:
        snapshot.memberships = pd.DataFrame(members, columns=list(PAIR_COLUMNS)).drop_duplicates()
    if managers:
        snapshot.managers = pd.DataFrame(managers, columns=list(PAIR_COLUMNS)).drop_duplicates()
    return snapshot
