"""The Pluvo operations a sync needs, as plain data, and their rendering to GraphQL.

A `Call` is one root field of a mutation or query. The client aliases several calls
into one document (`a0: field(...) { ... } a1: ...`) so a batch costs one request.

Arguments travel as variables (`render_batch`): `a0: updateOrCreateUser(ref: $a0_ref,
user: $a0_user)` with the values in the request's `variables`. The document text then
depends only on the batch's shape (fields, argument names, selections), so every batch
of the same shape is the same text and Pluvo parses and validates it once, not once
per batch; that is most of a large run's server time. Declaring a variable needs its
type name (`UserInput!`), which comes from a schema (sync/pluvo/schema.py), never from
this module.

Literals remain for what has no known type (a field or argument the schema lacks) and
for `pluvo.inline_arguments`. A literal must be rendered safely: strings go through
JSON escaping (a subset of GraphQL string syntax), names are checked against the
GraphQL name grammar, and enum values are marked explicitly with `Enum` so a
user-supplied string can never become bare syntax. In variables an `Enum` is a plain
JSON string, which is how GraphQL variables carry enum values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from uuid import UUID

if TYPE_CHECKING:
    from sync.pluvo.schema import ArgumentTypes

_NAME = re.compile(r"^[_A-Za-z][_0-9A-Za-z]*$")

MembershipFields = Literal["ids", "refs"]

membership_result_fields: MembershipFields = "ids"
"""Which generation of the membership result fields builders select by default.

