"""Column-at-a-time value transforms.

A million-row export has far fewer distinct values than rows in most columns
(departments, dates, languages), so expensive work (slugs, dates, lookups, email
checks) runs once per distinct value and is spread back with the factorize codes.
A transform that cannot convert a value does not raise: it reports a `Problem` (the
rows and a reason per row), and the mapper turns problems into rejections.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from sync.core.mapping.spec import (
    DateTransform,
    DefaultTransform,
    MapTransform,
    ReplaceTransform,
    Transform,
)
from sync.core.mapping.template import Placeholder, Template
from sync.emails import MAX_LENGTH, PLAIN_EMAIL, PLAIN_PATTERN, email_problem
from sync.hashing import repetitive


@dataclass
class Problem:
    """Rows (positions into the source frame) that cannot be used, with a reason each."""

    positions: npt.NDArray[np.intp]
    column: str
    reasons: npt.NDArray[np.object_]

    @classmethod
    def where(
        cls,
        mask: npt.NDArray[np.bool_],
        column: str,
        reason: str,
        values: pd.Series[str] | npt.NDArray[np.object_] | None = None,
    ) -> Problem | None:
        """`reason` may hold `{value}`: only the failing rows' messages are ever built."""
        positions = np.flatnonzero(mask)
        if positions.size == 0:
            return None
        if values is None:
            texts = filled(positions.size, reason)
        else:
            raw = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else values
            texts = text_array([reason.replace("{value}", str(raw[p])) for p in positions])
        return cls(positions, column, texts)


def text_array(values: Sequence[object]) -> npt.NDArray[np.object_]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def filled(length: int, value: object) -> npt.NDArray[np.object_]:
    """An object array holding `value` in every slot.

    `np.full(n, "x", dtype=object)` goes through a fixed-width unicode array and
    creates n separate str objects (seconds and hundreds of MB at a few million rows);
    `fill` stores n references to the one object.
    """
    array = np.empty(length, dtype=object)
    array.fill(value)
    return array


def text(values: Sequence[object] | npt.NDArray[np.object_]) -> pd.Series[str]:
    """An object Series from clean strings, without pandas' NA scans (they dominate at 1M)."""
    array = values if isinstance(values, np.ndarray) else text_array(values)
    return pd.Series(array, dtype=object, copy=False)


def frame_of(columns: dict[str, object]) -> pd.DataFrame:
    """A DataFrame keeping object columns object.

    pandas 3 would turn them into its `str` dtype, whose element-wise paths (isin,
    concat, iteration) are several times slower on a million rows; every frame of the
    model is object-typed, so the mapping's output stays so too.
    """
    lengths = [len(v) for v in columns.values() if isinstance(v, (np.ndarray, list, pd.Series))]
    length = lengths[0] if lengths else 1
    data: dict[str, pd.Series] = {}
    for key, value in columns.items():
        if isinstance(value, pd.Series):
            data[key] = value.reset_index(drop=True)
        elif isinstance(value, np.ndarray):
            data[key] = pd.Series(value, dtype=value.dtype, copy=False)
        elif isinstance(value, list):
            data[key] = pd.Series(text_array(value), dtype=object, copy=False)
        else:
            data[key] = pd.Series(filled(length, value), dtype=object, copy=False)
    # copy=False keeps one block per column: consolidating a few million object
    # pointers into one 2-D block costs a second or more and doubles the peak memory.
    return pd.DataFrame(data, copy=False)


def as_text(series: pd.Series) -> pd.Series[str]:
    """Plain object-dtype strings with "" for missing: how a foreign column enters the mapping."""
    values = series.to_numpy(dtype=object, na_value="")
    bad = [i for i, v in enumerate(values) if not isinstance(v, str)]
    if bad:
        values = values.copy()
        for i in bad:
            values[i] = "" if values[i] is None else str(values[i])
    return pd.Series(values, dtype=object, copy=False)


def each(series: pd.Series[str], func: Callable[[str], str]) -> pd.Series[str]:
    """`func` on every row: for cheap string methods a list comprehension beats `.str`."""
    return text([func(v) for v in series.to_numpy(dtype=object)])


_SEP = "\x00"


def _joined(array: npt.NDArray[np.object_]) -> str | None:
    """All values in one string when that is lossless (every value a str without NUL)."""
    try:
        joined = _SEP.join(array)
    except TypeError:
        return None
    return joined if joined.count(_SEP) == len(array) - 1 else None


