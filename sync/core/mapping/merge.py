"""Several sources → one desired state.

Rule: a ref is owned by the first source in the config's `sources` order that has an
accepted row for it, and that row decides everything about the user: its fields, its
status (user, pre-hire, leaver), its extra values, its group memberships and the
manager links it carries. Later sources only add conflicts to the report when they
disagree. A union of memberships across sources would be harder to predict and to
explain in a plan, so it is deliberately not done.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sync.core.mapping.mapper import (
    STATUS_ENDED,
    STATUS_PENDING,
    STATUS_USER,
    SourceMapping,
)
from sync.core.mapping.transforms import frame_of
from sync.model import (
    CONFLICT_COLUMNS,
    ERROR,
    EXTRAS_HASH,
    GROUPS_HASH,
    PROVENANCE,
    REJECTION_COLUMNS,
    USER_FIELDS,
    WARNING,
    Desired,
    empty_frame,
)

_CONFLICT_FIELDS = (*USER_FIELDS, "status")


def _owned(frame: pd.DataFrame, lost: set[str], key: str) -> pd.DataFrame:
    """The rows of `frame` whose user this source still owns (usually all of them)."""
    if not lost or frame.empty:
        return frame
    return frame[~frame[key].isin(lost).to_numpy()]


def _conflicts(all_rows: pd.DataFrame, winners: pd.DataFrame) -> pd.DataFrame:
    losers = all_rows[all_rows["ref"].duplicated(keep="first").to_numpy()]
    if losers.empty:
        return empty_frame(CONFLICT_COLUMNS)
    pairs = losers.merge(winners, on="ref", suffixes=("_other", "_kept"))
    parts = []
    for name in _CONFLICT_FIELDS:
        differ = pairs[pairs[f"{name}_other"] != pairs[f"{name}_kept"]]
        if differ.empty:
            continue
        parts.append(
            frame_of(
                {
                    "ref": differ["ref"].to_numpy(dtype=object),
                    "field": name,
                    "kept_source": differ["_source_kept"].to_numpy(dtype=object),
                    "kept_value": differ[f"{name}_kept"].to_numpy(dtype=object),
                    "other_source": differ["_source_other"].to_numpy(dtype=object),
                    "other_value": differ[f"{name}_other"].to_numpy(dtype=object),
                }
            )
        )
    if not parts:
        return empty_frame(CONFLICT_COLUMNS)
    return pd.concat(parts, ignore_index=True).sort_values(["ref", "field"], ignore_index=True)


def _cross_source_emails(winners: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Different refs with one email across sources: Pluvo keeps emails unique, so reject all."""
    live = winners[winners["status"] == STATUS_USER]
    counts = live.groupby("email", sort=False)["ref"].transform("nunique")
    clash = live[counts.to_numpy() > 1]
    if clash.empty:
        return winners, empty_frame(REJECTION_COLUMNS)
    reasons = []
    for _, row in clash.iterrows():
        others = clash[(clash["email"] == row["email"]) & (clash["ref"] != row["ref"])]
        where = ", ".join(f"{s}:{r}" for s, r in zip(others["_source"], others["ref"], strict=True))
        reasons.append(f"duplicate email '{row['email']}' (also used by {where})")
    rejections = frame_of(
        {
            "source": clash["_source"].to_numpy(dtype=object),
            "file": clash["_file"].to_numpy(dtype=object),
            "line": clash["_line"].to_numpy(dtype=np.int64),
            "column": "email",
            "ref": clash["ref"].to_numpy(dtype=object),
            "severity": ERROR,
            "reason": reasons,
        }
    )
    return winners.drop(index=clash.index), rejections


