"""The desired state: what the HR sources say Pluvo should contain.

It is the contract between the mapping layer (which builds it from raw rows) and the
diff engine (which compares it with the state store). Everything is a DataFrame so
that a million users are diffed with merges and hashes rather than Python loops.
Every value is already normalised to its canonical string form, so equal values
compare equal no matter which source or format they came from.

Frames and their columns (all values `str` unless said otherwise, no NaN: missing
is the empty string):

users          index `ref` (unique). email (lower-cased), name, language (enum name,
               e.g. NL), roles (enum names sorted and joined with ","), is_active
               ("true"/"false"), plus provenance: _source, _file, _line (int).
               Optionally _extras_hash and _groups_hash (int64): the user's
               `extras_hash` / `groups_hash` over the frames below, which the mapper
               computes row by row (cheaper than the diff's lookups by ref). Code that
               edits a user's values or memberships must drop or recompute them.
extra_values   user_ref, category_ref, category_type (string|datetime|boolean|choice|
               multiselect), value (canonical: string as is; datetime ISO 8601
               "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM:SS+00:00"; boolean "true"/"false";
               choice the option's stringValue; multiselect options sorted, joined by
               "\n"), plus _source, _file, _line.
groups         index `ref` (unique). name, plus _source (the rule or "static").
memberships    group_ref, user_ref (unique pairs).
managers       group_ref, user_ref (unique pairs).
ended          index `ref`: users whose end date has passed (leavers by date); end_date.
pending        index `ref`: pre-hires whose start is beyond the lead time; start_date.
rejections     source, file, line (int), column, ref, severity, reason: one row per
               rejected row and reason. severity "error": the row is not synced;
               "warning": it syncs, but one thing it asked for was dropped (a manager
               link to someone who is not a synced user).
conflicts      ref, field, kept_source, kept_value, other_source, other_value: a ref
               present in several sources with different values (the earlier source
               in the config wins; reported, not rejected).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from sync.files import spreadsheet_safe, write_private

USER_FIELDS = ("email", "name", "language", "roles", "is_active")
PROVENANCE = ("_source", "_file", "_line")
EXTRAS_HASH = "_extras_hash"
GROUPS_HASH = "_groups_hash"
EXTRA_TYPES = ("string", "datetime", "boolean", "choice", "multiselect")

REJECTION_COLUMNS = ("source", "file", "line", "column", "ref", "severity", "reason")
ERROR, WARNING = "error", "warning"  # rejection severities
CONFLICT_COLUMNS = ("ref", "field", "kept_source", "kept_value", "other_source", "other_value")


def empty_frame(columns: tuple[str, ...] | list[str], index: str | None = None) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    if index is not None:
        frame.index = pd.Index([], dtype="object", name=index)
    return frame


@dataclass
class Desired:
    users: pd.DataFrame = field(
        default_factory=lambda: empty_frame([*USER_FIELDS, *PROVENANCE], index="ref")
    )
    extra_values: pd.DataFrame = field(
        default_factory=lambda: empty_frame(
            ["user_ref", "category_ref", "category_type", "value", *PROVENANCE]
        )
    )
    groups: pd.DataFrame = field(default_factory=lambda: empty_frame(["name", "_source"], "ref"))
    memberships: pd.DataFrame = field(
        default_factory=lambda: empty_frame(["group_ref", "user_ref"])
    )
    managers: pd.DataFrame = field(default_factory=lambda: empty_frame(["group_ref", "user_ref"]))
    ended: pd.DataFrame = field(default_factory=lambda: empty_frame(["end_date"], index="ref"))
    pending: pd.DataFrame = field(default_factory=lambda: empty_frame(["start_date"], index="ref"))
    rejections: pd.DataFrame = field(default_factory=lambda: empty_frame(REJECTION_COLUMNS))
    conflicts: pd.DataFrame = field(default_factory=lambda: empty_frame(CONFLICT_COLUMNS))
    filtered: pd.DataFrame = field(
        default_factory=lambda: empty_frame(["filter", "_file", "_line"], index="ref")
    )
    """Refs whose rows the mappings' filters dropped (and no source kept), with the
    filter and line: if the engine synced them, they leave, and the plan says why."""
    source_rows: dict[str, int] = field(default_factory=dict)
    """Raw data rows read per source name, for the shrinking-source guard."""
    source_files: dict[str, list[str]] = field(default_factory=dict)
    """Files each source read (for reports and post-run archiving)."""


def is_warning(rejections: pd.DataFrame) -> pd.Series[bool]:
    """Rows of `Desired.rejections` that only dropped a link; their user still syncs."""
    if "severity" not in rejections:
        return pd.Series(False, index=rejections.index)
    return rejections["severity"] == WARNING


_LINES = re.compile(r"\blines?(?:\(s\))? \d+(?:, \d+)*")


def rejection_key(row: Mapping[Any, Any]) -> str:
    """What makes a rejection the same one the next night: its source, ref, column and
    reason, never its line (a row moves when others are added above it, and a duplicate's
    reason names the other lines). A digest, so the runs table holds no HR data."""
    reason = _LINES.sub("line", str(row["reason"]))
    text = "\x1f".join((str(row["source"]), str(row["ref"]), str(row["column"]), reason))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def rejection_keys(rejections: pd.DataFrame) -> list[str]:
    """The keys of the rejected rows (warnings are not rejections), in their order."""
    if rejections.empty:
        return []
    rows = rejections[~is_warning(rejections)]
    return [rejection_key(row) for row in rows.to_dict(orient="records")]


def format_rejection(row: pd.Series) -> str:
    """One line a human can act on: `hr.csv:12 [email] ref 1001: invalid email ...`."""
    file = Path(str(row["file"])).name or str(row["source"])
    ref = f" ref {row['ref']}" if row["ref"] else ""
    return f"{file}:{row['line']} [{row['column']}]{ref}: {shown_reason(row)}"


def shown_reason(row: Mapping[Any, Any] | pd.Series) -> str:
    """The reason as people read it: a warning says so, an error needs no label."""
    reason = str(row["reason"])
    return f"warning: {reason}" if row.get("severity") == WARNING else reason


def write_rejections(desired: Desired, path: str | Path) -> Path:
    """Rejections as a CSV an HR administrator can open in a spreadsheet.

    It names people and their emails, so it is created readable by the owner only, and
    no cell from HR data can act as a formula there.
    """
    target = Path(path)
    frame = desired.rejections.reindex(columns=list(REJECTION_COLUMNS))
    # CRLF rows (RFC 4180, what spreadsheets expect) also make the writer quote a bare
    # carriage return inside a value, which would otherwise split the row.
    text = frame.map(spreadsheet_safe).to_csv(
        index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n"
    )
    write_private(target, text)
    return target


RefLoader = Callable[[list[str]], pd.DataFrame]


@dataclass
class StateView:
    """What the diff needs from the store; details are loaded only for changed refs.

    users: index ref; fields_hash, extras_hash, groups_hash, archived
    (bool), left_action, missing_since (datetime or NaT), missing_runs (int).
    groups: index ref; name. managers: group_ref, user_ref.
    """

    users: pd.DataFrame
    groups: pd.DataFrame
    managers: pd.DataFrame
    load_fields: RefLoader  # index ref; USER_FIELDS
    load_extras: RefLoader  # user_ref, category_ref, category_type, value
    load_memberships: RefLoader  # group_ref, user_ref (for the given user refs)
    load_ids: RefLoader | None = None  # index ref; pluvo_id (when users lacks the column)
