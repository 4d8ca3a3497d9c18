"""Builders shared by the mapping tests: raw frames shaped like a source adapter's output."""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pandas as pd

from sync.core.mapping.mapper import SourceMapping, map_source
from sync.core.mapping.merge import merge
from sync.core.mapping.spec import MappingSpec, parse_mapping
from sync.model import Desired

TODAY = date(2025, 6, 1)

BASE: dict[str, Any] = {
    "users": {
        "ref": "id",
        "email": "mail",
        "name": {"template": "{first} {last}"},
    }
}


def spec(**overrides: Any) -> MappingSpec:
    data = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if key in ("ref", "email", "name", "language", "roles", "active"):
            data["users"][key] = value
        else:
            data[key] = value
    return parse_mapping(data)


def frame(rows: list[dict[str, str]], file: str = "hr.csv") -> pd.DataFrame:
    """Every column str, "" for missing, plus `_file` and `_line` (header = line 1)."""
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    data = {c: pd.Series([r.get(c, "") for r in rows], dtype=object) for c in columns}
    result = pd.DataFrame(data)
    result["_file"] = pd.Series([file] * len(rows), dtype=object)
    result["_line"] = pd.Series(range(2, len(rows) + 2), dtype="int64")
    return result


def person(ref: str, first: str = "Jan", last: str = "Jansen", **extra: str) -> dict[str, str]:
    row = {"id": ref, "mail": f"{first}.{last}.{ref}@example.com".lower(), "first": first}
    row["last"] = last
    row.update(extra)
    return row


def run(
    mapping: MappingSpec, rows: list[dict[str, str]], *, source: str = "hr", today: date = TODAY
) -> tuple[SourceMapping, Desired]:
    result = map_source(source, frame(rows), mapping, today=today)
    return result, merge([result])


def reasons(desired: Desired) -> list[str]:
    return [str(r) for r in desired.rejections["reason"]]
