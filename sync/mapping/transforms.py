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
    warning: bool = False

    @classmethod
    def where(
        cls,
        mask: npt.NDArray[np.bool_],
        column: str,
        reasons: str | pd.Series[str] | npt.NDArray[np.object_],
        *,
        warning: bool = False,
    ) -> Problem | None:
        positions = np.flatnonzero(mask)
        if positions.size == 0:
            return None
        if isinstance(reasons, str):
            values = np.full(positions.size, reasons, dtype=object)
        else:
            values = np.asarray(reasons, dtype=object)[positions]
        return cls(positions, column, values, warning)


def as_text(series: pd.Series) -> pd.Series[str]:
    """Plain object-dtype strings with "" for missing: the one form the mapping works on."""
    values = series.to_numpy(dtype=object, na_value="")
    return pd.Series(values, index=series.index, dtype=object)


def per_unique(series: pd.Series[str], func: Callable[[list[str]], Sequence[object]]) -> pd.Series:
    """Apply `func` to the distinct values only and spread the results back to every row."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object), use_na_sentinel=False)
    results = np.empty(len(uniques), dtype=object)
    results[:] = list(func(list(uniques)))
    return pd.Series(results[codes], index=series.index, dtype=object)


def slugify(value: str) -> str:
    """ASCII, lower case, words joined by '-': stable refs from accented Dutch names."""
    ascii_text = (
        unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii").lower()
    )
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")


def collapse_spaces(series: pd.Series[str]) -> pd.Series[str]:
    return as_text(series.str.replace(r"\s+", " ", regex=True).str.strip())


def text_op(series: pd.Series[str], name: str) -> pd.Series[str]:
    if name == "strip":
        return as_text(series.str.strip())
    if name == "lower":
        return as_text(series.str.lower())
    if name == "upper":
        return as_text(series.str.upper())
    if name == "title":
        return per_unique(series, lambda values: [v.title() for v in values])
    if name == "slug":
        return per_unique(series, lambda values: [slugify(v) for v in values])
    if name == "collapse_spaces":
        return collapse_spaces(series)
    raise ValueError(f"unknown text operation {name}")


def _is_empty(series: pd.Series[str]) -> npt.NDArray[np.bool_]:
    return np.asarray(series.to_numpy(dtype=object) == "", dtype=bool)


def apply_map(
    series: pd.Series[str], spec: MapTransform, column: str
) -> tuple[pd.Series[str], Problem | None]:
    table = {(k.casefold() if spec.ignore_case else k): v for k, v in spec.map.items()}
    keys = series.str.casefold() if spec.ignore_case else series
    mapped = keys.map(table)
    missing = mapped.isna().to_numpy() & ~_is_empty(series)
    problem = None
    if spec.no_match == "keep":
        result = mapped.where(~mapped.isna(), series)
    elif spec.no_match == "default":
        result = mapped.where(~missing, spec.default or "")
    else:
        result = mapped
        reasons = "'" + series + "' has no entry in the value map"
        problem = Problem.where(missing, column, reasons.to_numpy(dtype=object))
    result = result.where(~result.isna(), "")
    return as_text(result), problem


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
                text = parsed[ok].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
            else:
                text = parsed[ok].dt.strftime("%Y-%m-%d")
            for pos, iso in zip(good, text.to_numpy(dtype=object), strict=True):
                out[pos] = str(iso)
            pending[good] = False
    return out  # type: ignore[return-value]


def parse_dates(
    series: pd.Series[str], formats: Sequence[str], column: str, *, with_time: bool = False
) -> tuple[pd.Series[str], Problem | None]:
    parsed = per_unique(series, lambda values: _parse_dates_unique(values, formats, with_time))
    bad = parsed.isna().to_numpy()
    reasons = "'" + series + f"' is not a date in format {' or '.join(formats)}"
    problem = Problem.where(bad, column, reasons.to_numpy(dtype=object))
    return as_text(parsed.where(~bad, "")), problem


def apply_transforms(
    series: pd.Series[str], transforms: Sequence[Transform], column: str
) -> tuple[pd.Series[str], list[Problem]]:
    problems: list[Problem] = []
    for transform in transforms:
        if isinstance(transform, str):
            series = text_op(series, transform)
        elif isinstance(transform, DefaultTransform):
            series = as_text(series.where(~_is_empty(series), transform.default))
        elif isinstance(transform, MapTransform):
            series, problem = apply_map(series, transform, column)
            if problem is not None:
                problems.append(problem)
        elif isinstance(transform, ReplaceTransform):
            series = as_text(series.str.replace(transform.replace, transform.with_, regex=True))
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
    parsed = per_unique(series, lambda values: [table.get(v.strip().casefold()) for v in values])
    bad = parsed.isna().to_numpy()
    reasons = "'" + series + "' is not a yes/no value"
    problem = Problem.where(bad, column, reasons.to_numpy(dtype=object))
    return as_text(parsed.where(~bad, "")), problem


def render_template(
    template: Template, columns: Callable[[str], pd.Series[str]], length: int
) -> tuple[pd.Series[str], npt.NDArray[np.bool_]]:
    """The rendered values and, per row, whether any placeholder's column was empty."""
    result: pd.Series[str] | None = None
    empty = np.zeros(length, dtype=bool)
    for part in template.parts:
        if isinstance(part, Placeholder):
            values = columns(part.column)
            empty |= _is_empty(values)
            for name in part.filters:
                values = text_op(values, name)
        else:
            values = pd.Series(np.full(length, part, dtype=object), dtype=object)
        result = values if result is None else result + values
    if result is None:
        result = pd.Series(np.full(length, "", dtype=object), dtype=object)
    return as_text(result), empty


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
    unique_series = pd.Series(uniques, dtype=object)
    fast = unique_series.str.len().le(254) & unique_series.str.fullmatch(_FAST_EMAIL.pattern)
    fast_ok = fast.fillna(False).to_numpy(dtype=bool) | (unique_series == "").to_numpy()
    reasons = np.full(len(uniques), None, dtype=object)
    slow = np.flatnonzero(~fast_ok)
    if slow.size:
        reasons[slow] = _email_reasons([str(uniques[i]) for i in slow])
    if slow.size == 0:
        return None
    bad_unique = np.asarray([r is not None for r in reasons], dtype=bool)
    bad = bad_unique[codes]
    if not bad.any():
        return None
    values = series.to_numpy(dtype=object)
    texts = np.empty(len(values), dtype=object)
    for pos in np.flatnonzero(bad):
        texts[pos] = f"invalid email '{values[pos]}': {reasons[codes[pos]]}"
    return Problem.where(bad, column, texts)
