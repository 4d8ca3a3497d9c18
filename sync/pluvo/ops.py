"""The Pluvo operations a sync needs, as plain data, and their rendering to GraphQL.

Arguments are rendered as GraphQL *literals* inline rather than as variables. Variables
would force every document to declare input type names (`UserInput!`,
`ExtraCategoryValueInput!`...), and those names are one of the open questions about
live Pluvo (three documentation generations disagree). Literals need only field and
argument names, which the sandbox schema and the docs agree on. The price is that a
value must be rendered safely: strings go through JSON escaping (a subset of GraphQL
string syntax), names are checked against the GraphQL name grammar, and enum values
are marked explicitly with `Enum` so a user-supplied string can never become bare
syntax.

A `Call` is one root field of a mutation or query. The client aliases several calls
into one document (`a0: field(...) { ... } a1: ...`) so a batch costs one request.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

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
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string contains an unpaired surrogate") from None
    return json.dumps(value, ensure_ascii=False)


def _name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"not a GraphQL name: {value[:40]!r}")
    return value


# ---------------------------------------------------------------------------- builders


def user_input(user: Mapping[str, Any]) -> dict[str, Any]:
    """UserInput fields with roles and language marked as enums.

    Roles may be a list or the model's canonical comma-joined string ("MANAGER,TRAINER").
    An empty language is dropped rather than sent as an invalid enum.
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
        else:
            result[name] = value
    return result


def upsert_user(ref: str, user: Mapping[str, Any], *, send_invite: bool) -> Call:
    """updateOrCreateUser by ref; sendInvite is always explicit (newer Pluvo invites by default)."""
    return Call(
        "updateOrCreateUser",
        {"ref": ref, "sendInvite": send_invite, "user": user_input(user)},
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