The newest docs return `addedIds alreadyAddedIds failedIds`; an older generation
returned `addedRefs ...`. `doctor` introspects the live schema and may switch this
(or the client's `membership_result_fields` setting) to "refs".
"""

USER_SELECTION = "id ref email name archived isActive roles language"
UPSERT_SELECTION = "created user { id ref email archived isActive }"
USER_PAYLOAD_SELECTION = "user { id ref email archived isActive }"
BULK_SELECTION = "response { succeededIds failedIds }"
GROUP_SELECTION = "group { id ref name }"
EXTRA_VALUES_SELECTION = "extraCategoryValues { __typename }"
EXTRA_CATEGORY_SELECTION = (
    "id ref title categoryType forModelTypes choiceOptions { id ref stringValue }"
)

_ADD_FIELDS: dict[MembershipFields, str] = {
    "ids": "addedIds alreadyAddedIds failedIds",
    "refs": "addedRefs alreadyAddedRefs failedRefs",
}
_REMOVE_FIELDS: dict[MembershipFields, str] = {
    "ids": "removedIds alreadyRemovedIds failedIds",
    "refs": "removedRefs alreadyRemovedRefs failedRefs",
}

# The desired-state model (sync/model.py) names user fields in snake_case; UserInput
# is camelCase. Unknown keys pass through, so callers may also use Pluvo's names.
_USER_KEYS = {
    "is_active": "isActive",
    "afas_employee_id": "afasEmployeeId",
    "afas_person_id": "afasPersonId",
}
_USER_BOOLEANS = frozenset({"isActive", "archived"})


class Enum(str):
    """A GraphQL enum value: rendered bare (`NL`), never quoted."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Enum({str.__repr__(self)})"


@dataclass(frozen=True)
class Call:
    """One root field of a GraphQL operation, with its arguments as Python values."""

    field: str
    args: Mapping[str, Any]
    selection: str
    operation: Literal["mutation", "query"] = "mutation"

    def render(self, alias: str | None = None) -> str:
        """`alias: field(arg: literal, ...) { selection }`."""
        head = f"{_name(alias)}: {_name(self.field)}" if alias else _name(self.field)
        if self.args:
            head += "(" + render_arguments(self.args) + ")"
        if self.selection.strip():
            head += " { " + self.selection.strip() + " }"
        return head


def render_document(calls: Sequence[Call], *, name: str | None = None) -> str:
    """One aliased document for calls of the same operation type, aliases a0..aN-1."""
    if not calls:
        raise ValueError("no calls to render")
    kinds = {c.operation for c in calls}
    if len(kinds) != 1:
        raise ValueError("mutations and queries cannot share one document")
    body = " ".join(call.render(alias_for(i)) for i, call in enumerate(calls))
    head = calls[0].operation + (f" {_name(name)}" if name else "")
    return f"{head} {{ {body} }}"


def render_batch(
    calls: Sequence[Call], *, types: ArgumentTypes | None, name: str | None = None
) -> tuple[str, dict[str, Any]]:
    """One aliased document and its variables; each call's arguments become variables.

    A call whose field or arguments `types` does not know (or every call, when `types`
    is None) is rendered with literals instead, so an unexpected schema degrades to
    the slower form rather than failing. Variables are named after the alias
    (`$a3_user`), so an error about a variable names its call.
    """
    if types is None:
        return render_document(calls, name=name), {}
    if not calls:
        raise ValueError("no calls to render")
    kinds = {c.operation for c in calls}
    if len(kinds) != 1:
        raise ValueError("mutations and queries cannot share one document")
    operation = calls[0].operation
    parts: list[str] = []
    declarations: list[str] = []
    variables: dict[str, Any] = {}
    for index, call in enumerate(calls):
        alias = alias_for(index)
        shape = _variable_shape(
            index, operation, call.field, tuple(call.args), call.selection, types
        )
        if shape is None:
            parts.append(call.render(alias))
            continue
        text, declared = shape
        parts.append(text)
        if declared:
            declarations.append(declared)
        for arg, value in call.args.items():
            variables[f"{alias}_{arg}"] = variable_value(value)
    head = operation + (f" {_name(name)}" if name else "")
    if declarations:
        head += "(" + ", ".join(declarations) + ")"
    return f"{head} {{ {' '.join(parts)} }}", variables


@lru_cache(maxsize=4096)
def _variable_shape(
    index: int,
    operation: Literal["mutation", "query"],
    field: str,
    args: tuple[str, ...],
    selection: str,
    types: ArgumentTypes,
) -> tuple[str, str] | None:
    """`(a0: field(x: $a0_x) { sel }, "$a0_x: T")`, or None when a type is unknown.

    Memoised: a run renders the same few shapes at the same few indexes thousands of
    times, and the schema lookups and name checks need not be repeated.
    """
    alias = alias_for(index)
    declared: list[str] = []
    passed: list[str] = []
    for arg in args:
        type_name = types.type_of(operation, field, arg)
        if type_name is None:
            return None
        variable = f"{alias}_{_name(arg)}"
        declared.append(f"${variable}: {type_name}")
        passed.append(f"{arg}: ${variable}")
    text = f"{alias}: {_name(field)}"
    if passed:
        text += "(" + ", ".join(passed) + ")"
    if selection.strip():
        text += " { " + selection.strip() + " }"
    return text, ", ".join(declared)


def variable_value(value: Any) -> Any:
    """A Python value in its JSON form for `variables`; unknown types are an error.

    Same refusals as literals (NaN, lone surrogates, non-name enums and keys), so
    a value that cannot be sent fails here, before any request, in either form.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, Enum):
        return str(_name(value))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("GraphQL has no value for NaN or infinity")
        return value
    if isinstance(value, str):
        _check_text(value)
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {_name(key): variable_value(item) for key, item in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [variable_value(item) for item in value]
    raise TypeError(f"cannot send a {type(value).__name__} as a GraphQL value")


def alias_for(index: int) -> str:
    return f"a{index}"


def index_of_alias(alias: object) -> int | None:
    """The call index an error's `path[0]` points at, or None if it is not ours."""
    if isinstance(alias, str) and alias.startswith("a") and alias[1:].isdigit():
        return int(alias[1:])
    return None


def render_arguments(args: Mapping[str, Any]) -> str:
    return ", ".join(f"{_name(key)}: {render_value(value)}" for key, value in args.items())


def render_value(value: Any) -> str:
    """A Python value as a GraphQL literal; unknown types are an error, not `str()`."""
    if value is None:
        return "null"
    if isinstance(value, Enum):
        return _name(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("GraphQL has no literal for NaN or infinity")
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, datetime | date):
        return _string(value.isoformat())
    if isinstance(value, UUID):
        return _string(str(value))
    if isinstance(value, Mapping):
        return "{" + render_arguments(value) + "}"
    if isinstance(value, Sequence | set | frozenset):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    raise TypeError(f"cannot render a {type(value).__name__} as a GraphQL literal")


def _string(value: str) -> str:
    # JSON string syntax is valid GraphQL string syntax; control characters are
    # escaped by json.dumps, and non-ASCII text is kept literal (GraphQL sources are
    # Unicode). Lone surrogates cannot be encoded as UTF-8 at all, so refuse them.
    _check_text(value)
    return json.dumps(value, ensure_ascii=False)


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string contains an unpaired surrogate") from None


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"not a GraphQL name: {value[:40]!r}")
    return value


# ---------------------------------------------------------------------------- builders


def user_input(user: Mapping[str, Any]) -> dict[str, Any]:
    """UserInput fields with roles and language marked as enums.

    Values may be the model's canonical strings: roles comma-joined ("MANAGER,TRAINER"),
    `is_active` and `archived` as "true"/"false". An empty language is dropped rather
    than sent as an invalid enum.
    """
    result: dict[str, Any] = {}
    for key, value in user.items():
        name = _USER_KEYS.get(key, key)
        if name == "roles" and value is not None:
            items = value.split(",") if isinstance(value, str) else list(value)
            result[name] = [Enum(str(r).strip()) for r in items if str(r).strip()]
        elif name == "language" and value is not None:
            if str(value).strip():
                result[name] = Enum(str(value).strip())
        elif name in _USER_BOOLEANS and isinstance(value, str):
            result[name] = value == "true"
        else:
            result[name] = value
    return result


