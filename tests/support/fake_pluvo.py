"""An in-memory Pluvo with failure injection: the sandbox without HTTP, failing on demand.

`FakePluvo` implements `sync.pluvo.api.PluvoApi`, so the executor, adoption and the
live reads can be handed one instead of a `PluvoClient`. Each call is rendered the way
the client renders it (`ops.render_batch`, variables typed from the bundled schema)
and executed by graphql-core against the sandbox's own schema, resolvers and store
(`sync.sandbox.api.GraphQLApi`), so answers, refusals and state changes are the
sandbox's by construction rather than by imitation. Errors are read back the way the
client reads them (same RecordError messages and codes). Each call of a chunk runs as
its own document, in order, as the sandbox runs the fields of an aliased batch; a
document the schema refuses fails its whole chunk, as it would fail the request. The
one visible difference: a value that cannot be coerced (a RecordError, code
BadRequest, on that call alone, as after the client's salvage) is named `$a0_...` in
the message where the client's would carry the call's position in its batch.

What the fake adds is precision: a failure lands on the call a test names, not on a
request picked by seeded dice, and every call, batch and `before_send` notification
is recorded for assertions.

    fake = FakePluvo(batch_size=2, seed=Seed(users=[...]))
    fake.inject(Fault.record("Conflict"), field="createGroup", ref="G1")
    fake.inject(Fault.failed_items("E2"), field="addUsersToGroup", ref="G1")
    fake.inject(Fault.lost(), field="updateOrCreateUser", ref="E3")
    fake.inject(Fault.fatal(), call=7)
    execution = await Executor(store, fake, run_id).execute(plan)
    assert fake.user("E3")["name"] == "..."  # applied, although reported transient
    assert fake.members("G1") == {"E1"}

Faithful to `PluvoClient.run_calls`: calls are chunked by `batch_size`; each chunk is
one request (`counters.requests`), its mutations count in `counters.mutations`;
`before_send(indexes)` runs (awaited if awaitable) just before a chunk is sent and
`on_result(index, result)` for each result once its chunk is back; a FatalError on a
whole chunk gives the chunks not yet sent that same error, unsent and unannounced.
Workers run in a TaskGroup as the client's do, so an exception raised by a hook
surfaces the same way (an ExceptionGroup). With `concurrency=1` (the default) chunks
are sent strictly one after the other, which makes orderings deterministic; with
more, a chunk's send yields once, so announcements of later chunks may come before
the results of earlier ones, as they can with the client.

Not modelled: retries, throttling, tokens and HTTP faults (the sandbox's `Faults`
rates); a request is never sent twice. `settings` still carries the sandbox's rules
that are not faults: `extra_values_mode`, `invite_default`, `membership_delay`,
`max_page_size`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any, Literal, Self

from graphql import GraphQLSyntaxError

from sync.errors import FatalError, TransientError
from sync.pluvo import ops
from sync.pluvo.client import (
    BeforeSend,
    ClientCounters,
    OnResult,
    _data_or_raise,
    _reason,
    _record_error,
    chunk_size,
)
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult, GroupInfo, Member
from sync.pluvo.schema import ArgumentTypes, argument_types
from sync.sandbox.api import Context, GraphQLApi
from sync.sandbox.counters import Counters
from sync.sandbox.faults import Faults
from sync.sandbox.store import SCOPES, Seed, Store

FaultKind = Literal["record", "transient", "lost", "fatal", "failed_items"]

ITEM_ARGUMENTS = ("userRefs", "userIds", "ids")
"""The list arguments of bulk and membership mutations, whose items can fail one by one."""

_PAGE = 50


@cache
def _api() -> GraphQLApi:
    """One executable schema per process: resolvers are stateless, the store is context."""
    return GraphQLApi()


# ------------------------------------------------------------------------ injection


@dataclass(frozen=True)
class Fault:
    """How a matched call fails. Build one with the class methods."""

    kind: FaultKind
    message: str | None = None
    code: str | None = None
    items: tuple[str, ...] | None = None

    @classmethod
    def record(cls, code: str | None = "InvalidInput", message: str | None = None) -> Fault:
        """Pluvo refuses this call alone (a GraphQL error on its alias); nothing is applied.

        The executor recognises an existing group by code "Conflict" (any case).
        """
        return cls("record", message, code)

    @classmethod
    def transient(cls, message: str | None = None) -> Fault:
        """Retries gave up before an answer: nothing is applied, TransientError."""
        return cls("transient", message)

    @classmethod
    def lost(cls, message: str | None = None) -> Fault:
        """Applied, but the answer was lost: the store changes, the call is a TransientError."""
        return cls("lost", message)

    @classmethod
    def fatal(cls, message: str | None = None) -> Fault:
        """The request of this call's chunk is refused (FatalError on the whole chunk,
        nothing of it applied), and the chunks not yet sent get the same error."""
        return cls("fatal", message)

    @classmethod
    def failed_items(cls, *items: str) -> Fault:
        """A bulk or membership call succeeds except for `items` (all items when none are
        named): they are left out of what is applied and reported in `failedIds` /
        `failedRefs`, as given, the way Pluvo reports unknown users."""
        return cls("failed_items", items=tuple(items) if items else None)


@dataclass
class Rule:
    """When a fault fires: every given condition must hold (none given: every call)."""

    fault: Fault
    field: str | None = None
    """The call's root field (`updateOrCreateUser`, `addUsersToGroup`, `user`, ...)."""
    ref: str | None = None
    """One of the call's subject refs, see `subject_refs` (a user or group ref, an email)."""
    call: int | None = None
    """The call's number: its index in `FakePluvo.calls` once sent (0-based, counted
    since the fake was made or its records were last cleared)."""
    where: Callable[[Call], bool] | None = None
    """Any other condition on the call."""
    times: int | None = 1
    """How many calls it fails before it is spent; None: every matching call."""
    hits: list[int] = dataclasses.field(default_factory=list)
    """The numbers of the calls it fired on."""

    @property
    def spent(self) -> bool:
        return self.times is not None and len(self.hits) >= self.times

    def matches(self, number: int, call: Call) -> bool:
        return (
            not self.spent
            and (self.field is None or call.field == self.field)
            and (self.ref is None or self.ref in subject_refs(call))
            and (self.call is None or self.call == number)
            and (self.where is None or self.where(call))
        )


