"""The plan is data: small frozen operations that the dry run prints and the run executes.

One frozen dataclass per kind of operation, every field typed, so what `plan` shows,
what the journal stores, what a saved plan file holds and what `run` sends are the
same object seen four ways. Each operation knows the ref it concerns, its field-level
changes (old → new, with the source line the new value came from), a description for
people, and the one GraphQL call it sends (`to_call`, defined per type). The JSON form
is derived from the same field definitions, and read back by `operation_from_json`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from operator import attrgetter
from typing import Any, ClassVar, Literal

from sync.model import USER_FIELDS
from sync.pluvo import ops as calls
from sync.pluvo.ops import Call, MembershipFields
from sync.state.held import HoldKey


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
REMOVAL_KINDS = frozenset({Kind.REMOVE_MEMBERS, Kind.REMOVE_MANAGERS})
USER_UPSERTS = frozenset({Kind.CREATE_USER, Kind.ADOPT_USER, Kind.UPDATE_USER, Kind.RESTORE_USER})

ArchiveMethod = Literal["upsert", "update", "bulk"]
MatchedBy = Literal["ref", "email"]


@dataclass(frozen=True, slots=True)
class Change:
    field: str
    old: str
    new: str
    origin: str = ""


@dataclass(frozen=True, slots=True)
class UserFields:
    """A user's canonical fields (sync.model), as HR gives them and the store records them."""

    email: str
    name: str
    language: str
    roles: str
    is_active: str

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> UserFields:
        return cls(**{f: str(row[f]) for f in USER_FIELDS})

    def as_dict(self) -> dict[str, str]:
        return {f: getattr(self, f) for f in USER_FIELDS}


@dataclass(frozen=True, slots=True)
class ExtraValue:
    """One extra-category value to set; `value` None clears it."""

    category_ref: str
    category_type: str
    value: str | None

    def to_input(self) -> dict[str, Any]:
        return calls.value_input(self.category_ref, self.category_type, self.value)


