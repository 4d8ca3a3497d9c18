"""The column-at-once shortcuts give exactly what the value-by-value definition gives."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.core.mapping.template import parse_template
from sync.core.mapping.transforms import (
    factorize,
    filled,
    render_template,
    shared_factorize,
    strip_all,
    text,
    validate_emails,
)
from sync.emails import is_valid_email

EMAIL_PARTS = st.sampled_from(
    ["a", "jan", "x.y", "@", ".", "-", "voorbeeld-bv", ".nl", ".test", "..", " ", "+", "é", "1"]
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.lists(EMAIL_PARTS, max_size=6).map("".join), min_size=1, max_size=30))
def test_email_scan_agrees_with_the_value_by_value_rule(values: list[str]) -> None:
    problem = validate_emails(text(values), "mail")
    expected = [i for i, v in enumerate(values) if v and not is_valid_email(v)]
    assert (list(problem.positions) if problem else []) == expected
    if problem is not None:
        for position, reason in zip(problem.positions, problem.reasons, strict=True):
            assert reason.startswith(f"invalid email '{values[position]}': ")


def test_email_scan_finds_bad_rows_among_many_good_ones() -> None:
    values = [f"u{i}@voorbeeld-bv.nl" for i in range(20_000)]
    values[0], values[777], values[19_999] = "broken", "", "a@b.nl."
    problem = validate_emails(text(values), "mail")
    assert problem is not None
    assert list(problem.positions) == [0, 19_999]


def test_email_scan_of_values_it_cannot_join_falls_back() -> None:
    problem = validate_emails(text(["a@b.nl", "nul\x00@b.nl", "x"]), "mail")
    assert problem is not None
    assert list(problem.positions) == [1, 2]


WORDS = st.sampled_from(["", " ", "Jan", "de", " van ", "Zoë", "a b", "HR "])


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(st.tuples(WORDS, WORDS, WORDS), min_size=1, max_size=40),
    st.sampled_from(["{a} {b} {c}", "x-{a|slug}-{c|upper}", "{b}", "{{{a}}}{a}", "lit"]),
    st.booleans(),
)
def test_template_rendered_per_combination_equals_row_by_row(
    rows: list[tuple[str, str, str]], source: str, strip: bool
) -> None:
    template = parse_template(source)
    columns = {name: text([r[i] for r in rows]) for i, name in enumerate("abc")}
    rendered, empty = render_template(template, columns.__getitem__, len(rows), strip=strip)
    expected_values, expected_empty = [], []
    for row in rows:
        one = {name: text([row[i]]) for i, name in enumerate("abc")}
        value, flag = render_template(template, one.__getitem__, 1)
        expected_values.append(value.iloc[0].strip() if strip else value.iloc[0])
        expected_empty.append(bool(flag[0]))
    assert list(rendered) == expected_values
    assert list(empty) == expected_empty


def test_strip_of_a_repetitive_column_strips_every_row() -> None:
    values = ["HR", " ICT", "Verkoop ", "HR"] * 5_000
    values[12_345] = "  rare  "
    stripped = strip_all(text(values))
    assert list(stripped) == [v.strip() for v in values]


def test_strip_keeps_the_column_when_nothing_changes() -> None:
    column = text(["HR", "ICT"] * 5_000)
    assert strip_all(column) is column
    unique = text([str(i) for i in range(10_000)])
    assert strip_all(unique) is unique


def test_shared_factorize_reuses_only_the_same_column() -> None:
    first = filled(5, "a")
    second = np.asarray(["a", "b", "a", "b", "c"], dtype=object)
    with shared_factorize():
        codes_first = factorize(first)[0]
        assert factorize(first)[0] is codes_first
        assert factorize(text(first).to_numpy(dtype=object))[0] is codes_first
        codes, uniques = factorize(second)
        assert list(uniques[codes]) == list(second)
    assert factorize(first)[0] is not codes_first
