"""Small typed views of Pluvo answers, so callers do not index raw JSON.

Parsing is lenient about fields the selection did not ask for (they stay None) and
reads both generations of the membership result fields (`addedIds` / `addedRefs`),
because which one live Pluvo serves is an open question.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sync.errors import PluvoError
from sync.pluvo.ops import Call


@dataclass(frozen=True)
class CallResult:
    """The outcome of one call of a batch: its data, or the error that hit it."""

    call: Call
    data: Any
    error: PluvoError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


OnResult = Callable[[int, CallResult], Awaitable[None] | None]
"""Told each call's result as soon as its batch is back (the executor journals it)."""
BeforeSend = Callable[[Sequence[int]], Awaitable[None] | None]
"""Told the indexes of a batch just before it is sent (the executor journals them
`started`)."""


@dataclass
class ClientCounters:
    """What a run cost; reported by the executor and asserted by tests."""

    requests: int = 0
    mutations: int = 0
    retries: int = 0
    throttled: int = 0
    reauths: int = 0


@dataclass(frozen=True)
class UserRecord:
    id: str
    ref: str | None = None
    email: str | None = None
    name: str | None = None
    archived: bool | None = None
    is_active: bool | None = None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> UserRecord:
        return cls(
            id=str(data["id"]),
            ref=data.get("ref"),
            email=data.get("email"),
            name=data.get("name"),
            archived=data.get("archived"),
            is_active=data.get("isActive"),
        )


@dataclass(frozen=True)
class UpsertResult:
    created: bool
    user: UserRecord

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> UpsertResult:
        return cls(created=bool(data.get("created")), user=UserRecord.parse(data["user"]))


@dataclass(frozen=True)
class BulkResult:
    """archiveUsers / manager changes: `response { succeededIds failedIds }`."""

    succeeded: tuple[str, ...]
    failed: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> BulkResult:
        body = data.get("response") or data
        return cls(
            succeeded=tuple(body.get("succeededIds") or ()),
            failed=tuple(body.get("failedIds") or ()),
        )


@dataclass(frozen=True)
class MembershipResult:
    """add/removeUsersToGroup: changed now, already so, failed (unknown users)."""

    changed: tuple[str, ...]
    unchanged: tuple[str, ...]
    failed: tuple[str, ...]

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> MembershipResult:
        def pick(*keys: str) -> tuple[str, ...]:
            for key in keys:
                if data.get(key) is not None:
                    return tuple(str(v) for v in data[key])
            return ()

        return cls(
            changed=pick("addedIds", "removedIds", "addedRefs", "removedRefs"),
            unchanged=pick(
                "alreadyAddedIds", "alreadyRemovedIds", "alreadyAddedRefs", "alreadyRemovedRefs"
            ),
            failed=pick("failedIds", "failedRefs"),
        )


@dataclass(frozen=True)
class GroupRecord:
    id: str
    ref: str | None
    name: str | None

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> GroupRecord:
        body = data.get("group") or data
        return cls(id=str(body["id"]), ref=body.get("ref"), name=body.get("name"))


@dataclass(frozen=True)
class Member:
    id: str
    ref: str | None
    email: str | None = None


@dataclass(frozen=True)
class GroupInfo:
    """A live group with its members and managers (empty when not requested)."""

    id: str
    ref: str | None
    name: str | None
    members: tuple[Member, ...] = ()
    managers: tuple[Member, ...] = ()

    @property
    def member_refs(self) -> frozenset[str]:
        return frozenset(m.ref for m in self.members if m.ref)

    @property
    def manager_refs(self) -> frozenset[str]:
        return frozenset(m.ref for m in self.managers if m.ref)


@dataclass(frozen=True)
class ChoiceOption:
    id: str
    ref: str | None
    string_value: str


@dataclass(frozen=True)
class ExtraCategory:
    id: str
    ref: str | None
    title: str
    category_type: str
    for_model_types: tuple[str, ...] = ()
    choice_options: tuple[ChoiceOption, ...] = ()

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> ExtraCategory:
        return cls(
            id=str(data["id"]),
            ref=data.get("ref"),
            title=str(data.get("title") or ""),
            category_type=str(data.get("categoryType") or ""),
            for_model_types=tuple(data.get("forModelTypes") or ()),
            choice_options=tuple(
                ChoiceOption(id=str(o["id"]), ref=o.get("ref"), string_value=o["stringValue"])
                for o in data.get("choiceOptions") or ()
            ),
        )