@dataclass(frozen=True, kw_only=True, slots=True)
class Operation:
    """Base of every operation: the ref it concerns and its field-level changes."""

    kind: ClassVar[Kind]
    ref: str

    @property
    def changes(self) -> tuple[Change, ...]:
        """Its field-level changes, for the people reading the plan. Most kinds carry
        them as given by the diff (a `changes` field); a creation's and a group link's
        follow from what they send, so they are derived rather than stored in the plan,
        the journal and the report a second time (at a million people, tens of millions
        of objects and gigabytes of JSON)."""
        return ()

    @property
    def phase(self) -> int:
        return PHASES[self.kind]

    @property
    def description(self) -> str:
        raise NotImplementedError

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        """The one GraphQL call this operation sends."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": str(self.kind),
            "ref": self.ref,
            "description": self.description,
        }
        out.update(_encoder(type(self))(self))
        return out


# ------------------------------------------------------------------ groups


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateGroup(Operation):
    kind = Kind.CREATE_GROUP
    name: str
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"create group {self.ref} ({self.name})"

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.create_group(self.ref, self.name)


@dataclass(frozen=True, kw_only=True, slots=True)
class RenameGroup(Operation):
    kind = Kind.UPDATE_GROUP
    name: str
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"rename group {self.ref}"

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.update_group(self.ref, name=self.name)


# ------------------------------------------------------------------ users


@dataclass(frozen=True, kw_only=True, slots=True)
class UserUpsert(Operation):
    """An `updateOrCreateUser` by ref. `fields` is everything HR says (what the store
    records once Pluvo acknowledges it); `send` names the fields that go out (an empty
    language or role list is not managed by the mapping and is not sent)."""

    fields: UserFields
    send: tuple[str, ...]

    def user_input(self) -> dict[str, Any]:
        return calls.user_input({f: getattr(self.fields, f) for f in self.send})

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.upsert_user(self.ref, self.user_input(), send_invite=send_invite)


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateUser(UserUpsert):
    kind = Kind.CREATE_USER
    origin: str = ""
    """The source line it comes from (`file:line`)."""

    @property
    def changes(self) -> tuple[Change, ...]:
        fields = self.fields
        return tuple(
            Change(f, "", value, self.origin) for f in USER_FIELDS if (value := getattr(fields, f))
        )

    @property
    def description(self) -> str:
        return f"create user {self.ref} <{self.fields.email}>"


@dataclass(frozen=True, kw_only=True, slots=True)
class UpdateUser(UserUpsert):
    kind = Kind.UPDATE_USER
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"update user {self.ref}: " + ", ".join(c.field for c in self.changes)


@dataclass(frozen=True, kw_only=True, slots=True)
class RestoreUser(UserUpsert):
    """A leaver back in the sources: unarchived (and its fields brought up to date)."""

    kind = Kind.RESTORE_USER
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"restore returning user {self.ref}"

    def user_input(self) -> dict[str, Any]:
        return {**UserUpsert.user_input(self), "archived": False}


@dataclass(frozen=True, kw_only=True, slots=True)
class AdoptUser(UserUpsert):
    """A creation that found the user already in Pluvo: an upsert that takes it over.

    Matched by email, the Pluvo user has no ref yet, so it is selected by email and
    given ours; an archived match is unarchived.
    """

    kind = Kind.ADOPT_USER
    matched_by: MatchedBy
    pluvo_id: str
    unarchive: bool = False
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"adopt existing Pluvo user {self.ref} (matched by {self.matched_by})"

    def user_input(self) -> dict[str, Any]:
        out = UserUpsert.user_input(self)
        return {**out, "archived": False} if self.unarchive else out

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        if self.matched_by == "ref":
            return UserUpsert.to_call(self, send_invite=send_invite)
        return calls.upsert_user_by_email(
            self.fields.email, self.ref, self.user_input(), send_invite=send_invite
        )


# ------------------------------------------------------------------ extra values


@dataclass(frozen=True, kw_only=True, slots=True)
class SetExtraValues(Operation):
    kind = Kind.SET_VALUES
    values: tuple[ExtraValue, ...]
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"set {len(self.values)} extra value(s) of {self.ref}"

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.set_extra_values(self.ref, [v.to_input() for v in self.values])


# ------------------------------------------------------------------ memberships and managers


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupLinks(Operation):
    """Users added to or removed from one group (`ref`), as members or managers."""

    users: tuple[str, ...]
    group_name: str = ""
    """For removals, the group's name as last applied (for people reading the plan: a
    group HR no longer names has no other name left)."""
    noun: ClassVar[str] = "member"
    adds: ClassVar[bool] = True

    @property
    def changes(self) -> tuple[Change, ...]:
        noun = self.noun
        if self.adds:
            return tuple(Change(noun, "", user) for user in self.users)
        return tuple(Change(noun, user, "") for user in self.users)

    @property
    def description(self) -> str:
        verb, where = ("add", "to") if self.adds else ("remove", "from")
        return f"{verb} {len(self.users)} {self.noun}(s) {where} group {self.ref}"


@dataclass(frozen=True, kw_only=True, slots=True)
class AddMembers(GroupLinks):
    kind = Kind.ADD_MEMBERS

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.add_users_to_group(self.ref, list(self.users), result_fields=membership_fields)


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoveMembers(GroupLinks):
    kind = Kind.REMOVE_MEMBERS
    adds = False

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.remove_users_from_group(
            self.ref, list(self.users), result_fields=membership_fields
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class AddManagers(GroupLinks):
    kind = Kind.ADD_MANAGERS
    noun = "manager"

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.add_managers_to_group(self.ref, list(self.users))


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoveManagers(GroupLinks):
    kind = Kind.REMOVE_MANAGERS
    noun = "manager"
    adds = False

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.remove_managers_from_group(self.ref, list(self.users))


# ------------------------------------------------------------------ leavers


@dataclass(frozen=True, slots=True)
class LeaverFacts:
    """What the person signing a plan off needs about a leaver, from the state store:
    who it is (as last applied), the groups it is in, and why it leaves now.

    `since`: the day it was first missed (gone from the sources) or its end date;
    `missing_runs`: runs it has been missing, this one included; `grace`: the grace
    that passed before acting ("" when none was configured or the end date decides).
    """

    name: str = ""
    email: str = ""
    groups: tuple[str, ...] = ()
    since: str = ""
    missing_runs: int = 0
    grace: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class ArchiveUser(Operation):
    kind = Kind.ARCHIVE_USER
    method: ArchiveMethod = "upsert"
    pluvo_id: str | None = None
    reason: str = ""
    who: LeaverFacts | None = None
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"archive leaver {self.ref} ({self.reason})"

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        if self.method == "bulk" and self.pluvo_id:
            return calls.archive_users([self.pluvo_id], archive=True)
        if self.method == "update":
            return calls.update_user(ref=self.ref, user={"archived": True})
        return calls.upsert_user(self.ref, {"archived": True}, send_invite=False)


@dataclass(frozen=True, kw_only=True, slots=True)
class DeactivateUser(Operation):
    kind = Kind.DEACTIVATE_USER
    reason: str = ""
    who: LeaverFacts | None = None
    changes: tuple[Change, ...] = ()

    @property
    def description(self) -> str:
        return f"deactivate leaver {self.ref} ({self.reason})"

    def to_call(self, *, send_invite: bool, membership_fields: MembershipFields = "ids") -> Call:
        return calls.upsert_user(self.ref, {"isActive": False}, send_invite=False)


OPERATION_TYPES: dict[Kind, type[Operation]] = {
    cls.kind: cls
    for cls in (
        CreateGroup,
        RenameGroup,
        CreateUser,
        AdoptUser,
        UpdateUser,
        RestoreUser,
        SetExtraValues,
        RemoveMembers,
        AddMembers,
        RemoveManagers,
        AddManagers,
        ArchiveUser,
        DeactivateUser,
    )
}


# ------------------------------------------------------------------ risk and holding

RiskClass = Literal["leavers", "removals", "overwrites"]
HOLD_CLASSES: tuple[RiskClass, ...] = ("leavers", "removals", "overwrites")

# HoldKey (kind, person ref, group ref or ""): one held change of one person, so that
# holds, releases and discards are per person even where the plan lists a group's
# members in one operation.


def overwrites(op: Operation) -> bool:
    """Does the operation change data the engine applied before?

    Creating joiners, or completing what a failed or killed run left undone (values
    never set), endangers nobody; overwriting what people already have in Pluvo is
    what a wrong mapping or a garbled export does.
    """
    if op.kind in (Kind.UPDATE_USER, Kind.RESTORE_USER):
        return True
    if isinstance(op, SetExtraValues):
        return any(change.old for change in op.changes)
    return False


def risk_class(op: Operation) -> RiskClass | None:
    """The class of risk the operation carries (None: safe to apply unreviewed)."""
    if op.kind in LEAVER_KINDS:
        return "leavers"
    if op.kind in REMOVAL_KINDS:
        return "removals"
    if overwrites(op):
        return "overwrites"
    return None


def with_users(op: GroupLinks, users: tuple[str, ...]) -> GroupLinks:
    """The group-links operation for `users` only (its field changes follow)."""
    return dataclasses.replace(op, users=users)


def per_person(op: Operation) -> list[tuple[HoldKey, Operation]]:
    """The operation cut into one part per person it concerns, each with its key.

    A leaver's key is the same whether it is archived or deactivated: switching
    `leavers.action` re-plans a held leaver, it does not let it through unheld."""
    if isinstance(op, GroupLinks):
        return [((str(op.kind), user, op.ref), with_users(op, (user,))) for user in op.users]
    if op.kind in LEAVER_KINDS:
        return [(("leaver", op.ref, ""), op)]
    return [((str(op.kind), op.ref, ""), op)]


def only_parts(op: Operation, keys: Collection[HoldKey]) -> Operation | None:
    """The operation cut down to its parts (`per_person`) whose keys are in `keys`:
    itself when all are, None when none is; a group's kept members stay one request."""
    parts = per_person(op)
    kept = [key for key, _ in parts if key in keys]
    if len(kept) == len(parts):
        return op
    if not kept:
        return None
    assert isinstance(op, GroupLinks)  # only group links have more than one part
    return with_users(op, tuple(ref for _, ref, _ in kept))


