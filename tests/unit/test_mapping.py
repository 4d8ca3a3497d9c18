"""Mapping one source: transforms, templates, validation and rejections, groups, managers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from sync.core.mapping.mapper import check_columns, map_source
from sync.core.mapping.merge import merge
from sync.core.mapping.spec import load_mapping, parse_mapping
from sync.core.mapping.template import TemplateError, parse_template
from sync.core.mapping.transforms import slugify, validate_emails
from sync.errors import ConfigError, SourceError
from sync.model import REJECTION_COLUMNS, Desired, format_rejection, is_warning, write_rejections
from tests.unit.mapping_helpers import BASE, TODAY, frame, person, reasons, run, spec

ROOT = Path(__file__).resolve().parents[2]


# --- transforms -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transforms", "raw", "expected"),
    [
        (["strip"], "  Jan ", "Jan"),
        (["lower"], "JAN", "jan"),
        (["upper"], "jan", "JAN"),
        (["title"], "jan de vries", "Jan De Vries"),
        (["slug"], "Financiën & Control", "financien-control"),
        (["collapse_spaces"], "Jan   de  Vries", "Jan de Vries"),
        ([{"default": "X"}], "", "X"),
        ([{"default": "X"}], "a", "a"),
        ([{"replace": "^0+", "with": ""}], "000123", "123"),
        ([{"replace": r"(\d+)-(\d+)", "with": r"\2-\1"}], "12-34", "34-12"),
        ([{"map": {"Amsterdam": "AMS"}}], "amsterdam", "AMS"),
        ([{"map": {"a": "b"}, "no_match": "keep"}], "zz", "zz"),
        ([{"map": {"a": "b"}, "no_match": "default", "default": "d"}], "zz", "d"),
        ([{"map": {"a": "b"}, "ignore_case": False}], "A", "A"),
        ([{"date": ["%d-%m-%Y", "%Y%m%d"]}], "20240131", "2024-01-31"),
        (["strip", "upper", {"replace": "-", "with": ""}], " ab-12 ", "AB12"),
    ],
)
def test_each_transform(transforms: list[object], raw: str, expected: str) -> None:
    mapping = spec(ref={"column": "code", "transforms": transforms})
    result, _ = run(mapping, [{**person("1"), "code": raw}])
    assert list(result.rows["ref"]) == [expected]


def test_map_no_match_reject_and_date_failure_are_rejections_with_place() -> None:
    mapping = spec(
        language={"column": "lang", "transforms": [{"map": {"dutch": "NL"}, "no_match": "reject"}]}
    )
    _, desired = run(mapping, [person("1", lang="dutch"), person("2", lang="klingon")])
    assert list(desired.users.index) == ["1"]
    row = desired.rejections.iloc[0]
    assert (row["file"], row["line"], row["column"], row["ref"]) == ("hr.csv", 3, "lang", "2")
    assert format_rejection(row) == (
        "hr.csv:3 [lang] ref 2: 'klingon' has no entry in the value map"
    )


def test_slug_is_ascii_and_stable() -> None:
    assert slugify("  Zoë & Anaïs / R&D ") == "zoe-anais-r-d"
    assert slugify("!!!") == ""


# --- templates ------------------------------------------------------------------------


def test_template_parsing_filters_and_escapes() -> None:
    template = parse_template("{{x}} dept-{ Afdeling | slug }")
    assert template.columns == ["Afdeling"]
    with pytest.raises(TemplateError, match="unknown filter"):
        parse_template("{a|shout}")
    with pytest.raises(TemplateError, match="unbalanced"):
        parse_template("a}b")
    with pytest.raises(TemplateError, match="empty placeholder"):
        parse_template("{}")


def test_name_template_collapses_empty_parts_and_keeps_accents() -> None:
    mapping = spec(name={"template": "{first} {mid} {last}"})
    result, _ = run(
        mapping,
        [
            {**person("1", "Zoë", "Vries"), "mid": "de", "mail": "zoe@example.com"},
            {**person("2", "Chloë ", " Berg"), "mid": "", "mail": "chloe@example.com"},
        ],
    )
    assert list(result.rows["name"]) == ["Zoë de Vries", "Chloë Berg"]


# --- users: messy values and enums ----------------------------------------------------


def test_messy_values_are_normalised() -> None:
    mapping = spec(
        roles={"column": "role", "split": ";", "default": "PARTICIPANT"},
        language={"column": "lang", "default": "NL"},
        active={"column": "act"},
    )
    rows = [
        {"id": " 7 ", "mail": "  Jan.Jansen@Example.COM ", "first": "Jan ", "last": "Jansen "}
        | {"role": "trainer; Manager ", "lang": "en", "act": "Nee"},
        person("8") | {"role": "", "lang": "", "act": ""},
    ]
    _, desired = run(mapping, rows)
    first = desired.users.loc["7"]
    assert first["email"] == "jan.jansen@example.com"
    assert first["name"] == "Jan Jansen"
    assert first["roles"] == "MANAGER,TRAINER"
    assert first["language"] == "EN"
    assert first["is_active"] == "false"
    second = desired.users.loc["8"]
    assert (second["roles"], second["language"], second["is_active"]) == (
        "PARTICIPANT",
        "NL",
        "true",
    )
    assert desired.rejections.empty


def test_unknown_role_language_and_boolean_reject_the_row() -> None:
    mapping = spec(roles="role", language="lang", active="act")
    _, desired = run(
        mapping,
        [
            person("1", role="wizard", lang="NL", act="ja"),
            person("2", role="trainer", lang="xx", act="ja"),
            person("3", role="trainer", lang="NL", act="misschien"),
        ],
    )
    assert desired.users.empty
    got = {(r.line, r.column): r.reason for r in desired.rejections.itertuples()}
    assert "unknown role 'wizard'" in got[(2, "role")]
    assert "unknown language 'xx'" in got[(3, "lang")]
    assert "'misschien' is not a yes/no value" in got[(4, "act")]


# --- rejection reasons ----------------------------------------------------------------


def test_missing_ref_missing_and_invalid_email() -> None:
    _, desired = run(
        spec(),
        [
            person("1") | {"id": ""},
            person("2") | {"mail": ""},
            person("3") | {"mail": "not-an-email"},
            person("4") | {"mail": "Jörg@Example.com"},
            person("5"),
        ],
    )
    assert list(desired.users.index) == ["5"]
    by_line = dict(zip(desired.rejections["line"], desired.rejections["reason"], strict=True))
    assert by_line[2] == "missing ref"
    assert by_line[3] == "missing email"
    assert by_line[4].startswith("invalid email 'not-an-email'")
    assert by_line[5].startswith("invalid email 'jörg@example.com'")
    assert set(desired.rejections["column"]) == {"id", "mail"}


def test_duplicate_ref_rejects_every_copy_naming_the_other_lines() -> None:
    _, desired = run(spec(), [person("1"), person("9", "A"), person("2"), person("9", "B")])
    assert sorted(desired.users.index) == ["1", "2"]
    dupes = desired.rejections.set_index("line")["reason"]
    assert dupes[3] == "duplicate ref '9' (also used on line(s) 5)"
    assert dupes[5] == "duplicate ref '9' (also used on line(s) 3)"


def test_same_email_on_different_refs_rejects_every_copy() -> None:
    shared = "Same@Example.com"
    rows = [person("1") | {"mail": shared}, person("2") | {"mail": shared.lower()}, person("3")]
    _, desired = run(spec(), rows)
    assert list(desired.users.index) == ["3"]
    assert reasons(desired) == [
        "duplicate email 'same@example.com' (also used by ref(s) 2 on line(s) 3)",
        "duplicate email 'same@example.com' (also used by ref(s) 1 on line(s) 2)",
    ]


def test_emails_are_checked_as_pluvo_checks_them() -> None:
    """Django's rule: special-use domains are fine, a non-ASCII local part is not."""
    emails = pd.Series(
        ["a@example.com", "x.y+z@sub.example.nl", "bad@@x.nl", "a@b.test", "ü@example.com", ""],
        dtype=object,
    )
    problem = validate_emails(emails, "mail")
    assert problem is not None
    assert list(problem.positions) == [2, 4]