def subject_refs(call: Call) -> frozenset[str]:
    """What a call is about: `ref`, `groupRef`, `modelRef`, `email`, `group.ref`,
    `user.ref`. Not the users listed in a membership call (fail those with
    `Fault.failed_items`)."""
    args = call.args
    found = [args.get(key) for key in ("ref", "groupRef", "modelRef", "email")]
    for nested in ("group", "user"):
        value = args.get(nested)
        if isinstance(value, Mapping):
            found.append(value.get("ref"))
    return frozenset(str(v) for v in found if v is not None)


# ------------------------------------------------------------------------- the fake


class FakePluvo:
    """`PluvoApi` over the sandbox's schema and store, in process, with injected failures.

    Recorded for assertions:
    - `calls`: every call sent, in order (its index is the number rules match on);
      `results[i]` is what `calls[i]` got;
    - `batches`: the chunks sent, one per request;
    - `announced`: the indexes each `before_send` was told (relative to its run_calls);
    - `counters`: the client's counters (requests = batches sent, mutations = mutation
      calls sent); `server_counters`: the sandbox's (executed root fields by name,
      GraphQL errors by code, invites);
    - `opened`: how often it was entered as an async context manager.
    """

    def __init__(
        self,
        *,
        seed: Seed | None = None,
        settings: Faults | None = None,
        batch_size: int = 25,
        concurrency: int = 1,
        scopes: Iterable[str] | None = None,
        inline_arguments: bool = False,
    ) -> None:
        """`seed` is the sandbox's (default: its six USER categories, no users);
        `scopes` those granted to the token (default: all); `inline_arguments` sends
        literals instead of variables, as `pluvo.inline_arguments` does."""
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.settings = settings or Faults()
        self.scopes = frozenset(SCOPES if scopes is None else scopes)
        self.store = Store()
        self.store.load((seed or Seed()).as_data())
        self.rules: list[Rule] = []
        self.counters = ClientCounters()
        self.server_counters = Counters()
        self.calls: list[Call] = []
        self.results: list[CallResult] = []
        self.batches: list[tuple[Call, ...]] = []
        self.announced: list[tuple[int, ...]] = []
        self.opened = 0
        self._types: ArgumentTypes | None = None if inline_arguments else argument_types()

    # -------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> Self:
        """Nothing to open; counted in `opened`, so a test can tell the API was used
        (one fake may serve several runs: `api_factory=lambda config: fake`)."""
        self.opened += 1
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    # -------------------------------------------------------------- injection

    def inject(
        self,
        fault: Fault,
        *,
        field: str | None = None,
        ref: str | None = None,
        call: int | None = None,
        where: Callable[[Call], bool] | None = None,
        times: int | None = 1,
    ) -> Rule:
        """Fail the next `times` calls matching every condition given. The first unspent
        matching rule (in the order added) decides a call's fate; a fatal rule anywhere
        in a chunk wins over the others."""
        rule = Rule(fault, field, ref, call, where, times)
        self.rules.append(rule)
        return rule

    # -------------------------------------------------------------- records

    def sent(self, field: str | None = None) -> list[Call]:
        """The calls sent, or those of one root field."""
        return [c for c in self.calls if field is None or c.field == field]

    def clear_records(self) -> None:
        """Forget calls, results, batches, announcements and counters (not the store,
        not the rules): set-up traffic out of the way, call numbers start again at 0."""
        self.calls.clear()
        self.results.clear()
        self.batches.clear()
        self.announced.clear()
        self.counters = ClientCounters()
        self.server_counters.reset()

    # -------------------------------------------------------------- PluvoApi

    async def run_calls(
        self,
        calls: Sequence[Call],
        *,
        on_result: OnResult | None = None,
        before_send: BeforeSend | None = None,
        keep: bool = True,
        spread: bool = False,
    ) -> list[CallResult]:
        calls = list(calls)
        if not calls:
            return []
        if len({c.operation for c in calls}) != 1:
            raise ValueError("run_calls needs calls of one kind: all mutations or all queries")
        size = chunk_size(len(calls), self.batch_size, self.concurrency, spread)
        pending = deque(
            range(start, min(start + size, len(calls))) for start in range(0, len(calls), size)
        )
        results: list[CallResult | None] = [None] * len(calls)
        fatal: FatalError | None = None

        async def worker() -> None:
            nonlocal fatal
            while pending:
                indexes = pending.popleft()
                chunk = [calls[i] for i in indexes]
                if fatal is not None:
                    chunk_results = [CallResult(c, None, fatal) for c in chunk]
                else:
                    if before_send is not None:
                        self.announced.append(tuple(indexes))
                        announced = before_send(indexes)
                        if inspect.isawaitable(announced):
                            await announced
                    if self.concurrency > 1:
                        await asyncio.sleep(0)  # the request is in flight
                    chunk_results = await self._send(chunk)
                    first = chunk_results[0].error
                    if isinstance(first, FatalError) and all(
                        r.error is first for r in chunk_results
                    ):
                        fatal = fatal or first
                for index, result in zip(indexes, chunk_results, strict=True):
                    results[index] = result
                    if on_result is not None:
                        outcome = on_result(index, result)
                        if inspect.isawaitable(outcome):
                            await outcome

        async with asyncio.TaskGroup() as group:
            for _ in range(min(self.concurrency, len(pending))):
                group.create_task(worker())
        return [r for r in results if r is not None] if keep else []

    async def count_users(self, *, archived: bool | None = None) -> int:
        """Sent as a one-call request (`paginatedUsers`), so rules can fail it too."""
        args: dict[str, Any] = {"first": 1}
        if archived is not None:
            args["archived"] = archived
        (result,) = await self._send([Call("paginatedUsers", args, "count", "query")])
        if result.error is not None:
            raise result.error
        return int((result.data or {}).get("count") or 0)

    # -------------------------------------------------- reads beyond PluvoApi

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """`PluvoClient.execute`: one raw document, its data or the error it raised.
        One request; not recorded as calls and not subject to rules."""
        self.counters.requests += 1
        outcome = await _api().run(query, variables, None, self._context())
        errors = outcome.body.get("errors") or []
        for error in errors:
            code = str((error.get("extensions") or {}).get("code") or "")
            if "Permission" in code or "Forbidden" in code:
                raise FatalError(f"execute: Pluvo denied permission ({_reason(error)})")
        if outcome.status != 200:
            reason = _reason(errors[0]) if errors else f"HTTP {outcome.status}"
            raise FatalError(f"execute: Pluvo rejected the document ({reason})")
        return _data_or_raise(outcome.body, "execute")

    async def list_groups(self, *, members: bool = True, managers: bool = True) -> list[GroupInfo]:
        """`PluvoClient.list_groups`: what reads show (after `membership_delay`).
        Counts the requests its paging would cost; not subject to rules."""
        self.store.flush(time.monotonic())
        groups = self.store.list_groups()
        self.counters.requests += max(1, math.ceil(len(groups) / _PAGE))
        wanted = [r for r, on in (("members", members), ("managers", managers)) if on]
        infos = []
        for group in groups:
            people: dict[str, tuple[Member, ...]] = {"members": (), "managers": ()}
            for relation in wanted:
                users = self.store.visible_users(
                    group, "members" if relation == "members" else "managers"
                )
                self.counters.requests += max(1, math.ceil(len(users) / _PAGE))
                people[relation] = tuple(Member(u.id, u.ref, u.email) for u in users)
            infos.append(
                GroupInfo(group.id, group.ref, group.name, people["members"], people["managers"])
            )
        return infos

    # -------------------------------------------------------------- state

    def seed(
        self,
        *,
        users: Sequence[Mapping[str, Any]] = (),
        groups: Sequence[Mapping[str, Any]] = (),
        categories: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Add data in the seed format (like `SandboxControl.seed`): not a call, not
        counted. Members and managers given here are visible at once."""
        self.store.load(
            Seed(
                users=[dict(u) for u in users],
                groups=[dict(g) for g in groups],
                categories=[dict(c) for c in categories],
                default_categories=False,
                default_client=False,
            ).as_data()
        )

    def state(self) -> dict[str, Any]:
        """Everything, in the sandbox's dump format (`SandboxControl.state()`)."""
        return self.store.dump()

    def users(self) -> dict[str, dict[str, Any]]:
        """Users by ref (those without one left out): camelCase fields, `archived`,
        `isActive`, `invited`, `extra` by category ref."""
        return {u["ref"]: u for u in self.store.dump()["users"] if u["ref"] is not None}

    def user(self, ref: str) -> dict[str, Any] | None:
        return self.users().get(ref)

    def groups(self) -> dict[str, dict[str, Any]]:
        """Groups by ref: `name`, `members` / `managers` as user refs (as applied),
        `visibleMembers` / `visibleManagers` (what reads show)."""
        return {g["ref"]: g for g in self.store.dump()["groups"] if g["ref"] is not None}

    def group(self, ref: str) -> dict[str, Any] | None:
        return self.groups().get(ref)

    def members(self, group_ref: str) -> set[str]:
        """Refs of the group's members as applied (empty for an unknown group)."""
        return self._relation(group_ref, "members")

    def managers(self, group_ref: str) -> set[str]:
        return self._relation(group_ref, "managers")

    def extra(self, user_ref: str) -> dict[str, Any]:
        """A user's extra values by category ref (choices by their string value)."""
        found = self.user(user_ref)
        return dict(found["extra"]) if found else {}

    def _relation(self, group_ref: str, relation: Literal["members", "managers"]) -> set[str]:
        group = self.store.find_group(ref=group_ref)
        if group is None:
            return set()
        users = self.store.users
        return {users[i].label for i in group.applied(relation) if i in users}

    # -------------------------------------------------------------- sending

    def _context(self) -> Context:
        now = time.monotonic()
        self.store.flush(now)
        return Context(
            store=self.store,
            faults=self.settings,
            counters=self.server_counters,
            scopes=self.scopes,
            now=now,
        )

    def _render(self, call: Call) -> tuple[str, dict[str, Any]]:
        return ops.render_batch([call], types=self._types, name="SyncBatch")

    async def _send(self, chunk: list[Call]) -> list[CallResult]:
        """One request: record it, then answer each call of the chunk."""
        self.counters.requests += 1
        if chunk[0].operation == "mutation":
            self.counters.mutations += len(chunk)
        first = len(self.calls)
        self.calls.extend(chunk)
        self.batches.append(tuple(chunk))
        results = await self._answer(chunk, first)
        self.results.extend(results)
        return results

    async def _answer(self, chunk: list[Call], first: int) -> list[CallResult]:
        fields = sorted({c.field for c in chunk})
        label = f"{chunk[0].operation} {'+'.join(fields)} x{len(chunk)}"
        numbers = range(first, first + len(chunk))
        for number, call in zip(numbers, chunk, strict=True):
            rule = self._match(number, call, fatal=True)
            if rule is not None:
                message = rule.fault.message or f"{label}: injected fatal failure"
                return _all(chunk, FatalError(message))
        api = _api()
        for call in chunk:
            document, errors = api.document(self._render(call)[0])
            if document is None:
                # The client sends the chunk as one document: Pluvo refuses all of it.
                code = (
                    "ParseError" if isinstance(errors[0], GraphQLSyntaxError) else "ValidationError"
                )
                formatted = {"message": errors[0].message, "extensions": {"code": code}}
                return _all(
                    chunk,
                    FatalError(f"{label}: Pluvo rejected the document ({_reason(formatted)})"),
                )
        results = [
            await self._answer_call(call, self._match(number, call, fatal=False))
            for number, call in zip(numbers, chunk, strict=True)
        ]
        denied = next((r.error for r in results if isinstance(r.error, _Denied)), None)
        if denied is not None:
            # The client treats a permission error anywhere in the answer as fatal for the
            # request; the permitted calls were still executed by the server.
            return _all(chunk, FatalError(f"{label}: {denied}"))
        return results

    def _match(self, number: int, call: Call, *, fatal: bool) -> Rule | None:
        for rule in self.rules:
            if (rule.fault.kind == "fatal") == fatal and rule.matches(number, call):
                rule.hits.append(number)
                return rule
        return None

    async def _answer_call(self, call: Call, rule: Rule | None) -> CallResult:
        fault = rule.fault if rule is not None else None
        if fault is not None and fault.kind == "record":
            message = fault.message or "injected record failure"
            error = _record_error(
                call.field, {"message": message, "extensions": {"code": fault.code}}
            )
            return CallResult(call, None, error)
        if fault is not None and fault.kind == "transient":
            message = fault.message or "gave up after the retries (injected transient failure)"
            return CallResult(call, None, TransientError(f"{call.field}: {message}"))
        failed: list[str] = []
        sent = call
        if fault is not None and fault.kind == "failed_items":
            sent, failed = _without_items(call, fault.items)
        query, variables = self._render(sent)
        outcome = await _api().run(query, variables or None, None, self._context())
        errors = outcome.body.get("errors") or []
        if fault is not None and fault.kind == "lost":
            message = fault.message or "connection dropped after the call was applied (injected)"
            return CallResult(call, None, TransientError(f"{call.field}: {message}"))
        if errors:
            code = str((errors[0].get("extensions") or {}).get("code") or "")
            if "Permission" in code or "Forbidden" in code:
                return CallResult(call, None, _Denied(_reason(errors[0])))
            return CallResult(call, None, _record_error(call.field, errors[0]))
        data = (outcome.body.get("data") or {}).get(ops.alias_for(0))
        if failed:
            data = _with_failed(data, failed)
        return CallResult(call, data)


class _Denied(FatalError):
    """Internal: a call refused for a missing scope; the whole chunk becomes fatal."""


def _all(chunk: Sequence[Call], error: FatalError) -> list[CallResult]:
    return [CallResult(c, None, error) for c in chunk]


def _without_items(call: Call, items: tuple[str, ...] | None) -> tuple[Call, list[str]]:
    """The call without the items meant to fail, and those items in argument order."""
    present = [key for key in ITEM_ARGUMENTS if key in call.args]
    if not present:
        raise ValueError(f"Fault.failed_items needs a bulk or membership call, not {call.field}")
    args = dict(call.args)
    failed: list[str] = []
    for key in present:
        given = [str(v) for v in args[key]]
        failing = [v for v in given if items is None or v in items]
        failed += failing
        args[key] = [v for v in given if v not in failing]
    return Call(call.field, args, call.selection, call.operation), failed


def _with_failed(data: Any, failed: list[str]) -> Any:
    """Add `failed` to the answer's failedIds / failedRefs, whichever were selected."""
    if not isinstance(data, dict):
        return data
    answer = dict(data)
    response = answer.get("response")
    body = dict(response) if isinstance(response, dict) else answer
    for key in ("failedIds", "failedRefs"):
        if key in body:
            body[key] = [*(body[key] or []), *failed]
    if isinstance(response, dict):
        answer["response"] = body
    return answer


__all__ = ["ITEM_ARGUMENTS", "FakePluvo", "Fault", "Rule", "subject_refs"]
