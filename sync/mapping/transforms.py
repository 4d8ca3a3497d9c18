"""Column-at-a-time value transforms.

A million-row export has far fewer distinct values than rows in most columns
(departments, dates, languages), so expensive work (slugs, dates, lookups, email
checks) runs once per distinct value and is spread back with the factorize codes.
A transform that cannot convert a value does not raise: it reports a `Problem` (the
rows and a reason per row), and the mapper turns problems into rejections.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd
from email_validator import EmailNotValidError, validate_email

from sync.mapping.spec import (
    DateTransform,
    DefaultTransform,
    MapTransform,
    ReplaceTransform,
    Transform,
)
from sync.mapping.template import Placeholder, Template


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
# A literal first character lets the regex engine skip ahead with a fast search; the
# "space before a separator" case is the same pattern run on the reversed string.
_SPACE_AFTER_SEP = re.compile(r"\x00\s")


def _joined(array: npt.NDArray[np.object_]) -> str | None:
    """All values in one string when that is lossless (every value a str without NUL)."""
    try:
        joined = _SEP.join(array)
    except TypeError:
        return None
    return joined if joined.count(_SEP) == len(array) - 1 else None


def strip_all(series: pd.Series[str]) -> pd.Series[str]:
    """Strip every value; one C-level scan first, since most exports need no stripping."""
    array = series.to_numpy(dtype=object)
    if len(array) == 0:
        return series
    joined = _joined(array)
    if joined is not None and not (
        joined[:1].isspace()
        or joined[-1:].isspace()
        or _SPACE_AFTER_SEP.search(joined)
        or _SPACE_AFTER_SEP.search(joined[::-1])
    ):
        return series if series.dtype == object else text(array)
    return text([v.strip() for v in array])


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


def per_unique_raw(
    series: pd.Series[str], func: Callable[[list[str]], Sequence[object]]
) -> tuple[npt.NDArray[np.object_], npt.NDArray[np.intp]]:
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=False)
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
    _single: bool = True,
) -> tuple[pd.Series[str], npt.NDArray[np.bool_]]:
    """The rendered values and, per row, whether any placeholder came out empty."""
    used = template.columns
    if _single and len(used) == 1 and length:
        # Group templates mostly read one low-cardinality column: render each distinct
        # value once, so rows share the resulting strings.
        codes, uniques = pd.factorize(
            columns(used[0]).to_numpy(dtype=object), use_na_sentinel=False
        )
        rendered, empty_unique = render_template(
            template, lambda _: text(np.asarray(uniques, dtype=object)), len(uniques), _single=False
        )
        return text(rendered.to_numpy(dtype=object)[codes]), empty_unique[codes]
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
    return text(result), empty


# Conservative: an address matching this is certainly accepted by email-validator (with
# deliverability checks off), so only the rest pays for the full validation.
_FAST_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,64}(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+"
    r"(?!(?:arpa|invalid|local|localhost|onion|test)$)[a-z]{2,63}"
)


@lru_cache(maxsize=65536)
def check_email(value: str) -> str | None:
    """None when valid, else the reason; cached because HR exports repeat bad values."""
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        return str(exc)
    return None


def _email_reasons(values: list[str]) -> list[str | None]:
    out: list[str | None] = []
    for value in values:
        if value == "" or (len(value) <= 254 and _FAST_EMAIL.fullmatch(value)):
            out.append(None)
        else:
            out.append(check_email(value))
    return out


def validate_emails(series: pd.Series[str], column: str) -> Problem | None:
    """Invalid (non-empty) addresses; expects lower-cased input."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=False)
    match = _FAST_EMAIL.fullmatch
    slow = [i for i, v in enumerate(uniques) if v and (len(v) > 254 or match(v) is None)]
    if not slow:
        return None
    reasons = filled(len(uniques), None)
    reasons[slow] = _email_reasons([str(uniques[i]) for i in slow])
    bad_unique = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    bad = bad_unique[codes]
    if not bad.any():
        return None
    values = series.to_numpy(dtype=object)
    positions = np.flatnonzero(bad)
    texts = text_array([f"invalid email '{values[p]}': {reasons[codes[p]]}" for p in positions])
    return Problem(positions, column, texts)
