"""The plan as data (sync/core/plan.py): its JSON form and the GraphQL call of each operation.

A saved plan file, the journal's payloads and `run` all rely on the JSON form reading
back as the very operations that were written, and on reading refusing anything it
does not know rather than guessing. Plans made by `diff()` over varied desired states
and stores are round-tripped through `json.dumps`/`json.loads`; each operation type is
round-tripped and its call checked field by field, and every call is checked to be a
document Pluvo's bundled schema accepts, with variables it can coerce.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from graphql import parse, validate
from graphql.execution.values import get_variable_values
from graphql.language import OperationDefinitionNode
from hypothesis import event, given, settings
from hypothesis import strategies as st

from sync.config import LeaverConfig
from sync.core.adopt import Match, adopt_in_plan
from sync.core.plan import (
    OPERATION_TYPES,
    AddManagers,
    AddMembers,
    AdoptUser,
    ArchiveUser,
    Change,
    CreateGroup,
    CreateUser,
    DeactivateUser,
    ExtraValue,
    Kind,
    LeaverFacts,
    Operation,
    Plan,
    RemoveManagers,
    RemoveMembers,
    RenameGroup,
    RestoreUser,
    SetExtraValues,
    UpdateUser,
    UserFields,
    _encode,
    operation_from_json,
)
from sync.model import USER_FIELDS
from sync.pluvo import ops
from sync.pluvo.schema import argument_types, bundled_schema
from tests.support.diffing import NOW, Person, Stored, desired_state, plan_for, state_view

FIELDS = UserFields(
    email="ann@example.com",
    name="Ann Émile",
    language="NL",
    roles="MANAGER,TRAINER",
    is_active="true",
)
UPSERT = ("email", "name", "language", "roles", "is_active")


def round_trip(plan: Plan) -> Plan:
    return Plan.from_json(json.loads(json.dumps(plan.to_json())))


# One of each operation type, with every optional field used somewhere.
EXAMPLES: list[Operation] = [
    CreateGroup(ref="G1", changes=(Change("name", "", "Sales"),), name="Sales"),
    RenameGroup(ref="G1", changes=(Change("name", "Sales", "Sales NL"),), name="Sales NL"),
    CreateUser(ref="E1", origin="hr.csv:2", fields=FIELDS, send=UPSERT),
    UpdateUser(
        ref="E1",
        changes=(Change("name", "Ann", "Ann Émile", "hr.csv:2"),),
        fields=FIELDS,
        send=("name",),
    ),
    RestoreUser(
        ref="E1",
        changes=(Change("archived", "true", "false"),),
        fields=FIELDS,
        send=("is_active",),
    ),
    AdoptUser(ref="E1", fields=FIELDS, send=UPSERT, matched_by="ref", pluvo_id="p-1"),
    AdoptUser(
        ref="E1", fields=FIELDS, send=UPSERT, matched_by="email", pluvo_id="p-1", unarchive=True
    ),
    SetExtraValues(
        ref="E1",
        changes=(Change("job_title", "Clerk", "Lead", "hr.csv:2"),),
        values=(
            ExtraValue("job_title", "string", "Lead"),
            ExtraValue("start_date", "datetime", "2024-05-01"),
            ExtraValue("location", "choice", "Utrecht\nParis"),
            ExtraValue("is_remote", "boolean", "true"),
            ExtraValue("department", "string", None),
        ),
    ),
    AddMembers(ref="G1", users=("E1", "E2")),
    RemoveMembers(ref="G1", users=("E3",)),
    AddManagers(ref="G1", users=("E1",)),
    RemoveManagers(ref="G1", users=("E2",)),
    ArchiveUser(ref="E4", method="bulk", pluvo_id="p-4", reason="gone from the sources"),
    ArchiveUser(ref="E4", method="bulk", pluvo_id=None, reason="end date passed"),
    ArchiveUser(ref="E4", method="update", reason="gone from the sources"),
    ArchiveUser(ref="E4"),
    DeactivateUser(ref="E5", changes=(Change("is_active", "true", "false"),), reason="left"),
    ArchiveUser(
        ref="E6", reason="left", who=LeaverFacts(name="Bo", groups=("G1", "G2"), missing_runs=2)
    ),
]


def test_the_examples_cover_every_operation_type() -> None:
    assert {type(op) for op in EXAMPLES} == set(OPERATION_TYPES.values())
    assert set(OPERATION_TYPES) == set(Kind)


@pytest.mark.parametrize("op", EXAMPLES, ids=lambda op: op.description)
def test_every_operation_round_trips(op: Operation) -> None:
    data = json.loads(json.dumps(op.to_json()))
    assert data["kind"] == op.kind
    assert data["description"] == op.description
    back = operation_from_json(data)
    assert back == op
    assert type(back) is type(op)
    assert back.to_json() == op.to_json()
    # The description is derived, never read back.
    assert operation_from_json({**data, "description": "edited by hand"}) == op


@pytest.mark.parametrize("op", EXAMPLES, ids=lambda op: op.description)
def test_an_operation_encodes_as_its_fields_walked_one_by_one(op: Operation) -> None:
    """The per-class encoders `to_json` uses give what walking each field's value at
    run time gives, key order included (the journal stores the text)."""
    walked = {
        "kind": str(op.kind),
        "ref": op.ref,
        "description": op.description,
        **{f.name: _encode(getattr(op, f.name)) for f in dataclasses.fields(op) if f.name != "ref"},
    }
    assert json.dumps(op.to_json()) == json.dumps(walked)


def test_derived_changes_follow_what_is_sent() -> None:
    create = CreateUser(ref="E1", origin="hr.csv:2", fields=FIELDS, send=UPSERT)
    assert create.changes == tuple(
        Change(f, "", getattr(FIELDS, f), "hr.csv:2") for f in USER_FIELDS if getattr(FIELDS, f)
    )
    assert AddManagers(ref="G1", users=("E1", "E2")).changes == (
        Change("manager", "", "E1"),
        Change("manager", "", "E2"),
    )
    assert RemoveMembers(ref="G1", users=("E3",)).changes == (Change("member", "E3", ""),)


def test_journal_entries_that_stored_derived_changes_still_read() -> None:
    """Journals, held changes and saved plans written when creations and group links
    stored their changes: read as the same operations, the creation's source line kept."""
    create = CreateUser(ref="E1", origin="hr.csv:2", fields=FIELDS, send=UPSERT)
    links = AddMembers(ref="G1", users=("E1", "E2"))
    for op in (create, links):
        stored = {**op.to_json(), "changes": [_encode(c) for c in op.changes]}
        stored.pop("origin", None)
        assert operation_from_json(stored) == op
    assert "changes" not in create.to_json()
    assert "changes" not in links.to_json()