def _stack(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate, skipping the copy in the common one-source case."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.concat(frames, ignore_index=True)


def merge(results: Sequence[SourceMapping]) -> Desired:
    """Combine mapped sources, given in the config's `sources` order (earlier wins)."""
    desired = Desired()
    if not results:
        return desired
    if len(results) == 1:
        # One source already rejected its duplicate refs and emails: nothing to resolve.
        winners = results[0].rows
        email_rejections = empty_frame(REJECTION_COLUMNS)
    else:
        all_rows = pd.concat([r.rows for r in results], ignore_index=True)
        winners = all_rows.drop_duplicates("ref", keep="first")
        desired.conflicts = _conflicts(all_rows, winners)
        winners, email_rejections = _cross_source_emails(winners)

    def by_status(status: str, columns: Sequence[str]) -> pd.DataFrame:
        part = winners[winners["status"] == status]
        return part.set_index("ref")[list(columns)]

    # Each user's values and groups come from its one winning row (see the module
    # docstring), so the row hashes the mapper computed are the user's.
    derived = [c for c in (EXTRAS_HASH, GROUPS_HASH) if all(c in r.rows for r in results)]
    desired.users = by_status(STATUS_USER, [*USER_FIELDS, *PROVENANCE, *derived])
    desired.pending = by_status(STATUS_PENDING, ["start_date"])
    desired.ended = by_status(STATUS_ENDED, ["end_date"])
    user_refs = desired.users.index
    owner = desired.users["_source"]
    # Per source, the refs whose rows it produced but does not own in the end (another
    # source won, or the user was rejected at merge time).
    lost: dict[str, set[str]] = {results[0].source: set()}
    if len(results) > 1:
        for result in results:
            refs = result.rows["ref"]
            kept = refs.map(owner).to_numpy(dtype=object) == result.source
            lost[result.source] = set(refs[~kept])

    desired.extra_values = _stack(
        [_owned(r.extra_values, lost[r.source], "user_ref") for r in results]
    )
    desired.memberships = _stack(
        [_owned(r.memberships, lost[r.source], "user_ref") for r in results]
    )
    groups = pd.concat([r.groups for r in results], ignore_index=True).drop_duplicates("ref")
    if len(results) > 1:
        # A group may have lost every member to another source's rows.
        used = groups["ref"].isin(pd.unique(desired.memberships["group_ref"])) | (
            groups["_source"] == "static"
        )
        groups = groups[used.to_numpy()]
    desired.groups = groups.set_index("ref")[["name", "_source"]]

    warnings = [email_rejections]
    managers = []
    for result in results:
        links = result.manager_links
        links = _owned(links, lost[result.source], "member_ref")
        # The users index is unique: probing its hash table is half the cost of isin.
        valid = user_refs.get_indexer(pd.Index(links["user_ref"], dtype=object, copy=False)) >= 0
        managers.append(links[valid][["group_ref", "user_ref"]])
        dropped = links[~valid]
        if not dropped.empty:
            warnings.append(
                frame_of(
                    {
                        "source": result.source,
                        "file": dropped["_file"].to_numpy(dtype=object),
                        "line": dropped["_line"].to_numpy(dtype=np.int64),
                        "column": dropped["column"].to_numpy(dtype=object),
                        "ref": dropped["member_ref"].to_numpy(dtype=object),
                        "severity": WARNING,
                        "reason": (
                            "manager '"
                            + dropped["user_ref"].astype(str)
                            + "' is not a synced user; manager link to group '"
                            + dropped["group_ref"].astype(str)
                            + "' dropped (the user still syncs)"
                        ).to_numpy(dtype=object),
                    }
                )
            )
    desired.managers = pd.concat(managers, ignore_index=True).drop_duplicates(ignore_index=True)
    rejections = [r.rejections for r in results] + warnings
    desired.rejections = pd.concat(
        [f for f in rejections if not f.empty] or [empty_frame(REJECTION_COLUMNS)],
        ignore_index=True,
    )
    filtered = pd.concat([r.filtered for r in results], ignore_index=True)
    named = user_refs.union(desired.pending.index).union(desired.ended.index)
    filtered = filtered[~filtered["ref"].isin(named)].drop_duplicates("ref")
    desired.filtered = filtered.set_index("ref")[["filter", "_file", "_line"]]
    desired.source_rows = {r.source: r.stats.rows for r in results}
    return desired
