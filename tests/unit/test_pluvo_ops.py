"""Rendering of operations as GraphQL literals, checked by graphql-core against the schema."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    GraphQLSchema,
    ListValueNode,
    ObjectValueNode,
    StringValueNode,
    build_schema,
    parse,
    validate,
)
from hypothesis import given
from hypothesis import strategies as st

from sync.pluvo import ops
from sync.pluvo.ops import Call, Enum, render_document, render_value
from sync.pluvo.results import BulkResult, MembershipResult, UpsertResult

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "sync" / "pluvo" / "schema.graphql"


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema(SCHEMA_FILE.read_text(encoding="utf-8"))


def _errors(schema: GraphQLSchema, document: str) -> list[str]:
    return [e.message for e in validate(schema, parse(document))]


def test_scalars_and_enums_render_as_literals() -> None:
    assert render_value(None) == "null"
    assert render_value(True) == "true"
    assert render_value(False) == "false"
    assert render_value(42) == "42"
    assert render_value(1.5) == "1.5"
    assert render_value(Enum("NL")) == "NL"
    assert render_value("NL") == '"NL"'
    assert render_value(date(2024, 5, 1)) == '"2024-05-01"'
    assert render_value({"a": [1, Enum("X")], "b": None}) == "{a: [1, X], b: null}"


def test_strings_are_escaped() -> None:
    assert render_value('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (Enum("NL }"), ValueError),
        (Enum(""), ValueError),
        ({"bad key": 1}, ValueError),
        (float("nan"), ValueError),
        ("\ud800", ValueError),
        (object(), TypeError),
    ],
)
def test_unsafe_values_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        render_value(value)


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"])))
def test_any_text_round_trips_through_graphql_parser(text: str) -> None:
    document = parse("{ f(" + "x: " + render_value({"s": text, "l": [text]}) + ") }")
    field = document.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
    value = field.arguments[0].value
    assert isinstance(value, ObjectValueNode)
    string, listed = value.fields[0].value, value.fields[1].value
    assert isinstance(string, StringValueNode)
    assert string.value == text
    assert isinstance(listed, ListValueNode)
    assert listed.values[0].value == text  # type: ignore[attr-defined]


def test_user_input_marks_enums_and_maps_model_names() -> None:
    user = {"name": "Ann", "roles": "MANAGER,TRAINER", "language": "NL", "is_active": True}
    assert ops.user_input(user) == {
        "name": "Ann",
        "roles": [Enum("MANAGER"), Enum("TRAINER")],
        "language": Enum("NL"),
        "isActive": True,
    }
    assert ops.user_input({"roles": [], "language": ""}) == {"roles": []}


def test_user_input_reads_the_models_canonical_booleans() -> None:
    fields = {"is_active": "false", "archived": "true"}
    assert ops.user_input(fields) == {"isActive": False, "archived": True}


def test_upsert_renders_send_invite_explicitly() -> None:
    call = ops.upsert_user("E1", {"email": "a@x.nl", "roles": ["PARTICIPANT"]}, send_invite=False)
    assert call.render("a0") == (
        'a0: updateOrCreateUser(ref: "E1", sendInvite: false, '
        'user: {email: "a@x.nl", roles: [PARTICIPANT]}) '
        "{ created user { id ref email archived isActive } }"
    )


def test_every_builder_is_valid_against_the_schema(schema: GraphQLSchema) -> None:
    mutations = [
        ops.upsert_user("E1", {"name": "A", "language": "EN", "roles": "OWNER"}, send_invite=True),
        ops.update_user(ref="E1", user={"archived": True}),
        ops.update_user(id="7f1c", user={"is_active": False}),
        ops.archive_users(["u1", "u2"]),
        ops.archive_users(["u1"], archive=False),
        ops.create_group("G1", "Sales"),
        ops.update_group("G1", name="Sales NL"),
        ops.add_users_to_group("G1", ["E1", "E2"]),
        ops.add_users_to_group("G1", ["E1"], result_fields="refs"),
        ops.remove_users_from_group("G1", ["E1"]),
        ops.remove_users_from_group("G1", ["E1"], result_fields="refs"),
        ops.add_managers_to_group("G1", ["E1"]),
        ops.remove_managers_from_group("G1", ["E1"]),
        ops.set_extra_values(
            "E1",
            [
                {"categoryRef": "dept", "stringValue": "Sales"},
                {"categoryRef": "skills", "choiceValues": [{"stringValue": "SQL"}]},
            ],
        ),
    ]
    document = render_document(mutations, name="SyncBatch")
    assert _errors(schema, document) == []
    assert document.startswith("mutation SyncBatch { a0: updateOrCreateUser(")
    assert f"a{len(mutations) - 1}: updateExtraCategoryValues(contentType: USER," in document
    queries = [ops.get_user(ref="E1"), ops.get_user(email="a@x.nl")]
    assert _errors(schema, render_document(queries)) == []


def test_document_refuses_mixed_or_empty_batches() -> None:
    with pytest.raises(ValueError, match="mutations and queries"):
        render_document([ops.get_user(ref="E1"), ops.create_group("G", "g")])
    with pytest.raises(ValueError, match="no calls"):
        render_document([])


def test_selectors_need_exactly_one_key() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        ops.update_user(ref="E1", id="x", user={})
    with pytest.raises(ValueError, match="exactly one"):
        ops.get_user()


def test_alias_indexes_round_trip() -> None:
    assert [ops.index_of_alias(ops.alias_for(i)) for i in (0, 7, 123)] == [0, 7, 123]
    assert ops.index_of_alias("user") is None
    assert ops.index_of_alias(3) is None
    assert ops.index_of_alias("a") is None


def test_module_default_membership_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ops, "membership_result_fields", "refs")
    assert ops.add_users_to_group("G", ["E"]).selection == "addedRefs alreadyAddedRefs failedRefs"


def test_results_parse_both_membership_generations() -> None:
    new = MembershipResult.parse({"addedIds": ["1"], "alreadyAddedIds": ["2"], "failedIds": ["x"]})
    old = MembershipResult.parse(
        {"removedRefs": ["E1"], "alreadyRemovedRefs": [], "failedRefs": ["E9"]}
    )
    assert (new.changed, new.unchanged, new.failed) == (("1",), ("2",), ("x",))
    assert (old.changed, old.unchanged, old.failed) == (("E1",), (), ("E9",))
    bulk = BulkResult.parse({"response": {"succeededIds": ["a"], "failedIds": []}})
    assert bulk == BulkResult(succeeded=("a",), failed=())
    upsert = UpsertResult.parse({"created": True, "user": {"id": "u", "ref": "E1"}})
    assert upsert.created
    assert upsert.user.ref == "E1"


def test_call_without_args_or_selection() -> None:
    assert Call("groups", {}, "", "query").render() == "groups"
