"""Content hashes that let a million unchanged users be compared in one vectorised pass.

The same functions hash the desired state (from HR) and the state store, so a user
whose three hashes match costs nothing more. Set-valued things (a user's extra values,
a user's groups) are hashed order-independently as the wrapping sum of their
elements' hashes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pandas.util import hash_array

from sync.model import USER_FIELDS

SEP = "\x1f"
_HASH_KEY = "pluvo-sync-v1key"  # exactly 16 bytes, fixed so stored hashes stay valid


def hash_strings(values: pd.Series | Sequence[str]) -> np.ndarray:
    """int64 hashes of strings (stable across processes and versions of this module)."""
    array = np.asarray(values, dtype=object)
    if len(array) == 0:
        return np.zeros(0, dtype=np.int64)
    return hash_array(array, hash_key=_HASH_KEY, categorize=False).view(np.int64)


def join_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.Series:
    if len(frame) == 0:
        return pd.Series([], dtype=object, index=frame.index)
    first, *rest = columns
    joined = frame[first].astype(str)
    for column in rest:
        joined = joined + SEP + frame[column].astype(str)
    return joined


def fields_hash(users: pd.DataFrame) -> pd.Series:
    """Hash of the applied user fields, indexed like `users`."""
    return pd.Series(hash_strings(join_columns(users, USER_FIELDS)), index=users.index)


def set_hash(keys: pd.Series, elements: pd.Series) -> pd.Series:
    """Order-independent hash of each key's set of elements (sum of element hashes)."""
    if len(keys) == 0:
        return pd.Series([], dtype=np.int64)
    # uint64 wrap-around sums are order independent; viewed back as int64 for storage.
    hashed = pd.Series(
        hash_strings(elements).view(np.uint64), index=pd.Index(keys.to_numpy(), name="ref")
    )
    summed = hashed.groupby(level=0, sort=False).sum()
    return pd.Series(summed.to_numpy().astype(np.uint64).view(np.int64), index=summed.index)


def extras_hash(values: pd.DataFrame) -> pd.Series:
    """Per user_ref: hash of its (category_ref, value) set."""
    elements = values["category_ref"].astype(str) + SEP + values["value"].astype(str)
    return set_hash(values["user_ref"], elements)


def groups_hash(memberships: pd.DataFrame) -> pd.Series:
    """Per user_ref: hash of its set of groups."""
    return set_hash(memberships["user_ref"], memberships["group_ref"].astype(str))