def value_input(category_ref: str, category_type: str, value: str | None) -> dict[str, Any]:
    """A canonical extra value → ExtraCategoryValueInput; None clears the value."""
    item: dict[str, Any] = {"categoryRef": category_ref}
    if category_type == "datetime":
        if value is None:
            item["datetimeValue"] = None
        else:
            item["datetimeValue"] = value if "T" in value else f"{value}T00:00:00+00:00"
    elif category_type == "boolean":
        item["booleanValue"] = None if value is None else value == "true"
    elif category_type in ("choice", "multiselect"):
        options = [] if value is None else [v for v in value.split("\n") if v]
        item["choiceValues"] = [{"stringValue": v} for v in options]
    else:
        item["stringValue"] = "" if value is None else value
    return item


def upsert_user(ref: str, user: Mapping[str, Any], *, send_invite: bool) -> Call:
    """updateOrCreateUser by ref; sendInvite is always explicit (newer Pluvo invites by default)."""
    return Call(
        "updateOrCreateUser",
        {"ref": ref, "sendInvite": send_invite, "user": user_input(user)},
        UPSERT_SELECTION,
    )


def upsert_user_by_email(
    email: str, ref: str, user: Mapping[str, Any], *, send_invite: bool
) -> Call:
    """updateOrCreateUser selected by email, giving the user found our ref."""
    return Call(
        "updateOrCreateUser",
        {"email": email, "sendInvite": send_invite, "user": user_input({"ref": ref, **user})},
        UPSERT_SELECTION,
    )


def update_user(*, ref: str | None = None, id: str | None = None, user: Mapping[str, Any]) -> Call:
    return Call(
        "updateUser",
        {**_selector(ref=ref, id=id), "user": user_input(user)},
        USER_PAYLOAD_SELECTION,
    )


def archive_users(ids: Sequence[str], *, archive: bool = True) -> Call:
    """archiveUsers takes Pluvo ids only; `archive=False` restores."""
    return Call("archiveUsers", {"archive": archive, "ids": list(ids)}, BULK_SELECTION)


def create_group(ref: str, name: str) -> Call:
    return Call("createGroup", {"group": {"ref": ref, "name": name}}, GROUP_SELECTION)


def update_group(ref: str, *, name: str) -> Call:
    return Call("updateGroup", {"ref": ref, "group": {"name": name}}, GROUP_SELECTION)


def add_users_to_group(
    group_ref: str, user_refs: Sequence[str], *, result_fields: MembershipFields | None = None
) -> Call:
    fields = _ADD_FIELDS[result_fields or membership_result_fields]
    return Call("addUsersToGroup", {"groupRef": group_ref, "userRefs": list(user_refs)}, fields)


def remove_users_from_group(
    group_ref: str, user_refs: Sequence[str], *, result_fields: MembershipFields | None = None
) -> Call:
    fields = _REMOVE_FIELDS[result_fields or membership_result_fields]
    return Call(
        "removeUsersFromGroup", {"groupRef": group_ref, "userRefs": list(user_refs)}, fields
    )


def add_managers_to_group(group_ref: str, user_refs: Sequence[str]) -> Call:
    return Call(
        "addManagersToGroup", {"groupRef": group_ref, "userRefs": list(user_refs)}, BULK_SELECTION
    )


def remove_managers_from_group(group_ref: str, user_refs: Sequence[str]) -> Call:
    return Call(
        "removeManagersFromGroup",
        {"groupRef": group_ref, "userRefs": list(user_refs)},
        BULK_SELECTION,
    )


def set_extra_values(user_ref: str, values: Sequence[Mapping[str, Any]]) -> Call:
    """updateExtraCategoryValues for one user; only the values given are sent.

    Whether Pluvo clears values that are not passed is undocumented, so callers send
    what changed, never "the full set minus one".
    """
    return Call(
        "updateExtraCategoryValues",
        {"contentType": Enum("USER"), "modelRef": user_ref, "values": [dict(v) for v in values]},
        EXTRA_VALUES_SELECTION,
    )


def list_extra_categories(content_type: str = "USER") -> Call:
    """extraCategories: every category of a content type, with its type and options.

    A read (no write scope), and small: an organisation has tens of categories, which
    Pluvo returns as one list rather than a paginated connection.
    """
    return Call(
        "extraCategories",
        {"contentType": Enum(content_type)},
        EXTRA_CATEGORY_SELECTION,
        "query",
    )


def get_user(
    *,
    ref: str | None = None,
    email: str | None = None,
    id: str | None = None,
    selection: str = USER_SELECTION,
) -> Call:
    return Call("user", _selector(ref=ref, email=email, id=id), selection, "query")


def _selector(**candidates: str | None) -> dict[str, str]:
    given = {k: v for k, v in candidates.items() if v is not None}
    if len(given) != 1:
        raise ValueError(f"pass exactly one of {', '.join(candidates)}")
    return given