@dataclass(frozen=True, slots=True)
class HeldOp:
    """A risky operation the safety policy holds back until an explicit `release`.

    `since` is when it was first held ("" when this plan is the first to hold it):
    a held change the sources still ask for is held again by every run, re-planned
    from that run's data, and keeps its original reason and date."""

    operation: Operation
    risk: RiskClass
    reason: str
    since: str = ""

    @property
    def key(self) -> HoldKey:
        ((key, _),) = per_person(self.operation)
        return key

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.risk,
            "reason": self.reason,
            "since": self.since,
            "operation": self.operation.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeldOp:
        risk = data["class"]
        if risk not in HOLD_CLASSES:
            raise ValueError(f"{risk!r} is not one of {HOLD_CLASSES}")
        return cls(
            operation=operation_from_json(data["operation"]),
            risk=risk,
            reason=str(data["reason"]),
            since=str(data.get("since", "")),
        )


# ------------------------------------------------------------------ the plan


@dataclass(frozen=True, slots=True)
class Plan:
    """An immutable plan; steps that refine it (adoption) return a new one."""

    operations: tuple[Operation, ...] = ()
    state_users: int = 0
    desired_users: int = 0
    adopted: tuple[str, ...] = ()
    verified_new: frozenset[str] = frozenset()
    """Refs Pluvo was checked not to have before this plan: whatever a retried upsert
    answers later (`created: false` after a lost answer), the engine made them."""
    held: tuple[HeldOp, ...] = ()
    """Risky operations held back by the safety policy (sync.core.hold): not applied,
    not in `operations`, one per person."""
    discarded: tuple[HeldOp, ...] = ()
    """Changes someone discarded that the sources still ask for, unchanged: set aside,
    not applied, one per person (`reason` says who discarded them and why)."""
    filtered_out: tuple[tuple[str, str], ...] = ()
    """(ref, why) of people synced today whom a mapping filter now drops: they leave,
    at this run or after the leaver grace."""
    in_grace: tuple[tuple[str, str], ...] = ()
    """(ref, when) of people missing from the sources but within the leaver grace: no
    operation yet, and when one comes unless they return."""

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

    def leavers(self) -> tuple[Operation, ...]:
        return tuple(op for op in self.operations if op.kind in LEAVER_KINDS)

    def to_json(self, *, lazy: bool = False) -> dict[str, Any]:
        operations = (op.to_json() for op in self.operations)
        return {
            "counts": self.counts(),
            "state_users": self.state_users,
            "desired_users": self.desired_users,
            "adopted": list(self.adopted),
            "verified_new": sorted(self.verified_new),
            "operations": operations if lazy else list(operations),
            "held": [h.to_json() for h in self.held],
            "discarded": [h.to_json() for h in self.discarded],
            "filtered_out": [{"ref": ref, "why": why} for ref, why in self.filtered_out],
            "in_grace": [{"ref": ref, "when": when} for ref, when in self.in_grace],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Plan:
        return cls(
            operations=tuple(operation_from_json(op) for op in data["operations"]),
            state_users=int(data.get("state_users", 0)),
            desired_users=int(data.get("desired_users", 0)),
            adopted=tuple(data.get("adopted", ())),
            verified_new=frozenset(data.get("verified_new", ())),
            held=tuple(HeldOp.from_json(h) for h in data.get("held", ())),
            discarded=tuple(HeldOp.from_json(h) for h in data.get("discarded", ())),
            filtered_out=tuple(
                (str(f["ref"]), str(f["why"])) for f in data.get("filtered_out", ())
            ),
            in_grace=tuple((str(g["ref"]), str(g["when"])) for g in data.get("in_grace", ())),
        )


def operation_from_json(data: Mapping[str, Any]) -> Operation:
    """The operation a `to_json` dict describes; unknown kinds and fields are errors."""
    cls = OPERATION_TYPES[Kind(data["kind"])]
    derived = ("kind", "description", *_DERIVED.get(cls, ()))
    fields = {k: v for k, v in data.items() if k not in derived}
    if cls is CreateUser and "origin" not in data and data.get("changes"):
        fields["origin"] = data["changes"][0].get("origin", "")  # written when changes were stored
    op: Operation = _decode(cls, fields)
    return op


_DERIVED: dict[type, tuple[str, ...]] = dict.fromkeys(
    (CreateUser, AddMembers, RemoveMembers, AddManagers, RemoveManagers), ("changes",)
)
"""Kinds whose `changes` follow from their fields: plans and journal entries written
before they were derived carry them, and are read as if they did not."""


# ------------------------------------------------------------------ JSON from the types


_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, looked up once per class: `dataclasses.fields`
    per object was a tenth of a first load's CPU (every operation is encoded for the
    journal and again for the report)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