def strip_all(series: pd.Series[str]) -> pd.Series[str]:
    """Strip every value.

    `str.strip` hands back the very same object when there is nothing to strip (the
    usual case), so this allocates no strings and keeps their cached hashes.
    """
    array = series.to_numpy(dtype=object)
    if len(array) == 0:
        return series
    if repetitive(array):
        # A repetitive column (departments, dates): strip its distinct values; the
        # factorization is shared with the per-value steps that follow.
        codes, uniques = factorize(array)
        distinct = list(map(str.strip, uniques))
        if not any(map(operator.is_not, distinct, uniques)):
            return series if series.dtype == object else text(array)
        return text(text_array(distinct)[codes])
    stripped = list(map(str.strip, array))
    if not any(map(operator.is_not, stripped, array)):
        # Nothing stripped: the same column object, so later steps share its
        # factorization (see `shared_factorize`).
        return series if series.dtype == object else text(array)
    return text(text_array(stripped))


def _case(series: pd.Series[str], upper: bool) -> pd.Series[str]:
    """Lower/upper the whole column as one string: one C call instead of a million."""
    array = series.to_numpy(dtype=object)
    joined = _joined(array) if len(array) else None
    if joined is None:
        return each(series, str.upper if upper else str.lower)
    converted = joined.upper() if upper else joined.lower()
    if converted == joined:
        # The usual case (numeric refs, already lower-case emails): keep the row
        # strings, so no million new objects and their cached hashes stay valid.
        return series if series.dtype == object else text(array)
    return text(converted.split(_SEP))


_Factorized = tuple[npt.NDArray[np.intp], npt.NDArray[np.object_]]
_SHARED: ContextVar[dict[tuple[int, int, int], tuple[object, _Factorized]] | None] = ContextVar(
    "shared_factorize", default=None
)


@contextmanager
def shared_factorize() -> Iterator[None]:
    """Within this block, factorizing the same column twice reuses the first result.

    One mapping reads a column several times (a department is a value, a group ref
    and a group name), and hashing a million strings is the costly part of each
    per-distinct-value step. Keyed by the memory the values live in; the cache holds
    the array, so that memory cannot be reused by another column meanwhile. Arrays
    handed out by the mapping are never modified in place, which keeps this sound.
    """
    token = _SHARED.set({}) if _SHARED.get() is None else None
    try:
        yield
    finally:
        if token is not None:
            _SHARED.reset(token)


def factorize(array: npt.NDArray[np.object_]) -> _Factorized:
    """Codes and distinct values of `array` (shared within `shared_factorize`)."""
    cache = _SHARED.get()
    key = (array.__array_interface__["data"][0], len(array), array.strides[0])
    if cache is not None:
        hit = cache.get(key)
        if hit is not None:
            return hit[1]
    # Mapped columns hold only strings, and with the NA sentinel pandas skips a
    # missing-value pass over the whole column (a third of the cost); a column that
    # does hold a missing value is factorized again keeping it as a value.
    codes, uniques = pd.factorize(array)
    if len(codes) and codes.min() < 0:
        codes, uniques = pd.factorize(array, use_na_sentinel=False)
    result = (codes, np.asarray(uniques, dtype=object))
    if cache is not None:
        cache[key] = (array, result)
    return result


def per_unique_raw(
    series: pd.Series[str], func: Callable[[list[str]], Sequence[object]]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.intp]]:
    codes, uniques = factorize(series.to_numpy(dtype=object))
    return text_array(func(list(uniques))), codes


def per_unique(series: pd.Series[str], func: Callable[[list[str]], Sequence[object]]) -> pd.Series:
    """Apply `func` to the distinct values only and spread the results back to every row."""
    results, codes = per_unique_raw(series, func)
    return pd.Series(results[codes], dtype=object, copy=False)


def per_unique_checked(
    series: pd.Series[str], func: Callable[[str], str | None]
) -> tuple[pd.Series[str], npt.NDArray[np.bool_]]:
    """Converted values ("" where `func` gave None) and the rows where it gave None."""
    results, codes = per_unique_raw(series, lambda values: [func(v) for v in values])
    bad_unique = np.fromiter((r is None for r in results), dtype=bool, count=len(results))
    if bad_unique.any():
        results[bad_unique] = ""
    return text(results[codes]), bad_unique[codes]


def slugify(value: str) -> str:
    """ASCII, lower case, words joined by '-': stable refs from accented Dutch names."""
    ascii_text = (
        unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii").lower()
    )
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def collapse_spaces(series: pd.Series[str]) -> pd.Series[str]:
    return per_unique(series, lambda values: [" ".join(v.split()) for v in values])