def test_rejections_export_as_csv(tmp_path: Path) -> None:
    _, desired = run(spec(), [person("1") | {"mail": "x"}])
    path = write_rejections(desired, tmp_path / "out" / "rejections.csv")
    written = pd.read_csv(path, dtype=str, keep_default_na=False)
    columns = ["source", "file", "line", "column", "ref", "severity", "reason"]
    assert list(written.columns) == columns
    assert written.iloc[0]["line"] == "2"
    assert written.iloc[0]["severity"] == "error"
    assert written.iloc[0]["reason"].startswith("invalid email 'x'")


@pytest.mark.parametrize(
    "hostile",
    ['=HYPERLINK("http://x","y")', "+1+1", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"],
)
def test_rejection_csv_cells_never_start_a_formula(tmp_path: Path, hostile: str) -> None:
    """OWASP's rule for CSV injection: a cell starting with = + - @ tab or CR is
    prefixed with a quote; the text itself is kept."""
    desired = Desired()
    desired.rejections = pd.DataFrame(
        [["hr", "hr.csv", 4, "Naam", hostile, "error", f"invalid email '{hostile}'"]],
        columns=list(REJECTION_COLUMNS),
    )
    path = write_rejections(desired, tmp_path / "rejected.csv")
    row = pd.read_csv(path, dtype=str, keep_default_na=False).iloc[0]
    assert row["ref"] == "'" + hostile
    assert row["reason"] == f"invalid email '{hostile}'"  # does not start a formula
    assert row["line"] == "4"
    for cell in row:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))