_SCALARS = frozenset({str, int, bool, type(None)})


def _encode(value: Any) -> Any:
    cls = type(value)
    if cls in _SCALARS:
        return value
    if hasattr(cls, "__dataclass_fields__"):
        return {name: _encode(getattr(value, name)) for name in _field_names(cls)}
    if isinstance(value, tuple | list | frozenset):
        return [_encode(v) for v in value]
    return value


_ENCODERS: dict[type, Callable[[Any], dict[str, Any]]] = {}


def _encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """What `_encode` makes of an instance of dataclass `cls` (an operation: all but its
    `ref`, which `to_json` puts first), specialised once per class from its type hints.

    Every operation of a plan is encoded for the journal and again for the report, and
    a first load's plan has two per person: walking each value's type at run time (per
    change of per operation) was most of that. Fields typed as scalars are copied as
    they are, a tuple of dataclasses maps that class's own encoder, anything else goes
    through `_encode`; the JSON is the same (tests/unit/test_plan_model.py holds them
    to `_encode`)."""
    found = _ENCODERS.get(cls)
    if found is not None:
        return found
    hints = typing.get_type_hints(cls)
    skip = ("ref",) if issubclass(cls, Operation) else ()
    names = tuple(n for n in _field_names(cls) if n not in skip)
    fields = [(name, _field_encoder(hints[name])) for name in names]
    if all(encode is None for _, encode in fields):
        get = attrgetter(*names) if len(names) > 1 else (lambda v: (getattr(v, names[0]),))

        def encoder(value: Any) -> dict[str, Any]:
            return dict(zip(names, get(value), strict=True))

    else:

        def encoder(value: Any) -> dict[str, Any]:
            return {
                name: getattr(value, name) if encode is None else encode(getattr(value, name))
                for name, encode in fields
            }

    _ENCODERS[cls] = encoder
    return encoder