def text_op(series: pd.Series[str], name: str) -> pd.Series[str]:
    if name == "strip":
        return strip_all(series)
    if name == "lower":
        return _case(series, upper=False)
    if name == "upper":
        return _case(series, upper=True)
    if name == "title":
        return per_unique(series, lambda values: [v.title() for v in values])
    if name == "slug":
        return per_unique(series, lambda values: [slugify(v) for v in values])
    if name == "collapse_spaces":
        return collapse_spaces(series)
    raise ValueError(f"unknown text operation {name}")


def is_empty(series: pd.Series[str]) -> npt.NDArray[np.bool_]:
    return np.asarray(series.to_numpy(dtype=object) == "", dtype=bool)


def fill_empty(series: pd.Series[str], value: str) -> pd.Series[str]:
    array = series.to_numpy(dtype=object)
    empty = array == ""
    if not empty.any():
        return series
    array = array.copy()
    array[empty] = value
    return text(array)


def apply_map(
    series: pd.Series[str], spec: MapTransform, column: str
) -> tuple[pd.Series[str], Problem | None]:
    table = {(k.casefold() if spec.ignore_case else k): v for k, v in spec.map.items()}

    def one(value: str) -> str | None:
        hit = table.get(value.casefold() if spec.ignore_case else value)
        if hit is not None:
            return hit
        if value == "" or spec.no_match == "keep":
            return value
        if spec.no_match == "default":
            return spec.default or ""
        return None

    result, bad = per_unique_checked(series, one)
    problem = Problem.where(bad, column, "'{value}' has no entry in the value map", series)
    return result, problem


def _parse_dates_unique(values: list[str], formats: Sequence[str], with_time: bool) -> list[str]:
    """ISO strings for the values any format parses, "" for empty, None for unparseable."""
    out: list[str | None] = [None] * len(values)
    todo = pd.Series(values, dtype=object)
    pending = np.array([v != "" for v in values], dtype=bool)
    for i, v in enumerate(values):
        if v == "":
            out[i] = ""
    for fmt in formats:
        if not pending.any():
            break
        idx = np.flatnonzero(pending)
        parsed = pd.to_datetime(todo.iloc[idx], format=fmt, errors="coerce", utc=with_time)
        ok = parsed.notna().to_numpy()
        good = idx[ok]
        if good.size:
            if with_time:
                iso = parsed[ok].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            else:
                iso = parsed[ok].dt.strftime("%Y-%m-%d")
            for pos, value in zip(good, iso.to_numpy(dtype=object), strict=True):
                out[pos] = str(value)
            pending[good] = False
    return out  # type: ignore[return-value]


def parse_dates(
    series: pd.Series[str], formats: Sequence[str], column: str, *, with_time: bool = False
) -> tuple[pd.Series[str], Problem | None]:
    results, codes = per_unique_raw(
        series, lambda values: _parse_dates_unique(values, formats, with_time)
    )
    bad_unique = np.fromiter((r is None for r in results), dtype=bool, count=len(results))
    results[bad_unique] = ""
    bad = bad_unique[codes]
    problem = Problem.where(
        bad, column, "'{value}' is not a date in format " + " or ".join(formats), series
    )
    return text(results[codes]), problem


def _replace(series: pd.Series[str], spec: ReplaceTransform) -> pd.Series[str]:
    pattern = re.compile(spec.replace)
    return per_unique(series, lambda values: [pattern.sub(spec.with_, v) for v in values])


def apply_transforms(
    series: pd.Series[str], transforms: Sequence[Transform], column: str
) -> tuple[pd.Series[str], list[Problem]]:
    problems: list[Problem] = []
    for transform in transforms:
        if isinstance(transform, str):
            series = text_op(series, transform)
        elif isinstance(transform, DefaultTransform):
            series = fill_empty(series, transform.default)
        elif isinstance(transform, MapTransform):
            series, problem = apply_map(series, transform, column)
            if problem is not None:
                problems.append(problem)
        elif isinstance(transform, ReplaceTransform):
            series = _replace(series, transform)
        elif isinstance(transform, DateTransform):
            series, problem = parse_dates(series, transform.date, column)
            if problem is not None:
                problems.append(problem)
    return series, problems


def parse_booleans(
    series: pd.Series[str], true: Sequence[str], false: Sequence[str], column: str
) -> tuple[pd.Series[str], Problem | None]:
    """ "true"/"false" for known words, "" for empty, a problem for anything else."""
    table = {w.strip().casefold(): "true" for w in true}
    table.update({w.strip().casefold(): "false" for w in false})
    table[""] = ""
    result, bad = per_unique_checked(series, lambda v: table.get(v.strip().casefold()))
    return result, Problem.where(bad, column, "'{value}' is not a yes/no value", series)


