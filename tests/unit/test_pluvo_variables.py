"""Batches rendered with variables: stable text per shape, JSON values, literal fallback."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from graphql import GraphQLSchema, build_schema, parse, validate

from sync.pluvo import ops
from sync.pluvo.ops import Enum, render_batch, variable_value
from sync.pluvo.schema import SCHEMA_FILE, ArgumentTypes, argument_types, bundled_schema

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return bundled_schema()


def _errors(schema: GraphQLSchema, document: str) -> list[str]:
    return [e.message for e in validate(schema, parse(document))]


def _upserts(prefix: str, n: int) -> list[ops.Call]:
    return [
        ops.upsert_user(
            f"{prefix}{i}",
            {"name": f"{prefix} {i}", "roles": "MANAGER,TRAINER", "language": "NL"},
            send_invite=i % 2 == 0,
        )
        for i in range(n)
    ]


def test_sandbox_serves_the_client_schema() -> None:
    """The client's contract and the sandbox's look-alike are one file."""
    from sync.sandbox.api import SCHEMA_FILE as SANDBOX_SCHEMA

    assert SCHEMA_FILE == ROOT / "sync" / "pluvo" / "schema.graphql"
    assert SANDBOX_SCHEMA.resolve() == SCHEMA_FILE.resolve()


def test_argument_types_come_from_the_schema(schema: GraphQLSchema) -> None:
    types = ArgumentTypes(schema)
    assert types.type_of("mutation", "updateOrCreateUser", "user") == "UserInput!"
    assert types.type_of("mutation", "updateOrCreateUser", "ref") == "String"
    assert types.type_of("mutation", "archiveUsers", "ids") == "[UUID!]!"
    assert types.type_of("mutation", "updateExtraCategoryValues", "contentType") == "ContentType!"
    assert types.type_of("query", "user", "ref") == "String"
    assert types.type_of("query", "updateOrCreateUser", "ref") is None
    assert types.type_of("mutation", "noSuchField", "ref") is None
    assert types.type_of("mutation", "updateOrCreateUser", "noSuchArg") is None
    assert (
        types.without(frozenset({"archiveUsers"})).type_of("mutation", "archiveUsers", "ids")
        is None
    )
    assert argument_types() is argument_types()


def test_same_shape_gives_the_same_text_whatever_the_values(schema: GraphQLSchema) -> None:
    types = argument_types()
    first, first_vars = render_batch(_upserts("E", 3), types=types, name="SyncBatch")
    second, second_vars = render_batch(_upserts("X", 3), types=types, name="SyncBatch")
    assert first == second
    assert first_vars != second_vars
    assert first.startswith(
        "mutation SyncBatch($a0_ref: String, $a0_sendInvite: Boolean, $a0_user: UserInput!, "
        "$a1_ref: String,"
    )
    assert (
        "a2: updateOrCreateUser(ref: $a2_ref, sendInvite: $a2_sendInvite, user: $a2_user) {"
        in first
    )
    assert '"' not in first  # no value leaked into the text
    assert _errors(schema, first) == []
    # A different shape (other user fields) is another text, a longer batch too.
    other = [ops.upsert_user("E1", {"archived": True}, send_invite=False)]
    assert render_batch(other, types=types)[0] != first
    assert render_batch(_upserts("E", 4), types=types, name="SyncBatch")[0] != first


def test_variables_carry_enums_as_strings_and_nested_inputs() -> None:
    calls = [
        ops.upsert_user(
            "E1",
            {"roles": ["PARTICIPANT", "MANAGER"], "language": "EN", "is_active": False},
            send_invite=False,
        ),
        ops.set_extra_values(
            "E1",
            [
                {"categoryRef": "start_date", "datetimeValue": datetime(2024, 5, 1, 8, tzinfo=UTC)},
                {"categoryRef": "is_external", "booleanValue": True},
                {"categoryRef": "skills", "choiceValues": [{"stringValue": "SQL"}]},
                {"categoryRef": "department", "stringValue": 'Sales "NL"\n'},
            ],
        ),
    ]
    _, variables = render_batch(calls, types=argument_types())
    assert variables == {
        "a0_ref": "E1",
        "a0_sendInvite": False,
        "a0_user": {"roles": ["PARTICIPANT", "MANAGER"], "language": "EN", "isActive": False},
        "a1_contentType": "USER",
        "a1_modelRef": "E1",
        "a1_values": [
            {"categoryRef": "start_date", "datetimeValue": "2024-05-01T08:00:00+00:00"},
            {"categoryRef": "is_external", "booleanValue": True},
            {"categoryRef": "skills", "choiceValues": [{"stringValue": "SQL"}]},
            {"categoryRef": "department", "stringValue": 'Sales "NL"\n'},
        ],
    }
    assert type(variables["a0_user"]["language"]) is str  # not the Enum subclass


def test_variable_values_in_json_form() -> None:
    uuid = UUID("12345678-1234-5678-1234-567812345678")
    assert variable_value(
        {"a": (1, 2.5, None), "d": date(2024, 1, 2), "u": uuid, "e": Enum("NL"), "s": {"x"}}
    ) == {"a": [1, 2.5, None], "d": "2024-01-02", "u": str(uuid), "e": "NL", "s": ["x"]}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (Enum("NL }"), ValueError),
        ({"bad key": 1}, ValueError),
        (float("inf"), ValueError),
        ("\ud800", ValueError),
        (object(), TypeError),
    ],
)
def test_unsendable_values_are_refused_before_any_request(
    value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error):
        variable_value(value)


def test_field_missing_from_schema_falls_back_to_literals(schema: GraphQLSchema) -> None:
    """A live schema without a field: that call goes literal, the others keep variables."""
    reduced = build_schema(
        SCHEMA_FILE.read_text(encoding="utf-8").replace(
            "  archiveUsers(archive: Boolean!, ids: [UUID!]!): ArchiveUsers\n", ""
        )
    )
    assert "archiveUsers" not in (reduced.mutation_type.fields if reduced.mutation_type else {})
    calls = [ops.archive_users(["u1"]), ops.create_group("G1", "Sales")]
    document, variables = render_batch(calls, types=ArgumentTypes(reduced), name="SyncBatch")
    assert document == (
        "mutation SyncBatch($a1_group: CreateGroupInput!) { "
        'a0: archiveUsers(archive: true, ids: ["u1"]) { response { succeededIds failedIds } } '
        "a1: createGroup(group: $a1_group) { group { id ref name } } }"
    )
    assert variables == {"a1_group": {"ref": "G1", "name": "Sales"}}
    assert _errors(schema, document) == []


def test_no_types_means_the_literal_document() -> None:
    calls = _upserts("E", 2)
    assert render_batch(calls, types=None, name="SyncBatch") == (
        ops.render_document(calls, name="SyncBatch"),
        {},
    )


def test_argumentless_calls_and_bad_batches() -> None:
    types = argument_types()
    document, variables = render_batch([ops.Call("groups", {}, "id", "query")], types=types)
    assert (document, variables) == ("query { a0: groups { id } }", {})
    with pytest.raises(ValueError, match="no calls"):
        render_batch([], types=types)
    with pytest.raises(ValueError, match="mutations and queries"):
        render_batch([ops.get_user(ref="E1"), ops.create_group("G", "g")], types=types)


def test_every_builder_with_variables_is_valid(schema: GraphQLSchema) -> None:
    calls = [
        ops.upsert_user("E1", {"name": "A", "language": "EN", "roles": "OWNER"}, send_invite=True),
        ops.update_user(ref="E1", user={"archived": True}),
        ops.update_user(id="7f1c", user={"is_active": False}),
        ops.archive_users(["u1", "u2"], archive=False),
        ops.create_group("G1", "Sales"),
        ops.update_group("G1", name="Sales NL"),
        ops.add_users_to_group("G1", ["E1", "E2"]),
        ops.remove_users_from_group("G1", ["E1"], result_fields="refs"),
        ops.add_managers_to_group("G1", ["E1"]),
        ops.remove_managers_from_group("G1", ["E1"]),
        ops.set_extra_values("E1", [{"categoryRef": "dept", "stringValue": "Sales"}]),
    ]
    document, variables = render_batch(calls, types=argument_types(), name="SyncBatch")
    assert _errors(schema, document) == []
    declared = {
        part.split(":")[0].strip().lstrip("$")
        for part in document.split("(", 1)[1].split(")", 1)[0].split(",")
    }
    assert declared == set(variables)
    queries = [ops.get_user(ref="E1"), ops.get_user(email="a@x.nl")]
    document, variables = render_batch(queries, types=argument_types())
    assert _errors(schema, document) == []
    assert variables == {"a0_ref": "E1", "a1_email": "a@x.nl"}