def test_a_plan_with_everything_round_trips() -> None:
    plan = Plan(
        operations=tuple(EXAMPLES),
        state_users=7,
        desired_users=9,
        adopted=("E1",),
        verified_new=frozenset({"E2", "E3"}),
    )
    assert round_trip(plan) == plan
    assert round_trip(Plan()) == Plan()
    assert plan.to_json()["counts"] == plan.counts()


# ---------------------------------------------------------------- plans made by the diff

REFS = ("E1", "E2", "E3", "E4", "E5")
GROUPS = ("G1", "G2", "G3")


@st.composite
def persons(draw: st.DrawFn, refs: Sequence[str]) -> list[Person]:
    chosen = draw(st.lists(st.sampled_from(refs), unique=True, max_size=len(refs)))
    return [
        Person(
            ref,
            name=draw(st.sampled_from(["", 'Zoë "Z" O\'Neil', "Ann\nB"])),
            email=draw(st.sampled_from(["", f"{ref.lower()}@example.org"])),
            language=draw(st.sampled_from(["NL", "EN", ""])),
            roles=draw(st.sampled_from(["PARTICIPANT", "MANAGER,TRAINER", ""])),
            is_active=draw(st.sampled_from(["true", "false"])),
            groups=tuple(draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=2))),
            manages=tuple(draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=1))),
            extras=draw(
                st.dictionaries(
                    st.sampled_from(["job_title", "department"]),
                    st.sampled_from(["Lead", "Verkoop & Co", "日本"]),
                    max_size=2,
                )
            ),
        )
        for ref in chosen
    ]


