"""For any frame of strings, mapping never crashes and accounts for every row."""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.core.mapping.mapper import map_source
from sync.core.mapping.merge import merge
from sync.core.mapping.spec import parse_mapping
from sync.hashing import extras_hash, groups_hash
from sync.model import EXTRAS_HASH, GROUPS_HASH, is_warning
from tests.unit.mapping_helpers import TODAY

COLUMNS = [
    "id",
    "mail",
    "first",
    "last",
    "role",
    "lang",
    "start",
    "end",
    "dept",
    "loc",
    "boss",
    "status",
]
MAPPING = parse_mapping(
    {
        "users": {
            "ref": {"column": "id", "transforms": ["upper"]},
            "email": "mail",
            "name": {"template": "{first} {last}"},
            "language": {"column": "lang", "default": "NL"},
            "roles": {"column": "role", "default": "PARTICIPANT"},
        },
        "dates": {
            "start_date": {"column": "start", "format": "%Y-%m-%d"},
            "end_date": {"column": "end", "format": ["%Y-%m-%d", "%d-%m-%Y"]},
            "prehire_lead_days": 7,
        },
        "filters": {"exclude": [{"column": "status", "values": ["x"]}]},
        "extra": [
            {"category": "loc", "type": "choice", "column": "loc", "options": ["A", "B"]},
            {"category": "dept", "type": "string", "column": "dept"},
        ],
        "groups": {
            "rules": [{"id": "dept", "ref": "d-{dept|slug}", "name": "{dept}"}],
            "static": [{"ref": "all", "name": "All"}],
        },
        "managers": [{"group": "dept", "column": "boss"}],
    }
)

# Garbage mixed with values that hit the interesting paths (valid emails, known enums,
# dates, shared refs and emails for duplicates).
cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", " ", "1", "2", "x", "nl", "EN", "trainer", "A", "b", "HR", "Sales"]),
    st.sampled_from(["a@example.com", "B@Example.com ", "c@x.nl", "bad@", "2024-01-31"]),
    st.sampled_from(["2030-01-01", "31-12-2020", "1", "2"]),
)
rows = st.lists(st.fixed_dictionaries(dict.fromkeys(COLUMNS, cell)), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows)
def test_every_row_is_accepted_filtered_or_rejected(data: list[dict[str, str]]) -> None:
    frame = pd.DataFrame({c: pd.Series([r[c] for r in data], dtype=object) for c in COLUMNS})
    frame["_file"] = pd.Series(["f.csv"] * len(data), dtype=object)
    frame["_line"] = pd.Series(range(2, len(data) + 2), dtype="int64")

    result = map_source("hr", frame, MAPPING, today=TODAY)
    desired = merge([result])

    real = desired.rejections[~is_warning(desired.rejections)]
    rejected_lines = set(real["line"])
    assert all(isinstance(r, str) and r for r in desired.rejections["reason"])
    accepted_lines = set(result.rows["_line"])
    assert not (accepted_lines & rejected_lines)
    filtered = sum(1 for r in data if r["status"].strip() == "x")
    assert result.stats.filtered == filtered
    assert len(accepted_lines) + len(rejected_lines) + filtered == len(data)
    assert len(desired.users) + len(desired.pending) + len(desired.ended) == len(accepted_lines)
    assert desired.users.index.is_unique
    assert set(desired.memberships["user_ref"]) <= set(desired.users.index)
    assert set(desired.managers["user_ref"]) <= set(desired.users.index)
    assert set(desired.memberships["group_ref"]) <= set(desired.groups.index)
    assert not desired.users["email"].duplicated().any()


OVERLAPPING = parse_mapping(
    {
        "users": {"ref": "id", "email": "mail", "name": "first"},
        "extra": [
            {"category": "loc", "type": "string", "column": "loc"},
            {"category": "dept", "type": "string", "column": "dept"},
        ],
        "groups": {
            # A row whose dept equals its loc, or is "HR", gets one group twice.
            "rules": [
                {"id": "dept", "ref": "g-{dept|slug}", "name": "{dept}"},
                {"id": "loc", "ref": "g-{loc|slug}", "name": "{loc}"},
            ],
            "static": [{"ref": "g-hr", "name": "HR"}],
        },
    }
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows, rows)
def test_row_hashes_equal_the_hashes_of_the_merged_frames(
    first: list[dict[str, str]], second: list[dict[str, str]]
) -> None:
    """The diff trusts the mapper's per-row hashes instead of hashing the long frames."""
    results = []
    for name, data in (("hr", first), ("extra", second)):
        frame = pd.DataFrame({c: pd.Series([r[c] for r in data], dtype=object) for c in COLUMNS})
        frame["_file"] = pd.Series([f"{name}.csv"] * len(data), dtype=object)
        frame["_line"] = pd.Series(range(2, len(data) + 2), dtype="int64")
        results.append(map_source(name, frame, OVERLAPPING, today=TODAY))
    for desired in (merge(results[:1]), merge(results)):
        users = desired.users
        extras = extras_hash(desired.extra_values).reindex(users.index, fill_value=0)
        groups = groups_hash(desired.memberships).reindex(users.index, fill_value=0)
        assert users[EXTRAS_HASH].tolist() == extras.tolist()
        assert users[GROUPS_HASH].tolist() == groups.tolist()
