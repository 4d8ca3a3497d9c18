"""An in-process Pluvo with failure injection: a transport under the real client.

`SandboxTransport` is a `sync.pluvo.transport.Transport` that answers the client's
requests in process: the token request as the sandbox's token endpoint does, and each
GraphQL document, exactly as the client rendered it, by graphql-core against the
sandbox's own schema, resolvers and store (`sync.sandbox.api.GraphQLApi`). `FakePluvo`
is `PluvoClient` over such a transport, so everything above the POST is the product's
own code: chunking, scheduling and the stop check of `run_calls`, hooks and the
exception a failing hook raises, size splitting, the salvage of refused documents,
retries, re-authentication, scope checks, the circuit breaker and the reading of
answers. Nothing of the client is copied here; the transport only decides what comes
back.

What the fake adds is precision: a failure lands on the request or the alias a test
names, not on a request picked by seeded dice, and every call, batch and `before_send`
notification is recorded for assertions.

    fake = FakePluvo(batch_size=2, seed=Seed(users=[...]))
    fake.inject(Fault.record("Conflict"), field="createGroup", ref="G1")
    fake.inject(Fault.failed_items("E2"), field="addUsersToGroup", ref="G1")
    fake.inject(Fault.lost(), field="updateOrCreateUser", ref="E3")
    fake.inject(Fault.fatal(), call=7)
    execution = await Executor(store, fake, run_id).execute(plan)
    assert fake.user("E3")["name"] == "..."  # applied, although reported transient
    assert fake.members("G1") == {"E1"}

Faults of a call and faults of its request. A record error and failed items are the
call's own (a GraphQL error on its alias; items left out and reported failed): the
other calls of the batch are answered as usual. A transient, lost or fatal fault is
the request's, as on the wire: the client's answer to it (retries, then TransientError
for every call of the batch; a FatalError that also stops the chunks not yet sent) is
the real client's. The fake's client retries nothing by default (`max_retries=0`), so
a fault fires once per request and a test sees the client give up at once; pass
`pluvo={"max_retries": 3}` to watch the retries (or the circuit breaker trip).

Not modelled: the sandbox's HTTP fault rates (latency, random 5xx, 429s, drops) and its
redirects; `settings` carries the sandbox's rules that are not faults
(`extra_values_mode`, `invite_default`, `membership_delay`, `max_page_size`,
`max_root_fields`, `token_lifetime`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from types import TracebackType
from typing import Any, Literal, Self

from graphql import GraphQLObjectType, OperationDefinitionNode

from sync.config.pluvo import PluvoConfig
from sync.pluvo import ops
from sync.pluvo.api import BeforeSend, OnResult
from sync.pluvo.client import PluvoClient
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult
from sync.pluvo.transport import Request, Response, TransportError
from sync.sandbox.api import Context, GraphQLApi, Resolver
from sync.sandbox.counters import Counters
from sync.sandbox.faults import Faults
from sync.sandbox.store import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SCOPES,
    SandboxError,
    Seed,
    Store,
)

FaultKind = Literal["record", "transient", "lost", "fatal", "failed_items"]

ITEM_ARGUMENTS = ("userRefs", "userIds", "ids")
"""The list arguments of bulk and membership mutations, whose items can fail one by one."""

URL = "https://fake.pluvo.test/"


# ------------------------------------------------------------------------ injection


@dataclass(frozen=True)
class Fault:
    """How a matched call, or the request carrying it, fails. Build one with the class
    methods."""

    kind: FaultKind
    message: str | None = None
    code: str | None = None
    items: tuple[str, ...] | None = None

    @classmethod
    def record(cls, code: str | None = "InvalidInput", message: str | None = None) -> Fault:
        """Pluvo refuses this call alone (a GraphQL error on its alias); nothing of it is
        applied. The executor recognises an existing group by code "Conflict" (any case).
        """
        return cls("record", message, code)

    @classmethod
    def transient(cls, message: str | None = None) -> Fault:
        """The request carrying this call gets no answer and nothing of it is applied:
        every call of the batch is a TransientError once the client's retries are spent.
        """
        return cls("transient", message)

    @classmethod
    def lost(cls, message: str | None = None) -> Fault:
        """The request carrying this call is applied, then its answer is lost: the store
        changes and every call of the batch is a TransientError (retries spent)."""
        return cls("lost", message)

    @classmethod
    def fatal(cls, message: str | None = None) -> Fault:
        """Pluvo refuses the request carrying this call (HTTP 400, nothing of it
        applied): a FatalError on the whole batch, and the chunks not yet sent get the
        same error."""
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
    since the fake was made or its records were last cleared; a call sent again, by a
    retry or a salvage, gets a new number)."""
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