# --- extra categories -----------------------------------------------------------------

EXTRA = [
    {"category": "department", "type": "string", "column": "dept"},
    {"category": "start", "type": "datetime", "column": "start", "format": "%d-%m-%Y"},
    {"category": "stamp", "type": "datetime", "column": "stamp", "format": "%Y-%m-%d %H:%M"},
    {"category": "ext", "type": "boolean", "column": "ext"},
    {"category": "loc", "type": "choice", "column": "loc", "options": ["Amsterdam", "Utrecht"]},
    {
        "category": "skills",
        "type": "multiselect",
        "column": "skills",
        "options": ["Python", "SQL", "Excel"],
        "separator": "|",
        "unknown": "drop",
    },
]


def test_extra_values_per_type_in_canonical_form() -> None:
    row = person("1") | {
        "dept": " ICT ",
        "start": "31-01-2024",
        "stamp": "2024-01-31 13:45",
        "ext": "JA",
        "loc": "utrecht",
        "skills": "sql| python |Cobol",
    }
    _, desired = run(spec(extra=EXTRA), [row, person("2") | {"loc": ""}])
    values = dict(
        zip(desired.extra_values["category_ref"], desired.extra_values["value"], strict=True)
    )
    assert values == {
        "department": "ICT",
        "start": "2024-01-31",
        "stamp": "2024-01-31T13:45:00+00:00",
        "ext": "true",
        "loc": "Utrecht",
        "skills": "Python\nSQL",
    }
    # Empty source values give no value at all for user 2.
    assert set(desired.extra_values["user_ref"]) == {"1"}
    assert set(desired.extra_values["category_type"]) == {
        "string",
        "datetime",
        "boolean",
        "choice",
    } | {"multiselect"}


def test_unknown_choice_rejects_or_drops() -> None:
    rejecting = spec(extra=[EXTRA[4]])
    _, desired = run(rejecting, [person("1") | {"loc": "Parijs"}])
    assert desired.users.empty
    assert reasons(desired) == ["unknown choice 'Parijs' for loc (options: Amsterdam, Utrecht)"]
    dropping = spec(extra=[{**EXTRA[4], "unknown": "drop"}])
    _, desired = run(dropping, [person("1") | {"loc": "Parijs"}])
    assert list(desired.users.index) == ["1"]
    assert desired.extra_values.empty


def test_unparseable_date_in_extra_rejects() -> None:
    _, desired = run(spec(extra=[EXTRA[1]]), [person("1") | {"start": "2024-31-01"}])
    assert reasons(desired) == ["'2024-31-01' is not a date in format %d-%m-%Y"]


# --- groups and managers --------------------------------------------------------------

GROUPS = {
    "rules": [
        {"id": "dept", "ref": "dept-{dept|slug}", "name": "{dept}"},
        {"id": "loc", "ref": "loc-{loc|lower}", "name": "Vestiging {loc}"},
    ],
    "static": [{"ref": "all-staff", "name": "All staff"}],
}


def test_group_rules_static_groups_and_skipped_empty_columns() -> None:
    rows = [
        person("1") | {"dept": "Financiën", "loc": "Utrecht"},
        person("2") | {"dept": "Financiën", "loc": ""},
        person("3") | {"dept": "", "loc": "Utrecht"},
    ]
    _, desired = run(spec(groups=GROUPS), rows)
    assert desired.groups.to_dict("index") == {
        "dept-financien": {"name": "Financiën", "_source": "dept"},
        "loc-utrecht": {"name": "Vestiging Utrecht", "_source": "loc"},
        "all-staff": {"name": "All staff", "_source": "static"},
    }
    pairs = set(desired.memberships.itertuples(index=False, name=None))
    assert pairs == {
        ("dept-financien", "1"),
        ("dept-financien", "2"),
        ("loc-utrecht", "1"),
        ("loc-utrecht", "3"),
        ("all-staff", "1"),
        ("all-staff", "2"),
        ("all-staff", "3"),
    }