def _field_encoder(hint: Any) -> Callable[[Any], Any] | None:
    """None for a hint whose values JSON takes as they are; else how to encode one."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in _SCALARS or typing.get_origin(hint) is Literal:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and all(
        a in _SCALARS for a in args
    ):
        return None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _encoder(hint)
    if len(args) == 1 and isinstance(args[0], type) and dataclasses.is_dataclass(args[0]):
        optional = _encoder(args[0])  # `X | None`
        return lambda value: None if value is None else optional(value)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if dataclasses.is_dataclass(item):
            each = _encoder(item)  # type: ignore[arg-type]
            return lambda values: [each(v) for v in values]
        if item in _SCALARS:
            return list
    return _encode


def _decode(hint: Any, value: Any) -> Any:
    """`value` (parsed JSON) as an instance of the type `hint`, checked on the way."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"{value!r} is not an object")
        hints = typing.get_type_hints(hint)
        names = {f.name for f in dataclasses.fields(hint) if f.init}
        unknown = set(value) - names
        if unknown:
            raise ValueError(f"{hint.__name__}: unknown field(s) {sorted(unknown)}")
        return hint(**{k: _decode(hints[k], v) for k, v in value.items()})
    if origin is tuple:
        if not isinstance(value, list):
            raise ValueError(f"{value!r} is not a list")
        (item, _) = typing.get_args(hint)
        return tuple(_decode(item, v) for v in value)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ValueError(f"{value!r} is not one of {typing.get_args(hint)}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(inner, value)
    if hint in (str, int, bool):
        if not isinstance(value, hint):
            raise ValueError(f"{value!r} is not a {hint.__name__}")
        return value
    raise TypeError(f"no JSON decoding for {hint!r}")