# --------------------------------------------------------------------- the transport


@dataclass
class _Aimed(Context):
    """A request's context plus the faults aimed at its aliases."""

    aimed: dict[str, Fault] = dataclasses.field(default_factory=dict)


def _aimable(resolve: Resolver) -> Resolver:
    """A root resolver that lets a fault aimed at its alias decide first."""

    def run(source: Any, info: Any, **args: Any) -> Any:
        aimed = getattr(info.context, "aimed", None)
        fault = aimed.get(info.path.key) if aimed and info.path.prev is None else None
        if fault is None:
            return resolve(source, info, **args)
        if fault.kind == "record":
            raise SandboxError(fault.message or "injected record failure", fault.code)  # type: ignore[arg-type]
        kept, failed = _without_items(info.field_name, args, fault.items)
        return _with_failed(resolve(source, info, **kept), failed)

    return run


@cache
def _api() -> GraphQLApi:
    """One executable schema per process (resolvers are stateless, the store is the
    context), its own, so wrapping its root resolvers leaves the sandbox server's alone."""
    api = GraphQLApi()
    for name in ("Query", "Mutation"):
        root = api.schema.get_type(name)
        assert isinstance(root, GraphQLObjectType)
        for field in root.fields.values():
            if field.resolve is not None:
                field.resolve = _aimable(field.resolve)
    return api


@dataclass
class _Token:
    scopes: frozenset[str]
    expires_at: float


