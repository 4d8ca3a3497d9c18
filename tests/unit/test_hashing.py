"""The hashes the diff computes must equal the ones stored after applying."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from sync.hashing import (
    extras_hash,
    extras_hash_at,
    groups_hash,
    groups_hash_at,
    hash_strings,
    owned_set_hash,
)

refs = st.sampled_from(["E1", "E2", "E3", "É4", ""])
pairs = st.lists(st.tuples(refs, st.sampled_from(["a", "b", "c", "é"])), unique=True, max_size=12)


@settings(max_examples=60, deadline=None)
@given(pairs, st.permutations(["E1", "E2", "E3", "É4", "X"]))
def test_aligned_hashes_equal_per_ref_hashes(rows: list[tuple[str, str]], order: list[str]) -> None:
    index = pd.Index(order, dtype=object)
    values = pd.DataFrame(
        {
            "user_ref": [r for r, _ in rows],
            "category_ref": [c for _, c in rows],
            "value": [f"v-{c}" for _, c in rows],
        },
        dtype=object,
    )
    expected = extras_hash(values).reindex(index, fill_value=0).to_numpy()
    assert np.array_equal(extras_hash_at(values, index), expected)
    members = pd.DataFrame(
        {"group_ref": [c for _, c in rows], "user_ref": [r for r, _ in rows]}, dtype=object
    )
    expected = groups_hash(members).reindex(index, fill_value=0).to_numpy()
    assert np.array_equal(groups_hash_at(members, index), expected)


def test_set_hash_ignores_order_and_sees_content() -> None:
    one = pd.DataFrame({"group_ref": ["a", "b"], "user_ref": ["E1", "E1"]})
    two = pd.DataFrame({"group_ref": ["b", "a"], "user_ref": ["E1", "E1"]})
    three = pd.DataFrame({"group_ref": ["a", "c"], "user_ref": ["E1", "E1"]})
    assert groups_hash(one)["E1"] == groups_hash(two)["E1"] != groups_hash(three)["E1"]


@settings(max_examples=60, deadline=None)
@given(pairs, st.permutations(["E1", "E2", "E3", "É4", "X"]))
def test_a_batch_s_set_hashes_equal_the_frame_s(
    rows: list[tuple[str, str]], order: list[str]
) -> None:
    """The store's per-batch rehash gives the numbers the diff compares against (its
    elements are read by ref, so every owner is one of the refs)."""
    owned = [(r, g) for r, g in rows if r in order]
    members = pd.DataFrame(
        {"group_ref": [g for _, g in owned], "user_ref": [r for r, _ in owned]}, dtype=object
    )
    expected = groups_hash(members).reindex(pd.Index(order, dtype=object), fill_value=0)
    hashed = hash_strings(members["group_ref"], few=True)
    assert owned_set_hash(order, list(members["user_ref"]), hashed) == expected.tolist()
