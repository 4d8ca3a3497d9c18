"""Extra categories (custom fields): the seeded ones, typed values, merge vs replace."""

from __future__ import annotations

from typing import Any

import pytest

from sync.sandbox import SandboxServer
from tests.sandbox_fixture import SandboxHttp

UPDATE = """mutation($ref: String, $id: UUID, $values: [ExtraCategoryValueInput!]!) {
  updateExtraCategoryValues(contentType: USER, modelRef: $ref, modelId: $id, values: $values) {
    extraCategoryValues { __typename }
  }
}"""
READ = """query($ref: String) { user(ref: $ref) { extraCategoryValues {
  __typename
  ... on ExtraCategoryStringValue { category { ref } stringValue modelId }
  ... on ExtraCategoryDatetimeValue { category { ref } datetimeValue }
  ... on ExtraCategoryBooleanValue { category { ref } booleanValue }
  ... on ExtraCategoryChoiceValue { category { ref } choiceValue { stringValue } }
} } }"""


@pytest.fixture
def person(sandbox: SandboxServer) -> str:
    sandbox.control.seed(users=[{"ref": "E1", "name": "Eve", "email": "eve@acme.nl"}])
    return "E1"


def values(http: SandboxHttp, ref: str = "E1") -> dict[str, Any]:
    """category ref -> value, as a sync would read them back."""
    result: dict[str, Any] = {}
    for item in http.data(READ, {"ref": ref})["user"]["extraCategoryValues"]:
        category = item["category"]["ref"]
        kind = item["__typename"]
        if kind == "ExtraCategoryChoiceValue":
            result.setdefault(category, []).append(item["choiceValue"]["stringValue"])
        elif kind == "ExtraCategoryStringValue":
            result[category] = item["stringValue"]
        elif kind == "ExtraCategoryDatetimeValue":
            result[category] = item["datetimeValue"]
        else:
            result[category] = item["booleanValue"]
    return result


def update(
    http: SandboxHttp, *items: dict[str, Any], ref: str = "E1"
) -> tuple[int, dict[str, Any]]:
    return http.gql(UPDATE, {"ref": ref, "values": list(items)})


def test_seeded_categories(sandbox_http: SandboxHttp) -> None:
    categories = sandbox_http.data(
        "{ extraCategories(contentType: USER) { id ref title categoryType forModelTypes "
        "choiceOptions { id stringValue } } }"
    )["extraCategories"]
    kinds = {c["ref"]: c["categoryType"] for c in categories}
    assert kinds == {
        "department": "STRING",
        "job_title": "STRING",
        "start_date": "DATETIME",
        "is_external": "BOOLEAN",
        "location": "CHOICE",
        "skills": "MULTISELECT",
    }
    options = {c["ref"]: [o["stringValue"] for o in c["choiceOptions"] or []] for c in categories}
    assert options["location"] == ["Amsterdam", "Utrecht", "Rotterdam", "Eindhoven", "Groningen"]
    assert options["skills"] == ["Python", "SQL", "Excel", "Leadership", "Sales", "Design"]
    assert all(c["forModelTypes"] == ["USER"] for c in categories)
    assert sandbox_http.data("{ extraCategories(contentType: GROUP) { id } }") == {
        "extraCategories": []
    }


def test_each_type_round_trips(person: str, sandbox_http: SandboxHttp) -> None:
    status, body = update(
        sandbox_http,
        {"categoryRef": "department", "stringValue": "Finance"},
        {"categoryRef": "start_date", "datetimeValue": "2024-03-01T09:00:00Z"},
        {"categoryRef": "is_external", "booleanValue": False},
        {"categoryRef": "location", "choiceValues": [{"stringValue": "Utrecht"}]},
        {
            "categoryRef": "skills",
            "choiceValues": [{"stringValue": "SQL"}, {"stringValue": "Excel"}],
        },
    )
    assert status == 200
    assert "errors" not in body
    typenames = [
        v["__typename"] for v in body["data"]["updateExtraCategoryValues"]["extraCategoryValues"]
    ]
    assert typenames == [
        "ExtraCategoryStringValue",
        "ExtraCategoryDatetimeValue",
        "ExtraCategoryBooleanValue",
        "ExtraCategoryChoiceValue",
        "ExtraCategoryChoiceValue",
        "ExtraCategoryChoiceValue",
    ]
    assert values(sandbox_http) == {
        "department": "Finance",
        "start_date": "2024-03-01T09:00:00+00:00",
        "is_external": False,
        "location": ["Utrecht"],
        "skills": ["SQL", "Excel"],
    }