class SandboxTransport:
    """`Transport` answering in process over the sandbox's executor and a `Store`.

    Recorded for assertions:
    - `calls`: every call sent, in order (its index is the number rules match on);
    - `batches`: the calls of each request that carried calls, one tuple per request;
    - `server_counters`: the sandbox's (executed root fields by name, GraphQL errors by
      code, invites).
    """

    def __init__(
        self,
        *,
        seed: Seed | None = None,
        settings: Faults | None = None,
        scopes: Iterable[str] | None = None,
        report_scopes: bool = True,
    ) -> None:
        """`scopes` are those granted to a token (default: all); `report_scopes=False`
        leaves them out of the token answer, as a Pluvo that does not say, so the
        client learns of a missing one only from Pluvo's refusal."""
        self.settings = settings or Faults()
        self.scopes = frozenset(SCOPES if scopes is None else scopes)
        self.report_scopes = report_scopes
        self.store = Store()
        self.store.load((seed or Seed()).as_data())
        self.rules: list[Rule] = []
        self.server_counters = Counters()
        self.calls: list[Call] = []
        self.batches: list[tuple[Call, ...]] = []
        self.tokens_issued = 0
        self._tokens: dict[str, _Token] = {}

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
        in a request wins over the others, and a transient one over record and lost
        ones (whose rules are then not spent: nothing of the request was executed)."""
        rule = Rule(fault, field, ref, call, where, times)
        self.rules.append(rule)
        return rule

    def expire_tokens(self) -> None:
        """Every token issued so far is refused from now on (HTTP 401)."""
        self._tokens.clear()

    # -------------------------------------------------------------- Transport

    async def send(self, request: Request) -> Response:
        await asyncio.sleep(0)  # the request is in flight: other tasks may run
        if request.form is not None:
            return self._token(request.form)
        scheme, _, token = str(request.headers.get("Authorization", "")).partition(" ")
        entry = self._tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        now = time.monotonic()
        if entry is None or entry.expires_at <= now:
            return _answer({"errors": [{"message": "Invalid token.", "extensions": _AUTH}]}, 401)
        payload = json.loads(json.dumps(request.json))  # what the wire would carry
        query = payload.get("query")
        calls = list(request.calls)
        first = len(self.calls)
        self.calls.extend(calls)
        if calls:
            self.batches.append(tuple(calls))
        numbers = range(first, first + len(calls))
        for number, call in zip(numbers, calls, strict=True):
            rule = self._match(number, call, fatal=True)
            if rule is not None:
                message = rule.fault.message or "injected fatal failure"
                return _refusal(message, "Injected")
        matched = [
            (number, rule)
            for number, call in zip(numbers, calls, strict=True)
            if (rule := self._match(number, call, fatal=False)) is not None
        ]
        transient = [r for _, r in matched if r.fault.kind == "transient"]
        if transient:
            for number, rule in matched:
                if rule.fault.kind != "transient":
                    rule.hits.remove(number)  # not executed: not spent
            message = transient[0].fault.message or "connection dropped (injected)"
            raise TransportError(message)
        refused = self._too_complex(query)
        if refused is not None:
            return refused
        context = self._context(entry.scopes)
        for number, rule in matched:
            if rule.fault.kind in ("record", "failed_items"):
                context.aimed[ops.alias_for(number - first)] = rule.fault
                if rule.fault.kind == "failed_items":
                    _check_items(calls[number - first])
        outcome = await _api().run(
            query, payload.get("variables"), payload.get("operationName"), context
        )
        lost = [r for _, r in matched if r.fault.kind == "lost"]
        if lost:
            raise TransportError(
                lost[0].fault.message or "connection dropped after the request was applied"
            )
        return _answer(outcome.body, outcome.status)

    async def aclose(self) -> None:
        return None

    # -------------------------------------------------------------- answers

    def _token(self, form: Mapping[str, str]) -> Response:
        if form.get("grant_type") != "client_credentials":
            return _answer({"error": "unsupported_grant_type"}, 400)
        if (form.get("client_id"), form.get("client_secret")) != (
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
        ):
            return _answer({"error": "invalid_client"}, 401)
        requested = set(str(form.get("scope") or "").split()) or set(self.scopes)
        granted = frozenset(requested & self.scopes)
        if not granted:
            return _answer({"error": "invalid_scope"}, 400)
        token = secrets.token_urlsafe(16)
        lifetime = self.settings.token_lifetime
        self._tokens[token] = _Token(granted, time.monotonic() + lifetime)
        self.tokens_issued += 1
        body: dict[str, Any] = {"access_token": token, "expires_in": lifetime}
        if self.report_scopes:
            body["scope"] = " ".join(sorted(granted))
        return _answer(body, 200)

    def _too_complex(self, query: object) -> Response | None:
        """`max_root_fields`, as the sandbox server refuses a document too large."""
        limit = self.settings.max_root_fields
        if limit is None or not isinstance(query, str):
            return None
        document, _ = _api().document(query)
        roots = sum(
            len(d.selection_set.selections)
            for d in (document.definitions if document else ())
            if isinstance(d, OperationDefinitionNode)
        )
        if roots <= limit:
            return None
        self.server_counters.errors["TooComplex"] += 1
        message = f"Query is too complex: {roots} root fields, at most {limit} are allowed."
        return _refusal(message, "TooComplex")

    def _context(self, scopes: frozenset[str]) -> _Aimed:
        now = time.monotonic()
        self.store.flush(now)
        return _Aimed(
            store=self.store,
            faults=self.settings,
            counters=self.server_counters,
            scopes=scopes,
            now=now,
        )

    def _match(self, number: int, call: Call, *, fatal: bool) -> Rule | None:
        for rule in self.rules:
            if (rule.fault.kind == "fatal") == fatal and rule.matches(number, call):
                rule.hits.append(number)
                return rule
        return None

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


_AUTH = {"code": "AuthenticationFailed"}


def _answer(body: Mapping[str, Any], status: int) -> Response:
    return Response(status, {"Content-Type": "application/json"}, json.dumps(body))


def _refusal(message: str, code: str) -> Response:
    return _answer({"errors": [{"message": message, "extensions": {"code": code}}]}, 400)


def _check_items(call: Call) -> None:
    if not any(key in call.args for key in ITEM_ARGUMENTS):
        raise ValueError(f"Fault.failed_items needs a bulk or membership call, not {call.field}")


def _without_items(
    field: str, args: Mapping[str, Any], items: tuple[str, ...] | None
) -> tuple[dict[str, Any], list[str]]:
    """The arguments without the items meant to fail, and those items in argument order."""
    kept = dict(args)
    failed: list[str] = []
    for key in ITEM_ARGUMENTS:
        if key not in kept:
            continue
        given = [str(v) for v in kept[key] or ()]
        failing = [v for v in given if items is None or v in items]
        failed += failing
        kept[key] = [v for v in given if v not in failing]
    return kept, failed


def _with_failed(data: Any, failed: list[str]) -> Any:
    """Add `failed` to the answer's failedIds / failedRefs, whichever it carries."""
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