@st.composite
def stores(draw: st.DrawFn) -> list[Stored]:
    return [
        Stored(
            person,
            missing_runs=draw(st.integers(0, 2)),
            missing_since=draw(st.sampled_from([None, NOW - timedelta(days=5)])),
            left_action=draw(st.sampled_from([None, None, "archive", "deactivate"])),
            id_known=draw(st.booleans()),
        )
        for person in draw(persons(REFS))
    ]


leaver_configs = st.builds(
    LeaverConfig,
    action=st.sampled_from(["archive", "deactivate", "ignore"]),
    archive_method=st.sampled_from(["upsert", "update", "bulk"]),
    grace_runs=st.integers(0, 1),
)


@settings(max_examples=40, deadline=None)
@given(
    wanted=persons(REFS),
    stored=stores(),
    leavers=leaver_configs,
    ended=st.lists(st.sampled_from(REFS), unique=True, max_size=2),
    adopt=st.lists(st.tuples(st.sampled_from(REFS), st.sampled_from(["ref", "email"]))),
)
def test_plans_made_by_the_diff_round_trip(
    wanted: list[Person],
    stored: list[Stored],
    leavers: LeaverConfig,
    ended: list[str],
    adopt: list[tuple[str, str]],
) -> None:
    desired = desired_state(*wanted, ended=[r for r in ended if r not in {p.ref for p in wanted}])
    plan = plan_for(desired, state_view(*stored), leavers)
    matches = {
        ref: Match(ref, how, f"pluvo-{ref}", None, archived=ref == "E1")  # type: ignore[arg-type]
        for ref, how in adopt
    }
    plan = adopt_in_plan(plan, matches)
    plan = replace(plan, verified_new=frozenset(ref for ref, _ in adopt[:1]))

    back = round_trip(plan)

    assert back == plan
    assert back.to_json() == plan.to_json()
    assert [type(op) for op in back] == [type(op) for op in plan]
    for op in plan:
        event(op.kind)


# ---------------------------------------------------------------- reading refuses


def _json(op: Operation) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(op.to_json()))
    return data


ARCHIVE = ArchiveUser(ref="E4", method="bulk", pluvo_id="p-4", reason="left")
ADOPT = AdoptUser(ref="E1", fields=FIELDS, send=UPSERT, matched_by="email", pluvo_id="p-1")
MEMBERS = AddMembers(ref="G1", users=("E1", "E2"))

REFUSED = [
    ("unknown kind", {**_json(ARCHIVE), "kind": "delete_user"}, ValueError),
    ("unknown field", {**_json(ARCHIVE), "hard": True}, ValueError),
    ("field of another type", {**_json(MEMBERS), "method": "bulk"}, ValueError),
    (
        "unknown nested field",
        {**_json(ADOPT), "fields": {**_json(ADOPT)["fields"], "phone": "06"}},
        ValueError,
    ),
    (
        "unknown field of a value",
        {
            **_json(EXAMPLES[7]),
            "values": [{"category_ref": "a", "category_type": "string", "value": "x", "x": 1}],
        },
        ValueError,
    ),
    ("bad archive method", {**_json(ARCHIVE), "method": "delete"}, ValueError),
    ("bad match", {**_json(ADOPT), "matched_by": "name"}, ValueError),
    ("number for a ref", {**_json(ARCHIVE), "ref": 4}, ValueError),
    ("string for a flag", {**_json(ADOPT), "unarchive": "false"}, ValueError),
    ("number for a user", {**_json(MEMBERS), "users": ["E1", 2]}, ValueError),
    # Not its characters (users E, 1, 2) or its keys: a list is required.
    ("one ref for a list of refs", {**_json(MEMBERS), "users": "E12"}, ValueError),
    ("an object for a list", {**_json(MEMBERS), "users": {"E1": True}}, ValueError),
    ("a list for an object", {**_json(ADOPT), "fields": list(UPSERT)}, ValueError),
    ("null for a name", {**_json(EXAMPLES[0]), "name": None}, ValueError),
    ("missing kind", {k: v for k, v in _json(ARCHIVE).items() if k != "kind"}, KeyError),
    ("missing field", {k: v for k, v in _json(ADOPT).items() if k != "pluvo_id"}, TypeError),
]