def render_template(
    template: Template,
    columns: Callable[[str], pd.Series[str]],
    length: int,
    *,
    strip: bool = False,
) -> tuple[pd.Series[str], npt.NDArray[np.bool_]]:
    """The rendered values (`strip`ped if asked) and, per row, whether any placeholder
    came out empty.

    Templates read low-cardinality columns (departments, first and last names), so
    each distinct combination of the used columns is rendered once and the rows share
    the resulting strings: no million new strings per concatenation step.
    """
    used = template.columns
    if not used or not length:
        return _render(template, columns, length, strip)
    combined: npt.NDArray[np.int64] | None = None
    parts: list[tuple[str, npt.NDArray[np.object_], int]] = []
    room = 1
    for name in used:
        codes, uniques = factorize(columns(name).to_numpy(dtype=object))
        size = max(len(uniques), 1)
        room *= size
        if room >= 2**62:  # combined codes would overflow: render row by row
            return _render(template, columns, length, strip)
        parts.append((name, uniques, size))
        wide = codes.astype(np.int64)
        combined = wide if combined is None else combined * size + wide
    assert combined is not None
    row_codes, keys = pd.factorize(combined)
    distinct: dict[str, npt.NDArray[np.object_]] = {}
    rest = np.asarray(keys, dtype=np.int64)
    for name, uniques, size in reversed(parts):
        distinct[name] = uniques[rest % size]
        rest = rest // size
    rendered, empty = _render(template, lambda name: text(distinct[name]), len(keys), strip)
    return text(rendered.to_numpy(dtype=object)[row_codes]), empty[row_codes]


def _render(
    template: Template, columns: Callable[[str], pd.Series[str]], length: int, strip: bool
) -> tuple[pd.Series[str], npt.NDArray[np.bool_]]:
    result: npt.NDArray[np.object_] | None = None
    empty = np.zeros(length, dtype=bool)
    for part in template.parts:
        if isinstance(part, Placeholder):
            values = columns(part.column)
            for name in part.filters:
                values = text_op(values, name)
            array = values.to_numpy(dtype=object)
            empty |= array == ""
            result = array if result is None else result + array
        else:
            result = filled(length, part) if result is None else result + part
    if result is None:
        result = filled(length, "")
    return (strip_all(text(result)) if strip else text(result)), empty


def _email_reasons(values: list[str]) -> list[str | None]:
    return [None if value == "" else email_problem(value) for value in values]


def _fast_email_misses(array: npt.NDArray[np.object_]) -> npt.NDArray[np.intp] | None:
    """Rows the plain-address pattern cannot accept, found in one scan of the joined column.

    A million distinct addresses leave nothing to deduplicate, so instead of a regex
    call per value the whole column is searched once for a separator NOT followed by
    a plain (or empty) address. None when the column cannot be joined.
    """
    joined = _joined(array)
    if joined is None:
        return None
    starts = [m.start() for m in _EMAIL_MISS.finditer(_SEP + joined)]
    if not starts:
        return np.zeros(0, dtype=np.intp)
    lengths = np.fromiter(map(len, array), dtype=np.int64, count=len(array)) + 1
    offsets = np.cumsum(lengths) - lengths
    return np.searchsorted(offsets, np.asarray(starts, dtype=np.int64)).astype(np.intp)


_END = r"(?:\x00|\Z)"
_EMAIL_MISS = re.compile(
    rf"\x00(?!(?:(?=[^\x00]{{1,{MAX_LENGTH}}}{_END}){PLAIN_PATTERN})?{_END})[^\x00]*"
)


def validate_emails(series: pd.Series[str], column: str) -> Problem | None:
    """Non-empty addresses Pluvo would refuse (see `sync.emails`).

    Expects the lower-cased column, the form the engine sends: the common plain
    address passes one pattern scan of the whole column, only the rest (IDN domains,
    quoted parts, the invalid) is judged one by one.
    """
    values = series.to_numpy(dtype=object)
    candidates = _fast_email_misses(values)
    if candidates is None:
        match = PLAIN_EMAIL.fullmatch
        candidates = np.asarray(
            [i for i, v in enumerate(values) if v and (len(v) > MAX_LENGTH or match(v) is None)],
            dtype=np.intp,
        )
    if candidates.size == 0:
        return None
    reasons = _email_reasons([str(values[i]) for i in candidates])
    bad = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    if not bad.any():
        return None
    positions = candidates[bad]
    texts = text_array(
        [f"invalid email '{values[p]}': {r}" for p, r in zip(candidates, reasons, strict=True) if r]
    )
    return Problem(positions, column, texts)