# ------------------------------------------------------------------------- the fake


class FakePluvo(SandboxTransport, PluvoClient):
    """`PluvoClient` over its own `SandboxTransport`: one object to hand the engine as
    its `PluvoApi`, to inject faults into and to read the state and records from.

    Recorded beyond the transport's `calls` and `batches`:
    - `results`: every CallResult `run_calls` gave, in the order it gave them (aligned
      with `calls` as long as nothing was sent twice);
    - `announced`: the indexes each `before_send` was told (relative to its run_calls);
    - `counters`: the client's own (requests sent, retries included; mutation calls);
    - `opened`: how often it was entered as an async context manager.

    Usable without entering it (the transport is always open), and entered any number
    of times: `api_factory=lambda config: fake` serves several runs with one fake.
    """

    def __init__(
        self,
        *,
        seed: Seed | None = None,
        settings: Faults | None = None,
        batch_size: int = 25,
        concurrency: int = 1,
        scopes: Iterable[str] | None = None,
        report_scopes: bool = True,
        inline_arguments: bool = False,
        pluvo: Mapping[str, Any] | None = None,
    ) -> None:
        """`seed` is the sandbox's (default: its six USER categories, no users);
        `inline_arguments` sends literals instead of variables, as
        `pluvo.inline_arguments` does. `pluvo` overrides the client's other settings
        (`max_retries`, `backoff_base`, `outage_timeout`, ...); by default it retries
        nothing and backs off a millisecond."""
        if batch_size < 1 or concurrency < 1:
            raise ValueError("batch_size and concurrency must be at least 1")
        SandboxTransport.__init__(
            self, seed=seed, settings=settings, scopes=scopes, report_scopes=report_scopes
        )
        self.concurrency = concurrency
        self.results: list[CallResult] = []
        self.announced: list[tuple[int, ...]] = []
        self.opened = 0
        config = PluvoConfig.model_validate(
            {
                "url": URL,
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "batch_size": batch_size,
                "concurrency": concurrency,
                "max_retries": 0,
                "backoff_base": 0.001,
                "backoff_max": 0.001,
                "inline_arguments": inline_arguments,
                **(pluvo or {}),
            }
        )
        PluvoClient.__init__(self, config, transport=self)

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    @batch_size.setter
    def batch_size(self, size: int) -> None:
        """Calls per request from the next `run_calls` on, as if configured so."""
        self.config = self.config.model_copy(update={"batch_size": size})
        self.sender.batch_limit = size

    async def __aenter__(self) -> Self:
        """Counted in `opened`, so a test can tell the API was used."""
        self.opened += 1
        await PluvoClient.__aenter__(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await PluvoClient.__aexit__(self, exc_type, exc, traceback)

    async def run_calls(
        self,
        calls: Sequence[Call],
        *,
        on_result: OnResult | None = None,
        before_send: BeforeSend | None = None,
        keep: bool = True,
        spread: bool = False,
    ) -> list[CallResult]:
        """`PluvoClient.run_calls` itself, its hooks watched for the records."""

        def announce(indexes: Sequence[int]) -> Any:
            self.announced.append(tuple(indexes))
            return before_send(indexes) if before_send is not None else None

        def record(index: int, result: CallResult) -> Any:
            self.results.append(result)
            return on_result(index, result) if on_result is not None else None

        return await PluvoClient.run_calls(
            self, calls, on_result=record, before_send=announce, keep=keep, spread=spread
        )

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
        self.counters = type(self.counters)()
        self.server_counters.reset()


__all__ = [
    "ITEM_ARGUMENTS",
    "FakePluvo",
    "Fault",
    "Rule",
    "SandboxTransport",
    "subject_refs",
]
