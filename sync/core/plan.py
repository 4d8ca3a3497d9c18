"""The plan is data: small frozen operations that the dry run prints and the run executes.

Each operation knows its kind, the ref it concerns, a human description, the
field-level changes (old → new, with the source line the new value came from) and
the data the executor needs. The GraphQL call is derived from it in one place
(`to_call`), so what `plan` shows is exactly what `run` sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sync.pluvo import ops as calls
from sync.pluvo.ops import Call


class Kind(StrEnum):
    CREATE_GROUP = "create_group"
    UPDATE_GROUP = "update_group"
    CREATE_USER = "create_user"
    ADOPT_USER = "adopt_user"
    UPDATE_USER = "update_user"
    RESTORE_USER = "restore_user"
    SET_VALUES = "set_extra_values"
    REMOVE_MEMBERS = "remove_members"
    ADD_MEMBERS = "add_members"
    REMOVE_MANAGERS = "remove_managers"
    ADD_MANAGERS = "add_managers"
    ARCHIVE_USER = "archive_user"
    DEACTIVATE_USER = "deactivate_user"


# Dependency order: a group must exist before members join it, a user before its
# values and memberships; leavers go last so a failed earlier phase never leaves a
# half-moved person archived.
PHASES: dict[Kind, int] = {
    Kind.CREATE_GROUP: 0,
    Kind.UPDATE_GROUP: 0,
    Kind.CREATE_USER: 1,
    Kind.ADOPT_USER: 1,
    Kind.UPDATE_USER: 1,
    Kind.RESTORE_USER: 1,
    Kind.SET_VALUES: 2,
    Kind.REMOVE_MEMBERS: 3,
    Kind.ADD_MEMBERS: 3,
    Kind.REMOVE_MANAGERS: 4,
    Kind.ADD_MANAGERS: 4,
    Kind.ARCHIVE_USER: 5,
    Kind.DEACTIVATE_USER: 5,
}
PHASE_NAMES = ("groups", "users", "extra values", "memberships", "managers", "leavers")
LEAVER_KINDS = frozenset({Kind.ARCHIVE_USER, Kind.DEACTIVATE_USER})
USER_UPSERTS = frozenset({Kind.CREATE_USER, Kind.ADOPT_USER, Kind.UPDATE_USER, Kind.RESTORE_USER})

USER_INPUT_NAMES = {
    "email": "email",
    "name": "name",
    "language": "language",
    "roles": "roles",
    "is_active": "isActive",
}


@dataclass(frozen=True)
class Change:
    field: str
    old: str
    new: str
    origin: str = ""


@dataclass(frozen=True)
class Operation:
    kind: Kind
    ref: str
    description: str
    changes: tuple[Change, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def phase(self) -> int:
        return PHASES[self.kind]

    def to_call(self, *, send_invite: bool, membership_fields: str = "ids") -> Call:
        """The one GraphQL call this operation sends."""
        kind, data = self.kind, self.data
        if kind is Kind.ADOPT_USER and data.get("match") == "email":
            # The Pluvo user has no ref yet: select it by email and give it ours.
            user = {"ref": self.ref, **user_input(data["send"])}
            return Call(
                "updateOrCreateUser",
                {
                    "email": data["match_email"],
                    "sendInvite": send_invite,
                    "user": calls.user_input(user),
                },
                calls.UPSERT_SELECTION,
            )
        if kind in USER_UPSERTS:
            return calls.upsert_user(self.ref, user_input(data["send"]), send_invite=send_invite)
        if kind is Kind.ARCHIVE_USER:
            method = data.get("method", "upsert")
            if method == "bulk" and data.get("pluvo_id"):
                return calls.archive_users([data["pluvo_id"]], archive=True)
            if method == "update":
                return calls.update_user(ref=self.ref, user={"archived": True})
            return calls.upsert_user(self.ref, {"archived": True}, send_invite=False)
        if kind is Kind.DEACTIVATE_USER:
            return calls.upsert_user(self.ref, {"isActive": False}, send_invite=False)
        if kind is Kind.CREATE_GROUP:
            return calls.create_group(self.ref, data["name"])
        if kind is Kind.UPDATE_GROUP:
            return calls.update_group(self.ref, name=data["name"])
        if kind is Kind.SET_VALUES:
            return calls.set_extra_values(self.ref, [value_input(*v) for v in data["values"]])
        users = list(data["users"])
        builder = {
            Kind.ADD_MEMBERS: calls.add_users_to_group,
            Kind.REMOVE_MEMBERS: calls.remove_users_from_group,
            Kind.ADD_MANAGERS: calls.add_managers_to_group,
            Kind.REMOVE_MANAGERS: calls.remove_managers_from_group,
        }[kind]
        if kind in (Kind.ADD_MEMBERS, Kind.REMOVE_MEMBERS):
            return builder(self.ref, users, result_fields=membership_fields)  # type: ignore[call-arg]
        return builder(self.ref, users)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": str(self.kind),
            "ref": self.ref,
            "description": self.description,
        }
        if self.changes:
            out["changes"] = [
                {"field": c.field, "old": c.old, "new": c.new, "origin": c.origin}
                for c in self.changes
            ]
        out["data"] = _jsonable(self.data)
        return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def user_input(fields: Mapping[str, str]) -> dict[str, Any]:
    """Canonical string fields → Pluvo's UserInput values."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        name = USER_INPUT_NAMES.get(key, key)
        if key == "roles":
            out[name] = [r for r in value.split(",") if r]
        elif key == "is_active" or key == "archived":
            out[name] = value == "true"
        else:
            out[name] = value
    return out


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


@dataclass
class Plan:
    operations: list[Operation] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    verified_new: set[str] = field(default_factory=set)
    """Refs Pluvo was checked not to have before this plan: whatever a retried upsert
    answers later (`created: false` after a lost answer), the engine made them."""
    notes: list[str] = field(default_factory=list)
    state_users: int = 0
    desired_users: int = 0

    def __iter__(self) -> Iterator[Operation]:
        return iter(self.operations)

    def __len__(self) -> int:
        return len(self.operations)

    def counts(self) -> dict[str, int]:
        counter = Counter(str(op.kind) for op in self.operations)
        return {str(k): counter[str(k)] for k in Kind if counter[str(k)]}

    def by_phase(self) -> list[tuple[int, list[Operation]]]:
        phases: dict[int, list[Operation]] = {}
        for op in self.operations:
            phases.setdefault(op.phase, []).append(op)
        return sorted(phases.items())

    def leavers(self) -> Sequence[Operation]:
        return [op for op in self.operations if op.kind in LEAVER_KINDS]

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "adopted": list(self.adopted),
            "operations": [op.to_json() for op in self.operations],
            "notes": list(self.notes),
        }