@pytest.mark.parametrize(
    ("data", "error"), [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED]
)
def test_reading_refuses_what_it_does_not_know(
    data: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        operation_from_json(data)


def test_a_plan_with_one_bad_operation_is_refused() -> None:
    data = json.loads(json.dumps(Plan(operations=(ARCHIVE, MEMBERS)).to_json()))
    data["operations"][1]["users"] = [None]
    with pytest.raises(ValueError, match="not a str"):
        Plan.from_json(data)


# ---------------------------------------------------------------- the call of each type


def test_create_and_rename_group() -> None:
    create, rename = EXAMPLES[0].to_call(send_invite=True), EXAMPLES[1].to_call(send_invite=True)
    assert (create.field, dict(create.args)) == (
        "createGroup",
        {"group": {"ref": "G1", "name": "Sales"}},
    )
    assert (rename.field, dict(rename.args)) == (
        "updateGroup",
        {"ref": "G1", "group": {"name": "Sales NL"}},
    )


def test_user_upserts_send_only_their_fields_and_the_invite_flag() -> None:
    created = CreateUser(ref="E1", fields=FIELDS, send=UPSERT).to_call(send_invite=True)
    assert created.field == "updateOrCreateUser"
    assert dict(created.args) == {
        "ref": "E1",
        "sendInvite": True,
        "user": {
            "email": "ann@example.com",
            "name": "Ann Émile",
            "language": "NL",
            "roles": ["MANAGER", "TRAINER"],
            "isActive": True,
        },
    }
    assert created.args["user"]["language"] == ops.Enum("NL")
    updated = EXAMPLES[3].to_call(send_invite=False)
    assert dict(updated.args) == {"ref": "E1", "sendInvite": False, "user": {"name": "Ann Émile"}}
    inactive = replace(FIELDS, is_active="false")
    call = UpdateUser(ref="E1", fields=inactive, send=("is_active",)).to_call(send_invite=False)
    assert call.args["user"] == {"isActive": False}


def test_restore_unarchives_and_reactivates() -> None:
    call = EXAMPLES[4].to_call(send_invite=False)
    assert call.field == "updateOrCreateUser"
    assert dict(call.args) == {
        "ref": "E1",
        "sendInvite": False,
        "user": {"isActive": True, "archived": False},
    }


def test_adopt_by_ref_is_an_upsert_by_ref() -> None:
    by_ref = EXAMPLES[5]
    create = CreateUser(ref="E1", fields=FIELDS, send=UPSERT)
    assert by_ref.to_call(send_invite=False) == create.to_call(send_invite=False)
    archived = replace(by_ref, unarchive=True).to_call(send_invite=False)
    assert archived.args["user"]["archived"] is False


def test_adopt_by_email_selects_by_email_and_gives_our_ref() -> None:
    call = EXAMPLES[6].to_call(send_invite=False)
    assert call.field == "updateOrCreateUser"
    assert "ref" not in call.args
    assert call.args["email"] == "ann@example.com"
    assert call.args["sendInvite"] is False
    assert call.args["user"]["ref"] == "E1"
    assert call.args["user"]["archived"] is False  # the match was archived
    assert call.args["user"]["roles"] == ["MANAGER", "TRAINER"]
    assert call.selection == ops.UPSERT_SELECTION
    plain = replace(EXAMPLES[6], unarchive=False).to_call(send_invite=True)
    assert "archived" not in plain.args["user"]
    assert plain.args["sendInvite"] is True


def test_extra_values_by_category_type() -> None:
    call = EXAMPLES[7].to_call(send_invite=False)
    assert call.field == "updateExtraCategoryValues"
    assert (call.args["contentType"], call.args["modelRef"]) == ("USER", "E1")
    assert call.args["values"] == [
        {"categoryRef": "job_title", "stringValue": "Lead"},
        {"categoryRef": "start_date", "datetimeValue": "2024-05-01T00:00:00+00:00"},
        {
            "categoryRef": "location",
            "choiceValues": [{"stringValue": "Utrecht"}, {"stringValue": "Paris"}],
        },
        {"categoryRef": "is_remote", "booleanValue": True},
        {"categoryRef": "department", "stringValue": ""},
    ]
    cleared = SetExtraValues(
        ref="E1",
        values=(
            ExtraValue("start_date", "datetime", None),
            ExtraValue("is_remote", "boolean", None),
            ExtraValue("location", "multiselect", None),
            ExtraValue("start_date", "datetime", "2024-05-01T08:30:00+02:00"),
        ),
    ).to_call(send_invite=False)
    assert cleared.args["values"] == [
        {"categoryRef": "start_date", "datetimeValue": None},
        {"categoryRef": "is_remote", "booleanValue": None},
        {"categoryRef": "location", "choiceValues": []},
        {"categoryRef": "start_date", "datetimeValue": "2024-05-01T08:30:00+02:00"},
    ]


@pytest.mark.parametrize(
    ("op", "field"),
    [
        (EXAMPLES[8], "addUsersToGroup"),
        (EXAMPLES[9], "removeUsersFromGroup"),
        (EXAMPLES[10], "addManagersToGroup"),
        (EXAMPLES[11], "removeManagersFromGroup"),
    ],
    ids=lambda v: v if isinstance(v, str) else v.kind,
)
def test_group_links(op: Operation, field: str) -> None:
    ids = op.to_call(send_invite=False, membership_fields="ids")
    refs = op.to_call(send_invite=False, membership_fields="refs")
    assert ids.field == refs.field == field
    assert dict(ids.args) == {"groupRef": "G1", "userRefs": list(op.users)}  # type: ignore[attr-defined]
    if field.endswith("UsersToGroup") or field.endswith("UsersFromGroup"):
        assert "failedIds" in ids.selection
        assert "failedRefs" in refs.selection
    else:
        assert ids.selection == refs.selection == ops.BULK_SELECTION


@pytest.mark.parametrize(
    ("op", "field", "args"),
    [
        (EXAMPLES[12], "archiveUsers", {"archive": True, "ids": ["p-4"]}),
        (
            EXAMPLES[13],  # bulk, but no Pluvo id known: archived by ref instead
            "updateOrCreateUser",
            {"ref": "E4", "sendInvite": False, "user": {"archived": True}},
        ),
        (EXAMPLES[14], "updateUser", {"ref": "E4", "user": {"archived": True}}),
        (
            EXAMPLES[15],
            "updateOrCreateUser",
            {"ref": "E4", "sendInvite": False, "user": {"archived": True}},
        ),
        (
            EXAMPLES[16],
            "updateOrCreateUser",
            {"ref": "E5", "sendInvite": False, "user": {"isActive": False}},
        ),
    ],
    ids=["bulk", "bulk-without-id", "update", "upsert", "deactivate"],
)
def test_leavers(op: Operation, field: str, args: dict[str, Any]) -> None:
    call = op.to_call(send_invite=True)  # a leaver is never invited
    assert (call.field, dict(call.args)) == (field, args)


@pytest.mark.parametrize("fields", ["ids", "refs"])
def test_every_call_is_a_document_pluvos_schema_accepts(fields: ops.MembershipFields) -> None:
    schema, types = bundled_schema(), argument_types()
    for op in EXAMPLES:
        call = op.to_call(send_invite=False, membership_fields=fields)
        document, variables = ops.render_batch([call], types=types)
        parsed = parse(document)
        assert validate(schema, parsed) == [], op.description
        (operation,) = [d for d in parsed.definitions if isinstance(d, OperationDefinitionNode)]
        coerced = get_variable_values(schema, operation.variable_definitions, variables)
        assert not isinstance(coerced, list), f"{op.description}: {coerced}"


def test_operations_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        EXAMPLES[0].ref = "G2"  # type: ignore[misc]
