"""Content hashes that let a million unchanged users be compared in one vectorised pass.

The same functions hash the desired state (from HR) and the state store, so a user
whose three hashes match costs nothing more. Set-valued things (a user's extra values,
a user's groups) are hashed order-independently as the wrapping sum of their
elements' hashes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas.util import hash_array

from sync.model import USER_FIELDS

Strings: TypeAlias = pd.Series | Sequence[str] | npt.NDArray[np.object_]

_HASH_KEY = "pluvo-sync-v1key"  # exactly 16 bytes, fixed so stored hashes stay valid


_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant: multiplication permutes uint64


def hash_strings(values: Strings, *, few: bool = False) -> np.ndarray:
    """int64 hashes of strings (stable across processes and versions of this module).

    `few`: the column repeats a handful of values (category refs, group refs); hashing
    its distinct values once is then cheaper. Without it, a sample decides (most HR
    columns are departments, titles, flags). The result is the same either way.
    """
    array = np.asarray(values, dtype=object)
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    few = few or repetitive(array)
    return hash_array(array, hash_key=_HASH_KEY, categorize=few).view(np.int64)


_SAMPLE = 4096


def repetitive(array: npt.NDArray[np.object_]) -> bool:
    """At most one distinct value in 16 among the first rows: a column (departments,
    dates, flags) worth processing per distinct value rather than per row."""
    if len(array) <= _SAMPLE:
        return False
    try:
        return len(set(array[:_SAMPLE].tolist())) <= _SAMPLE // 16
    except TypeError:  # unhashable values: hash_array reports them itself
        return False


def combine(*columns: Strings, few: Sequence[int] = ()) -> np.ndarray:
    """int64 hash of several string columns, row by row, without joining the strings.

    Joining a million rows of five columns into one string costs seconds; hashing each
    column and mixing the numbers costs a fraction of that. The mix is order-sensitive
    (a, b) != (b, a), which a field-by-field record needs.
    """
    mixed: np.ndarray | None = None
    for position, column in enumerate(columns):
        hashed = hash_strings(column, few=position in few).view(np.uint64)
        mixed = hashed if mixed is None else (mixed * _MIX) ^ hashed
    if mixed is None:
        raise ValueError("nothing to hash")
    return mixed.view(np.int64)


def keyed(key: str, values: Strings) -> np.ndarray:
    """`combine` of a constant first column `key` and `values`, as uint64.

    The mapper has each extra category's values as one column: hashing the category
    once instead of once per row gives the very numbers `extras_hash` computes.
    """
    prefix: np.ndarray = hash_strings([key]).view(np.uint64) * _MIX  # an array: wraps silently
    hashed: np.ndarray = hash_strings(values).view(np.uint64)
    mixed: np.ndarray = hashed ^ prefix[0]
    return mixed


def row_set_hash(
    length: int, parts: Iterable[tuple[npt.NDArray[np.intp], np.ndarray]]
) -> np.ndarray:
    """Per row, the `_set_hash` of its elements, given (row positions, element hashes).

    For sets whose elements all come from one source row (a user's extra values and
    groups do: see sync.core.mapping.merge), summing straight into the row avoids looking
    millions of keys up again in the diff. Each row must get each element once.
    """
    out = np.zeros(length, dtype=np.uint64)
    for rows, hashed in parts:
        out[rows] += hashed.view(np.uint64)
    return out.view(np.int64)


def fields_hash(users: pd.DataFrame) -> pd.Series:
    """Hash of the applied user fields, indexed like `users`."""
    if len(users) == 0:
        return pd.Series([], dtype=np.int64, index=users.index)
    return pd.Series(combine(*(users[f] for f in USER_FIELDS)), index=users.index)


def _set_hash(keys: pd.Series, hashed: np.ndarray) -> pd.Series:
    """Order-independent hash of each key's set of elements (sum of element hashes)."""
    if len(keys) == 0:
        return pd.Series([], dtype=np.int64)
    # uint64 wrap-around sums are order independent; viewed back as int64 for storage.
    codes, uniques = pd.factorize(np.asarray(keys, dtype=object), sort=False)
    summed = pd.Series(hashed.view(np.uint64)).groupby(codes, sort=False).sum()
    index = pd.Index(np.asarray(uniques, dtype=object)[summed.index.to_numpy()], name="ref")
    return pd.Series(summed.to_numpy().astype(np.uint64).view(np.int64), index=index)


def owned_set_hash(refs: Sequence[str], owners: Sequence[str], hashed: np.ndarray) -> list[int]:
    """Per ref, the `_set_hash` of the elements it owns (0 for none), by position.

    The state store rehashes a flushed batch of a few dozen users at a time, tens of
    thousands of times in a first load: for that, a dict and `np.add.at` cost less
    than the Index and groupby `_set_hash_at` builds. Same numbers."""
    out = np.zeros(len(refs), dtype=np.uint64)
    if len(owners):
        position = {ref: n for n, ref in enumerate(refs)}
        rows = np.fromiter((position[o] for o in owners), dtype=np.intp, count=len(owners))
        np.add.at(out, rows, hashed.view(np.uint64))  # a ref owns several elements
    digests: list[int] = out.view(np.int64).tolist()
    return digests


def _set_hash_at(keys: pd.Series, hashed: np.ndarray, index: pd.Index) -> np.ndarray:
    """Like `_set_hash`, but aligned to `index` by position (0 for keys without elements).

    Looking each element's key up in `index` replaces both the factorisation of the
    keys and the later realignment: one hash pass instead of two at a million users.
    """
    out = np.zeros(len(index), dtype=np.uint64)
    if len(keys):
        codes = index.get_indexer(pd.Index(np.asarray(keys, dtype=object)))
        found = codes >= 0
        summed = pd.Series(hashed.view(np.uint64)[found]).groupby(codes[found], sort=False).sum()
        out[summed.index.to_numpy()] = summed.to_numpy().astype(np.uint64)
    return out.view(np.int64)


def extras_hash_at(values: pd.DataFrame, index: pd.Index) -> np.ndarray:
    """`extras_hash` of every ref in `index`, by position."""
    if len(values) == 0:
        return np.zeros(len(index), dtype=np.int64)
    elements = combine(values["category_ref"], values["value"], few=(0,))
    return _set_hash_at(values["user_ref"], elements, index)


def groups_hash_at(memberships: pd.DataFrame, index: pd.Index) -> np.ndarray:
    """`groups_hash` of every ref in `index`, by position."""
    if len(memberships) == 0:
        return np.zeros(len(index), dtype=np.int64)
    hashed = hash_strings(memberships["group_ref"], few=True)
    return _set_hash_at(memberships["user_ref"], hashed, index)


def extras_hash(values: pd.DataFrame) -> pd.Series:
    """Per user_ref: hash of its (category_ref, value) set."""
    if len(values) == 0:
        return pd.Series([], dtype=np.int64)
    elements = combine(values["category_ref"], values["value"], few=(0,))
    return _set_hash(values["user_ref"], elements)


def groups_hash(memberships: pd.DataFrame) -> pd.Series:
    """Per user_ref: hash of its set of groups."""
    if len(memberships) == 0:
        return pd.Series([], dtype=np.int64)
    return _set_hash(memberships["user_ref"], hash_strings(memberships["group_ref"], few=True))


def pair_keys(pairs: pd.DataFrame) -> np.ndarray:
    """One int64 per (group_ref, user_ref) row, for set comparisons without a merge."""
    if len(pairs) == 0:
        return np.zeros(0, dtype=np.int64)
    return combine(pairs["group_ref"], pairs["user_ref"], few=(0,))
