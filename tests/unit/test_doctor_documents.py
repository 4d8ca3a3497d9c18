"""Doctor's document validation: the engine's documents against variants of the schema.

The schemas are the bundled contract (sync/pluvo/schema.graphql) edited the way a
live Pluvo generation may differ, so each test shows one difference being caught
(or, for the membership spelling, adapted to).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from graphql import GraphQLSchema, build_schema

from sync.commands.doctor.documents import (
    EngineDocument,
    category_problems,
    choose_membership,
    membership_documents,
    read_documents,
    validate_documents,
    write_documents,
)
from sync.core.mapping.spec import MappingSpec, parse_mapping
from sync.pluvo.results import ExtraCategory

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "sync" / "pluvo" / "schema.graphql"
SCHEMA_TEXT = SCHEMA_FILE.read_text(encoding="utf-8")


def edited(*edits: tuple[str, str]) -> GraphQLSchema:
    """The bundled schema with each (regex, replacement) applied exactly once."""
    text = SCHEMA_TEXT
    for pattern, replacement in edits:
        text, count = re.subn(pattern, replacement, text, count=1)
        assert count == 1, f"edit {pattern!r} did not apply"
    return build_schema(text)


WITHOUT_SEND_INVITE = (
    r"sendInvite: Boolean, user: UserInput!\): UpdateOrCreateUser",
    "user: UserInput!): UpdateOrCreateUser",
)
WITHOUT_ADDED_IDS = (r"  addedIds: \[UUID!\]!\n", "")
WITHOUT_ADDED_REFS = (r"  addedRefs: \[String!\] @deprecated\(reason: \"Use addedIds.\"\)\n", "")


def all_documents() -> list[EngineDocument]:
    return write_documents() + read_documents() + membership_documents("ids")


def test_bundled_schema_accepts_every_engine_document() -> None:
    schema = build_schema(SCHEMA_TEXT)
    docs = all_documents()
    assert validate_documents(schema, docs) == []
    fields = {d.field for d in docs}
    assert {
        "updateOrCreateUser",
        "createGroup",
        "updateGroup",
        "addUsersToGroup",
        "removeUsersFromGroup",
        "addManagersToGroup",
        "removeManagersFromGroup",
        "updateExtraCategoryValues",
        "paginatedUsers",
        "paginatedGroups",
        "group",
        "user",
        "extraCategories",
    } <= fields


def test_missing_argument_is_named_with_operation_and_graphql_core_message() -> None:
    problems = validate_documents(edited(WITHOUT_SEND_INVITE), all_documents())
    assert [str(p) for p in problems] == [
        "updateOrCreateUser: Unknown argument 'sendInvite' on field 'Mutation.updateOrCreateUser'."
    ]


def test_enum_value_missing_from_live_schema_is_caught() -> None:
    schema = edited(
        (
            r"enum Role \{ PARTICIPANT TRAINER AUTHOR PLANNER MANAGER OWNER \}",
            "enum Role { PARTICIPANT TRAINER }",
        )
    )
    problems = validate_documents(schema, write_documents())
    assert any(
        p.field == "updateOrCreateUser" and "MANAGER" in p.message and "Role" in p.message
        for p in problems
    ), problems


def test_read_query_shape_is_checked() -> None:
    schema = edited((r"managers\(first: Int, after: String\): UserConnection\n", ""))
    problems = validate_documents(schema, read_documents())
    assert [p.field for p in problems] == ["group"]
    assert "Cannot query field 'managers' on type 'Group'" in problems[0].message


def test_offset_pages_are_checked() -> None:
    # Pluvo's documentation pages users with `after` only; the full reads use `offset`.
    schema = edited(
        (
            r"paginatedUsers\(first: Int, after: String, offset: Int,",
            "paginatedUsers(first: Int, after: String,",
        )
    )
    problems = validate_documents(schema, read_documents())
    assert [(p.field, p.purpose) for p in problems] == [("paginatedUsers", "read users by offset")]
    assert "Unknown argument 'offset'" in problems[0].message


def test_membership_prefers_ids_when_both_exist() -> None:
    choice = choose_membership(build_schema(SCHEMA_TEXT))
    assert choice.fields == "ids"
    assert choice.label == "addedIds (newer API)"
    assert choice.rejected == {}


def test_membership_falls_back_to_refs() -> None:
    choice = choose_membership(edited(WITHOUT_ADDED_IDS))
    assert choice.fields == "refs"
    assert choice.label == "addedRefs (older API)"
    rejected = [str(p) for p in choice.rejected["ids"]]
    assert len(rejected) == 1
    assert rejected[0].startswith(
        "addUsersToGroup: Cannot query field 'addedIds' on type 'AddUsersToGroup'."
    )


def test_membership_with_neither_spelling() -> None:
    choice = choose_membership(edited(WITHOUT_ADDED_IDS, WITHOUT_ADDED_REFS))
    assert choice.fields is None
    assert set(choice.rejected) == {"ids", "refs"}


@pytest.mark.parametrize(
    ("action", "method", "expected"),
    [
        ("archive", "upsert", False),
        ("archive", "update", False),
        ("archive", "bulk", True),
        ("deactivate", "bulk", False),
        ("ignore", "bulk", False),
    ],
)
def test_only_the_configured_leaver_method_is_required(
    action: str, method: str, expected: bool
) -> None:
    schema = edited((r"  archiveUsers\(archive: Boolean!, ids: \[UUID!\]!\): ArchiveUsers\n", ""))
    docs = write_documents(leaver_action=action, archive_method=method)  # type: ignore[arg-type]
    problems = validate_documents(schema, docs)
    assert bool(problems) is expected
    if expected:
        assert problems[0].field == "archiveUsers"
        assert "Cannot query field 'archiveUsers' on type 'Mutation'" in problems[0].message


def test_missing_input_field_is_caught() -> None:
    schema = edited((r"  booleanValue: Boolean\n  choiceValues", "  choiceValues"))
    problems = validate_documents(schema, write_documents())
    assert [p.field for p in problems] == ["updateExtraCategoryValues"]
    assert "booleanValue" in problems[0].message


# ---------------------------------------------------------------- extra categories


def mapping(extra: list[dict[str, object]]) -> MappingSpec:
    return parse_mapping({"users": {"ref": "Nr", "email": "Mail", "name": "Naam"}, "extra": extra})


def category(ref: str, kind: str, options: tuple[str, ...] = ()) -> ExtraCategory:
    return ExtraCategory.parse(
        {
            "id": f"id-{ref}",
            "ref": ref,
            "title": ref.title(),
            "categoryType": kind,
            "forModelTypes": ["USER"],
            "choiceOptions": [
                {"id": f"o{i}", "ref": None, "stringValue": o} for i, o in enumerate(options)
            ],
        }
    )


LIVE = [
    category("department", "STRING"),
    category("location", "CHOICE", ("Amsterdam", "Utrecht")),
    category("start_date", "DATETIME"),
]


def test_categories_all_present() -> None:
    spec = mapping(
        [
            {"category": "department", "type": "string", "column": "Afd"},
            {"category": "location", "type": "choice", "column": "Loc", "options": ["Utrecht"]},
            {"category": "start_date", "type": "datetime", "column": "Start"},
        ]
    )
    assert category_problems(LIVE, {"hr": spec}) == []


def test_category_missing_wrong_type_and_missing_option() -> None:
    spec = mapping(
        [
            {"category": "cost_centre", "type": "string", "column": "KP"},
            {"category": "department", "type": "boolean", "column": "Afd"},
            {
                "category": "location",
                "type": "choice",
                "column": "Loc",
                "options": ["Utrecht", "Berlin"],
            },
        ]
    )
    assert category_problems(LIVE, {"hr": spec}) == [
        "source hr: extra category 'cost_centre' does not exist in Pluvo "
        "(known: department, location, start_date)",
        "source hr: extra category 'department' is STRING in Pluvo, the mapping says boolean",
        "source hr: extra category 'location' lacks the option(s) Berlin in Pluvo "
        "(has: Amsterdam, Utrecht)",
    ]