def test_by_category_id_and_model_id(
    sandbox: SandboxServer, person: str, sandbox_http: SandboxHttp
) -> None:
    state = sandbox.control.state()
    category = next(c for c in state["categories"] if c["ref"] == "job_title")
    user_id = state["users"][0]["id"]
    status, body = sandbox_http.gql(
        UPDATE, {"id": user_id, "values": [{"categoryId": category["id"], "stringValue": "Dev"}]}
    )
    assert status == 200, body
    assert values(sandbox_http) == {"job_title": "Dev"}
    option = next(c for c in state["categories"] if c["ref"] == "location")["choiceOptions"][4]
    update(
        sandbox_http,
        {
            "categoryRef": "location",
            "choiceValues": [{"ref": None, "stringValue": option["stringValue"]}],
        },
    )
    assert values(sandbox_http)["location"] == ["Groningen"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"categoryRef": "is_external", "stringValue": "yes"}, "is BOOLEAN: give booleanValue"),
        ({"categoryRef": "department", "booleanValue": True}, "is STRING: give stringValue"),
        (
            {"categoryRef": "location", "choiceValues": [{"stringValue": "Paris"}]},
            "unknown choice 'Paris'",
        ),
        (
            {
                "categoryRef": "location",
                "choiceValues": [{"stringValue": "Utrecht"}, {"stringValue": "Rotterdam"}],
            },
            "give one option",
        ),
        ({"categoryRef": "start_date", "datetimeValue": "next week"}, "invalid date-time"),
        ({"categoryRef": "no_such", "stringValue": "x"}, "unknown extra category"),
        ({"categoryRef": "department"}, "give one of"),
        ({"categoryRef": "department", "stringValue": "a", "booleanValue": True}, "only one value"),
    ],
)
def test_wrong_values_fail_on_their_path_and_change_nothing(
    person: str, sandbox_http: SandboxHttp, value: dict[str, Any], message: str
) -> None:
    update(sandbox_http, {"categoryRef": "job_title", "stringValue": "Before"})
    status, body = update(sandbox_http, {"categoryRef": "job_title", "stringValue": "After"}, value)
    assert status == 200
    assert body["data"] == {"updateExtraCategoryValues": None}
    [error] = body["errors"]
    assert error["path"] == ["updateExtraCategoryValues"]
    assert message in error["message"]
    assert "values[1]" in error["message"]
    assert values(sandbox_http) == {"job_title": "Before"}  # all or nothing


def test_unknown_model_is_not_found(sandbox_http: SandboxHttp) -> None:
    status, body = update(
        sandbox_http, {"categoryRef": "department", "stringValue": "x"}, ref="ghost"
    )
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "NotFound"


def test_values_not_passed_are_kept_by_default(person: str, sandbox_http: SandboxHttp) -> None:
    update(sandbox_http, {"categoryRef": "department", "stringValue": "HR"})
    update(sandbox_http, {"categoryRef": "job_title", "stringValue": "Lead"})
    assert values(sandbox_http) == {"department": "HR", "job_title": "Lead"}


def test_replace_mode_clears_values_not_passed(
    sandbox: SandboxServer, person: str, sandbox_http: SandboxHttp
) -> None:
    update(
        sandbox_http,
        {"categoryRef": "department", "stringValue": "HR"},
        {"categoryRef": "skills", "choiceValues": [{"stringValue": "Sales"}]},
    )
    assert sandbox.control.set_faults(extra_values_mode="replace")["extra_values_mode"] == "replace"
    update(sandbox_http, {"categoryRef": "job_title", "stringValue": "Lead"})
    assert values(sandbox_http) == {"job_title": "Lead"}


def test_empty_values_clear(person: str, sandbox_http: SandboxHttp) -> None:
    update(
        sandbox_http,
        {"categoryRef": "department", "stringValue": "HR"},
        {"categoryRef": "skills", "choiceValues": [{"stringValue": "Sales"}]},
        {"categoryRef": "is_external", "booleanValue": True},
    )
    update(
        sandbox_http,
        {"categoryRef": "department", "stringValue": ""},
        {"categoryRef": "skills", "choiceValues": []},
    )
    assert values(sandbox_http) == {"is_external": True}


def test_state_shows_readable_values(
    sandbox: SandboxServer, person: str, sandbox_http: SandboxHttp
) -> None:
    update(
        sandbox_http,
        {"categoryRef": "location", "choiceValues": [{"stringValue": "Eindhoven"}]},
        {
            "categoryRef": "skills",
            "choiceValues": [{"stringValue": "Design"}, {"stringValue": "Python"}],
        },
    )
    user = sandbox.control.user("E1")
    assert user is not None
    assert user["extra"] == {"location": "Eindhoven", "skills": ["Design", "Python"]}