def test_memberships_only_for_accepted_users() -> None:
    rows = [person("1") | {"dept": "HR", "loc": "A"}, person("2") | {"dept": "Sales", "mail": ""}]
    _, desired = run(spec(groups=GROUPS), rows)
    assert set(desired.memberships["user_ref"]) == {"1"}
    assert "dept-sales" not in desired.groups.index


def test_managers_from_column_and_from_flag() -> None:
    managers = [
        {"group": "dept", "column": "boss"},
        {
            "group": "loc",
            "when": {"column": "title", "values": ["vestigingsmanager"], "ignore_case": True},
        },
    ]
    rows = [
        person("1") | {"dept": "HR", "loc": "Utrecht", "boss": "", "title": "Vestigingsmanager"},
        person("2") | {"dept": "HR", "loc": "Utrecht", "boss": " 1 ", "title": "Adviseur"},
        person("3") | {"dept": "ICT", "loc": "Utrecht", "boss": "404", "title": "Adviseur"},
        person("4") | {"dept": "ICT", "loc": "Utrecht", "boss": "5", "title": "Adviseur"},
        person("5", mail="x") | {"dept": "ICT", "loc": "", "boss": "", "title": ""},
    ]
    _, desired = run(spec(groups=GROUPS, managers=managers), rows)
    pairs = set(desired.managers.itertuples(index=False, name=None))
    assert pairs == {("dept-hr", "1"), ("loc-utrecht", "1")}
    warnings = desired.rejections[is_warning(desired.rejections)]
    assert list(warnings["line"]) == [4, 5]
    assert list(warnings["column"]) == ["boss", "boss"]
    assert warnings.iloc[0]["reason"].startswith("manager '404' is not a synced user")
    assert format_rejection(warnings.iloc[0]).startswith("hr.csv:4 [boss] ref 3: warning: ")
    # Users with a dropped manager link still sync; user 5 (bad email) does not.
    assert sorted(desired.users.index) == ["1", "2", "3", "4"]


# --- filters and dates ----------------------------------------------------------------


def test_filters_drop_rows_without_rejecting_them() -> None:
    filters = {
        "include": [{"column": "status", "values": ["Actief"]}],
        "exclude": [{"column": "title", "regex": "(?i)stag.*"}],
    }
    rows = [
        person("1") | {"status": "Actief", "title": "Adviseur"},
        person("2") | {"status": "Inactief", "title": "Adviseur", "mail": ""},
        person("3") | {"status": "Actief", "title": "Stagiair"},
    ]
    result, desired = run(spec(filters=filters), rows)
    assert list(desired.users.index) == ["1"]
    assert desired.rejections.empty
    assert (result.stats.filtered, result.stats.rejected, result.stats.users) == (2, 0, 1)


@pytest.mark.parametrize(
    ("inclusive", "end", "ended"),
    [(True, "31-05-2025", True), (True, "01-06-2025", False), (False, "01-06-2025", True)],
)
def test_leavers_by_end_date(inclusive: bool, end: str, ended: bool) -> None:
    dates = {"end_date": {"column": "end", "format": "%d-%m-%Y"}, "end_date_inclusive": inclusive}
    _, desired = run(
        spec(dates=dates, groups=GROUPS), [person("1") | {"end": end, "dept": "HR", "loc": "A"}]
    )
    assert ("1" in desired.ended.index) is ended
    assert ("1" in desired.users.index) is not ended
    if ended:
        assert desired.ended.loc["1", "end_date"] == f"{end[6:]}-{end[3:5]}-{end[:2]}"
        assert desired.memberships.empty


def test_prehires_wait_until_the_lead_time() -> None:
    dates = {"start_date": {"column": "start", "format": "%Y-%m-%d"}, "prehire_lead_days": 14}
    rows = [
        person("1") | {"start": "2025-06-15"},  # today + 14: created now
        person("2") | {"start": "2025-06-16"},  # beyond the lead time
        person("3") | {"start": "gisteren"},
    ]
    result, desired = run(spec(dates=dates), rows)
    assert list(desired.users.index) == ["1"]
    assert desired.pending.to_dict("index") == {"2": {"start_date": "2025-06-16"}}
    assert reasons(desired) == ["'gisteren' is not a date in format %Y-%m-%d"]
    assert (result.stats.pending, result.stats.rejected) == (1, 1)


# --- the mapping file -----------------------------------------------------------------


def test_mapping_file_errors_each_with_their_path() -> None:
    data = {
        "users": {
            "ref": {"column": "id", "template": "{x}"},
            "email": {
                "column": "mail",
                "transforms": ["strip", "shout", {"map": {}, "no_match": "default"}],
            },
            "name": {"template": "{first"},
        },
        "extra": [{"category": "loc", "type": "choice", "column": "loc"}],
        "groups": {"rules": [{"id": "d", "ref": "x", "name": "y"}]},
        "managers": [{"group": "nope", "column": "boss"}],
        "colour": "blue",
    }
    with pytest.raises(ConfigError) as info:
        parse_mapping(data, source="hr.yaml")
    text = str(info.value)
    assert text.startswith("invalid mapping file hr.yaml:")
    for expected in [
        "users.ref: exactly one of column, template or value is required",
        "users.email.transforms[1]: Input should be 'strip', 'lower'",
        "users.email.transforms[2]: no_match: default needs a `default:` value",
        "users.name: template: unbalanced '{'",
        "extra[0]: type choice needs a non-empty `options:` list",
        "colour: unknown key",
    ]:
        assert expected in text
    assert info.value.exit_code == 2


def test_mapping_cross_reference_errors() -> None:
    with pytest.raises(ConfigError, match=r"managers: unknown group rule id\(s\) nope"):
        parse_mapping({**BASE, "managers": [{"group": "nope", "column": "boss"}]})


def test_mapping_file_yaml_and_missing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("users: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml line"):
        load_mapping(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_mapping(tmp_path / "nope.yaml")


def test_required_columns_missing_with_suggestion() -> None:
    mapping = spec(groups=GROUPS)
    with pytest.raises(SourceError) as info:
        check_columns(
            "hr",
            ["id", "E-mail", "first", "last", "Dept", "loc"],
            mapping,
            files=["/x/hr.csv"],
            mapping_file="mappings/hr.yaml",
        )
    text = str(info.value)
    assert text.startswith(
        "source hr: hr.csv lacks column(s) 'mail' (did you mean 'E-mail'?) [users.email], "
        "'dept' (did you mean 'Dept'?) [groups.rules[0].ref, groups.rules[0].name] "
        "that mapping mappings/hr.yaml reads"
    ), text
    check_columns("hr", ["id", "mail", "first", "last", "dept", "loc"], mapping)


def test_empty_frame_passes() -> None:
    empty = frame([person("1")]).iloc[0:0]
    result = map_source("hr", empty, spec(groups=GROUPS), today=TODAY)
    desired = merge([result])
    assert desired.users.empty
    assert desired.rejections.empty
    assert desired.source_rows == {"hr": 0}


# --- the shipped example --------------------------------------------------------------


def test_example_mapping_on_sample_export() -> None:
    mapping = load_mapping(ROOT / "mappings" / "example.yaml")
    raw = pd.read_csv(ROOT / "samples" / "hr.csv", sep=";", dtype=object, keep_default_na=False)
    raw["_file"] = "samples/hr.csv"
    raw["_line"] = range(2, len(raw) + 2)
    check_columns("hr", list(raw.columns), mapping)
    result = map_source("hr", raw, mapping, today=TODAY)
    desired = merge([result])
    assert len(raw) >= 40
    assert result.stats.filtered == 1
    assert "1034" in desired.pending.index  # future start
    assert "1033" in desired.ended.index  # past end
    rejected = desired.rejections[~is_warning(desired.rejections)]
    assert sorted(rejected["ref"]) == ["1020", "1020", "1026"]
    assert desired.users.loc["1012", "email"] == "iris.brouwer@voorbeeld-bv.nl"
    assert desired.users.loc["1003", "name"] == "Sanne van den Berg"
    assert {"dept-financien", "loc-groningen", "all-staff"} <= set(desired.groups.index)
    assert ("dept-hr", "1002") in set(desired.managers.itertuples(index=False, name=None))
    assert set(desired.extra_values["category_ref"]) == {
        "department",
        "job_title",
        "start_date",
        "is_external",
        "location",
        "skills",
    }
    accounted = len(desired.users) + len(desired.pending) + len(desired.ended)
    assert accounted + result.stats.filtered + result.stats.rejected == len(raw)
