"""The one way the engine talks to Pluvo: batched, concurrent, retried, re-authenticated.

Transport choice. gql is used for what it is good at, parsing and checking GraphQL
documents (`gql.gql`, graphql-core underneath), and the POSTs go through one plain
aiohttp ClientSession. gql's AIOHTTPTransport hides what this client must see: the
status and headers of a 429 (Retry-After) or a 3xx (it follows redirects, which drop
POST bodies against Pluvo's slash-less URLs), a 401 to re-authenticate on and retry,
and the `data` of an aliased batch next to the `errors` of its failed aliases (it
raises on the first error). One session per client, its pool sized to the
concurrency, keeps connections alive across the thousands of requests of a run.

Variables. A batch's arguments travel as variables typed from a schema (the bundled
one, or `schema=` from live introspection), so batches of one shape are one document
text and Pluvo's parse/validate cost is paid once per shape, not once per batch; see
ops.render_batch. Variable names carry the alias, which lets a refused document be
salvaged: a value Pluvo cannot coerce fails only its call, and refused variable types
switch those fields to literals. `pluvo.inline_arguments` sends literals throughout.

Retrying mutations. A batch that timed out or whose connection dropped may have been
applied by Pluvo before the failure reached us; sending it again is only safe because
every mutation the executor sends is idempotent (upsert by ref, set membership,
archive, set values). A non-idempotent mutation (e.g. `createUser`) must not go
through `run_calls` with retries.

Errors. A GraphQL error whose `path[0]` is an alias is that call's RecordError; the
other calls of the batch keep their data. Failures of the whole request are
TransientError once retries are exhausted (5xx, 429, timeouts, drops) or FatalError
immediately (refused credentials, 3xx, missing scope, a document Pluvo rejects); a
FatalError stops the chunks that have not been sent yet. Messages carry the operation
name and a short reason, never the token, the secret or the payload.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import aiohttp
from graphql import FieldNode, GraphQLError, GraphQLSchema, OperationDefinitionNode

from sync import stopping
from sync.config.pluvo import PluvoConfig
from sync.errors import (
    ConflictError,
    FatalError,
    PluvoError,
    RecordError,
    StoppedError,
    TransientError,
)
from sync.logs import redact
from sync.pluvo import ops
from sync.pluvo.auth import TokenProvider
from sync.pluvo.http import (
    AdaptiveLimiter,
    Pacer,
    Throttled,
    Unavailable,
    backoff_delay,
    parse_retry_after,
    redirect_error,
    transport_failure,
)
from sync.pluvo.ops import Call, MembershipFields
from sync.pluvo.reads import MAX_PAGE, PAGE_INFO, read_connection
from sync.pluvo.results import (
    CallResult,
    ExtraCategory,
    GroupInfo,
    Member,
)
from sync.pluvo.schema import ArgumentTypes, argument_types

log = logging.getLogger("sync.pluvo")

OnResult = Callable[[int, CallResult], Awaitable[None] | None]
BeforeSend = Callable[[Sequence[int]], Awaitable[None] | None]

# Which scope each root field needs (any one of the tuple). Which one
# updateExtraCategoryValues needs is undocumented, hence two candidates.
FIELD_SCOPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("user", "users", "paginatedUsers"), ("users.read",)),
    **dict.fromkeys(
        ("createUser", "updateUser", "updateOrCreateUser", "archiveUsers"), ("users.write",)
    ),
    **dict.fromkeys(("group", "groups", "paginatedGroups"), ("groups.read",)),
    **dict.fromkeys(
        (
            "createGroup",
            "updateGroup",
            "deleteGroups",
            "addUsersToGroup",
            "removeUsersFromGroup",
            "addManagersToGroup",
            "removeManagersFromGroup",
        ),
        ("groups.write",),
    ),
    "updateExtraCategoryValues": ("extra_categories.write", "users.write"),
}

_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


@dataclass
class ClientCounters:
    """What a run cost; reported by the executor and asserted by tests."""

    requests: int = 0
    mutations: int = 0
    retries: int = 0
    throttled: int = 0
    reauths: int = 0


class _Rejected(FatalError):
    """Pluvo refused the whole document; `errors` lets a batch salvage its calls."""

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message, hint=_advice(errors))
        self.errors = list(errors)


class _TooLarge(FatalError):
    """Pluvo refused a request for its size (complexity, depth, body size): a smaller
    batch may pass."""


_TOO_LARGE = re.compile(
    r"too ?complex|complexity|too deep|max(imum)? ?depth|too (large|big|many)|"
    r"request entity|payload|body size|exceed",
    re.IGNORECASE,
)


def _size_refusal(errors: Sequence[Mapping[str, Any]]) -> bool:
    return any(_TOO_LARGE.search(f"{_code(e)} {e.get('message') or ''}") for e in errors)


_RESULT_FIELDS = {"ids": ("addedIds", "removedIds"), "refs": ("addedRefs", "removedRefs")}


def _advice(errors: Sequence[Mapping[str, Any]]) -> str | None:
    """What to change when a refusal is one the config can settle (as doctor says)."""
    text = " ".join(str(e.get("message") or "") for e in errors)
    for setting, fields in _RESULT_FIELDS.items():
        other = "refs" if setting == "ids" else "ids"
        if any(f"Cannot query field '{f}'" in text for f in fields):
            return (
                f"this Pluvo does not offer the {setting} membership result fields: set "
                f"pluvo.membership_result_fields: {other} (`pluvo-sync doctor` checks this)"
            )
    return None


_VARIABLE = re.compile(r"\$a(\d+)_")
# A value Pluvo could not coerce. graphql-core 3.3 says "has invalid value", 3.2 and 2
# (older graphene) "got invalid value"; a null for a non-null is "was not provided".
_VARIABLE_VALUE = re.compile(
    r"\$a(\d+)_\w*['\"]? (?:(?:has|got) invalid value|of required type .* was not provided)"
)


class _AuthRejected(Exception):
    """Internal: the token was refused (401 or an Auth* error); renew once and retry."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.reason = reason


class PluvoClient:
    """Async context manager owning the HTTP session, the token and the rate policy."""

    def __init__(
        self,
        config: PluvoConfig,
        *,
        membership_result_fields: MembershipFields | None = None,
        increase_after: int = 10,
        schema: GraphQLSchema | None = None,
    ) -> None:
        """`schema` types the variables of batches (e.g. introspected from the live
        Pluvo); without it the bundled schema does. `config.inline_arguments` turns
        variables off altogether.
        """
        self.config = config
        self.argument_types: ArgumentTypes | None = (
            None if config.inline_arguments else argument_types(schema)
        )
        self.membership_result_fields: MembershipFields = (
            membership_result_fields or config.membership_result_fields
        )
        self.counters = ClientCounters()
        self.batch_limit = config.batch_size
        """Calls per request; halved for good when Pluvo refuses a batch as too large."""
        self._last_answer = time.monotonic()
        self._outage: FatalError | None = None
        self.limiter = AdaptiveLimiter(config.concurrency, increase_after=increase_after)
        self._pacer = Pacer(config.requests_per_second)
        self._session: aiohttp.ClientSession | None = None
        self._auth: TokenProvider | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PluvoClient:
        connector = aiohttp.TCPConnector(limit=self.config.concurrency + 1)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=self.config.timeout, sock_connect=self.config.connect_timeout
            ),
            headers={"User-Agent": "pluvo-sync"},
        )
        self._auth = TokenProvider(self.config, self._session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._session is not None:
            await self._session.close()
        self._session = None

    @property
    def granted_scopes(self) -> frozenset[str] | None:
        return self._auth.granted_scopes if self._auth else None

    @property
    def token_requests(self) -> int:
        return self._auth.fetches if self._auth else 0

    # ------------------------------------------------------------------ raw documents

    async def execute(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send one document; its `data`, or the first error raised as a PluvoError."""
        from gql import gql  # only raw documents (doctor, tools) use gql: loaded for them

        try:
            document = gql(query).document
        except GraphQLError as exc:
            raise FatalError(f"invalid GraphQL document: {exc.message}") from None
        operation = next(
            (d for d in document.definitions if isinstance(d, OperationDefinitionNode)), None
        )
        fields = [
            s.name.value
            for s in (operation.selection_set.selections if operation else ())
            if isinstance(s, FieldNode)
        ]
        kind = operation.operation.value if operation else "query"
        name = operation.name.value if operation and operation.name else None
        label = name or f"{kind} {' '.join(fields[:3])}".strip()
        body = await self._request(query, variables, label, fields)
        return _data_or_raise(body, label)

    async def run_calls(
        self,
        calls: Sequence[Call],
        *,
        on_result: OnResult | None = None,
        before_send: BeforeSend | None = None,
        keep: bool = True,
        spread: bool = False,
    ) -> list[CallResult]:
        """Send calls as aliased batches; one CallResult per call, in input order.

        Chunks of `batch_size` calls go out concurrently (the limiter bounds them);
        with `spread`, smaller chunks when there are too few to fill the concurrency
        (see `chunk_size`);
        `before_send` sees the indexes of a chunk just before its first request, so
        the executor can journal them `started` and a killed run's successor knows
        which calls never left; `on_result` sees each call's result as soon as its
        chunk is back, so the executor can journal it before the next chunk returns.

        `calls` is only indexed, a chunk at a time, so a sequence that renders each
        call when asked keeps a phase of a million operations from existing as calls
        all at once; `keep=False` (for a caller that takes results from `on_result`)
        returns an empty list instead of holding every answer until the end.
        """
        if not calls:
            return []
        kind = calls[0].operation
        if isinstance(calls, list | tuple) and any(c.operation != kind for c in calls):
            raise ValueError("run_calls needs calls of one kind: all mutations or all queries")
        size = chunk_size(len(calls), self.config.batch_size, self.config.concurrency, spread)
        pending = deque(
            range(start, min(start + size, len(calls))) for start in range(0, len(calls), size)
        )
        results: list[CallResult | None] = [None] * len(calls) if keep else []
        fatal: FatalError | None = None

        async def worker() -> None:
            nonlocal fatal
            while pending:
                indexes = pending.popleft()
                chunk = [calls[i] for i in indexes]
                if any(c.operation != kind for c in chunk):
                    raise ValueError(
                        "run_calls needs calls of one kind: all mutations or all queries"
                    )
                stop = stopping.requested()
                if fatal is None and stop is not None:
                    fatal = StoppedError(stop)  # nothing more leaves; in flight finishes
                if fatal is not None:
                    chunk_results = [CallResult(c, None, fatal) for c in chunk]
                else:
                    if before_send is not None:
                        announced = before_send(indexes)
                        if inspect.isawaitable(announced):
                            await announced
                    chunk_results = await self._run_chunk(chunk)
                    first = chunk_results[0].error
                    if isinstance(first, FatalError) and all(
                        r.error is first for r in chunk_results
                    ):
                        fatal = fatal or first
                for index, result in zip(indexes, chunk_results, strict=True):
                    if keep:
                        results[index] = result
                    if on_result is not None:
                        outcome = on_result(index, result)
                        if inspect.isawaitable(outcome):
                            await outcome

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.config.concurrency, len(pending))):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            # A hook failing (the store locked while journaling) is the caller's error,
            # raised as itself so the caller's handlers (a StateError) see it.
            raise failed.exceptions[0] from None
        return [r for r in results if r is not None]

    async def _run_chunk(self, chunk: list[Call]) -> list[CallResult]:
        if chunk[0].operation == "mutation":
            self.counters.mutations += len(chunk)
        results: list[CallResult] = []
        while len(results) < len(chunk):  # the limit may shrink while this chunk goes out
            start = len(results)
            results += await self._send_chunk(chunk[start : start + self.batch_limit])
        return results

    async def _split(self, chunk: list[Call], exc: _TooLarge) -> list[CallResult]:
        """A batch refused for its size goes again in halves, down to single calls;
        the size that passes is kept for the rest of the run. A single call still
        refused is that call's record error, not the run's."""
        if len(chunk) == 1:
            error = RecordError(
                f"{chunk[0].field}: Pluvo refuses this call even on its own as too large "
                f"({exc.message})"
            )
            return [CallResult(chunk[0], None, error)]
        half = (len(chunk) + 1) // 2
        if self.batch_limit > len(chunk) // 2:
            self.batch_limit = max(1, len(chunk) // 2)
            log.warning(
                "Pluvo refused a batch of %d calls as too large; sending at most %d per "
                "request from now on (set pluvo.batch_size: %d to start there)",
                len(chunk),
                self.batch_limit,
                self.batch_limit,
            )
        first = await self._send_chunk(chunk[:half])
        return first + await self._send_chunk(chunk[half:])

    async def _send_chunk(self, chunk: list[Call]) -> list[CallResult]:
        operation = chunk[0].operation
        fields = sorted({c.field for c in chunk})
        label = f"{operation} {'+'.join(fields)} x{len(chunk)}"
        document, variables = ops.render_batch(chunk, types=self.argument_types, name="SyncBatch")
        try:
            body = await self._request(document, variables, label, fields)
        except _TooLarge as exc:
            return await self._split(chunk, exc)
        except _Rejected as exc:
            return await self._rejected(chunk, exc, bool(variables))
        except PluvoError as exc:
            log.warning("%s failed: %s", label, exc)
            return [CallResult(c, None, exc) for c in chunk]
        data = body.get("data")
        data = data if isinstance(data, dict) else {}
        own: dict[int, RecordError] = {}
        stray: list[Mapping[str, Any]] = []
        for error in _errors(body):
            path = error.get("path")
            index = ops.index_of_alias(path[0]) if isinstance(path, list) and path else None
            if index is not None and index < len(chunk):
                own.setdefault(index, _record_error(chunk[index].field, error))
            else:
                stray.append(error)
        if stray and not any(data.get(ops.alias_for(i)) is not None for i in range(len(chunk))):
            if _size_refusal(stray):
                too_large = _TooLarge(f"{label}: Pluvo refused the request as too large")
                return await self._split(chunk, too_large)
            rejected = _Rejected(
                f"{label}: Pluvo rejected the document ({_reason(stray[0])})", stray
            )
            return await self._rejected(chunk, rejected, bool(variables))
        results = []
        for i, call in enumerate(chunk):
            alias = ops.alias_for(i)
            if i in own:
                results.append(CallResult(call, None, own[i]))
            elif alias in data:
                results.append(CallResult(call, data[alias]))
            else:
                reason = _reason(stray[0]) if stray else "no result in the answer"
                results.append(CallResult(call, None, RecordError(f"{call.field}: {reason}")))
        return results

    async def _rejected(
        self, chunk: list[Call], exc: _Rejected, had_variables: bool
    ) -> list[CallResult]:
        """Pluvo refused a whole document: salvage what variables make salvageable.

        Variables are named after their alias, so a value Pluvo could not coerce
        (`Variable '$a3_user' has invalid value at .language`) is that call's record
        error, and the other calls are sent again without it. Refused variable *types*
        (a live schema naming its inputs differently) are fixed by literals, which need
        names only: the fields concerned go literal for the rest of the client's life.
        Anything else (a field Pluvo lacks) fails the batch as before.
        """
        if had_variables and self.argument_types is not None and exc.errors:
            bad: dict[int, RecordError] = {}
            retype: set[str] = set()
            for error in exc.errors:
                message = str(error.get("message") or "")
                value = _VARIABLE_VALUE.search(message)
                named = _VARIABLE.search(message)
                if value and int(value.group(1)) < len(chunk):
                    index = int(value.group(1))
                    bad.setdefault(index, _record_error(chunk[index].field, error))
                elif named and int(named.group(1)) < len(chunk):
                    retype.add(chunk[int(named.group(1))].field)
                elif "Unknown type" in message:
                    retype.update(c.field for c in chunk)
                else:
                    retype = set()
                    bad = {}
                    break
            if retype:
                log.warning(
                    "Pluvo refused the variable types of %s (%s); sending %s with literals "
                    "from now on (pluvo.inline_arguments: true, or `doctor`, settles this)",
                    "+".join(sorted(retype)),
                    _reason(exc.errors[0]),
                    "them" if len(retype) > 1 else "it",
                )
                self.argument_types = self.argument_types.without(frozenset(retype))
                return await self._send_chunk(chunk)
            if bad:
                rest = [i for i in range(len(chunk)) if i not in bad]
                again = await self._send_chunk([chunk[i] for i in rest]) if rest else []
                results: list[CallResult | None] = [None] * len(chunk)
                for index, refused in bad.items():
                    results[index] = CallResult(chunk[index], None, refused)
                for index, result in zip(rest, again, strict=True):
                    results[index] = result
                return [r for r in results if r is not None]
        log.warning("%s", exc)
        return [CallResult(c, None, exc) for c in chunk]

    # ------------------------------------------------------------------ the request loop

    async def _request(
        self,
        document: str,
        variables: Mapping[str, Any] | None,
        label: str,
        fields: Sequence[str],
    ) -> dict[str, Any]:
        """POST one document until it gets an answer worth interpreting.

        429s wait (Retry-After, shared by the whole client) and count apart from
        failures, bounded by `2 * max_retries + 4`, since a throttled request was not
        processed and will succeed once the client slows down.
        """
        if self._outage is not None:
            raise self._outage
        config = self.config
        failures = throttles = renewals = 0
        refused_fresh = checked = False
        while True:
            provider = self._auth_provider()
            started = provider.now()
            try:
                if not checked:
                    # The token answer says which scopes were granted: a missing one
                    # fails here, before the first request that needs it is sent.
                    await provider.token()
                    self._check_scopes(fields)
                    checked = True
                return await self._attempt(document, variables, label, fields)
            except _AuthRejected as exc:
                provider.invalidate(exc.token)
                issued = provider.issued_at(exc.token)
                # A token issued during this very attempt and refused at once is a
                # refusal; one issued before it (tokens expire mid-run, and a retry may
                # have waited out a backoff longer than a short token lives) has expired
                # and is renewed as often as that happens.
                fresh = issued is not None and issued >= started
                if fresh and refused_fresh:
                    raise FatalError(
                        f"{label}: Pluvo refused a freshly issued token ({exc.reason})",
                        hint="check the API client's status and scopes in Pluvo",
                    ) from None
                refused_fresh = refused_fresh or fresh
                renewals += 1
                if renewals > 2 * config.max_retries + 4:
                    raise TransientError(
                        f"{label}: tokens kept expiring ({renewals} renewals)"
                    ) from None
                self.counters.reauths += 1
                log.info("%s: token refused (%s), renewing it", label, exc.reason)
            except Throttled as exc:
                throttles += 1
                if throttles > 2 * config.max_retries + 4:
                    raise TransientError(
                        f"{label}: still rate limited after {throttles} attempts"
                    ) from None
                delay = exc.retry_after
                if delay is None:
                    delay = backoff_delay(
                        throttles - 1, base=config.backoff_base, cap=config.backoff_max
                    )
                self.counters.retries += 1
                log.info("%s: rate limited, waiting %.1f s", label, delay)
                self._pacer.pause(delay)
            except TransientError as exc:
                failures += 1
                self._check_outage(exc)
                if failures > config.max_retries:
                    raise TransientError(
                        f"{exc.message}; gave up after {failures} attempts ({label})"
                    ) from None
                delay = backoff_delay(
                    failures - 1, base=config.backoff_base, cap=config.backoff_max
                )
                if isinstance(exc, Unavailable):
                    delay = max(delay, exc.retry_after)
                # Never wait past the point where the breaker would trip: an outage ends
                # the run within outage_timeout, whatever the backoff or Retry-After.
                deadline = self._last_answer + config.outage_timeout - time.monotonic()
                delay = min(delay, max(0.0, deadline) + 0.05)
                if isinstance(exc, Unavailable):
                    self._pacer.pause(delay)
                self.counters.retries += 1
                log.info("%s: %s; retry %d in %.1f s", label, exc.message, failures, delay)
                await asyncio.sleep(delay)

    def _check_outage(self, failure: TransientError) -> None:
        """The circuit breaker: after `outage_timeout` seconds in which no request got an
        answer from Pluvo (only 5xx, drops or timeouts), stop sending for good. Refused
        records are answers and never trip it."""
        silent = time.monotonic() - self._last_answer
        if self._outage is None and silent > self.config.outage_timeout:
            self._outage = FatalError(
                f"Pluvo has not answered for {silent:.0f} s (last: {failure.message}); "
                "stopping, and what was not sent is planned again by the next run",
                hint="pluvo.outage_timeout sets how long an outage is waited out",
            )
            log.error("%s", self._outage)
        if self._outage is not None:
            raise self._outage

    async def _attempt(
        self,
        document: str,
        variables: Mapping[str, Any] | None,
        label: str,
        fields: Sequence[str],
    ) -> dict[str, Any]:
        session = self._session_or_fail()
        url = self.config.graphql_url
        generation = await self.limiter.acquire()
        try:
            await self._pacer.wait()
            token = await self._auth_provider().token()
            self.counters.requests += 1
            payload: dict[str, Any] = {"query": document}
            if variables:
                payload["variables"] = dict(variables)
            try:
                async with session.post(
                    url,
                    json=payload,
                    headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                    allow_redirects=False,
                ) as resp:
                    status = resp.status
                    retry_after = resp.headers.get("Retry-After")
                    text = await resp.text()
                if status < 500:
                    self._last_answer = time.monotonic()  # Pluvo is there, whatever it said
            except _TRANSPORT_ERRORS as exc:
                raise TransientError(
                    transport_failure(exc, url, timeout=self.config.timeout)
                ) from None
            if 300 <= status < 400:
                raise redirect_error(status, url)
            if status == 401:
                raise _AuthRejected(token, "HTTP 401")
            if status == 403:
                raise self._scope_error(label, fields, "HTTP 403")
            if status == 429:
                self.counters.throttled += 1
                self.limiter.on_throttle(generation)
                raise Throttled(f"{label}: 429", retry_after=parse_retry_after(retry_after))
            if status >= 500:
                wait = parse_retry_after(retry_after) if status == 503 else None
                if wait is not None:
                    raise Unavailable(f"Pluvo answered {status}", retry_after=wait)
                raise TransientError(f"Pluvo answered {status}")
            body = _json_object(text)
            if status == 413 or (
                status == 400 and body is not None and _size_refusal(_errors(body))
            ):
                reason = _reason(_errors(body)[0]) if body and _errors(body) else f"HTTP {status}"
                raise _TooLarge(f"{label}: Pluvo refused the request as too large ({reason})")
            if body is None:
                if status == 200:
                    raise TransientError("unreadable answer (not a JSON object)")
                raise FatalError(f"{label}: Pluvo answered {status}")
            for error in _errors(body):
                code = _code(error)
                if "Auth" in code:
                    raise _AuthRejected(token, code)
                if "Permission" in code or "Forbidden" in code:
                    raise self._scope_error(label, fields, code)
            if status != 200:
                errors = _errors(body)
                reason = _reason(errors[0]) if errors else f"HTTP {status}"
                raise _Rejected(f"{label}: Pluvo rejected the document ({reason})", errors)
            await self.limiter.on_success()
            return body
        finally:
            await self.limiter.release()

    def _check_scopes(self, fields: Sequence[str]) -> None:
        """Fail before sending when the token answer said a needed scope is not granted."""
        granted = self.granted_scopes
        if granted is None:
            return
        for field in fields:
            needed = FIELD_SCOPES.get(field)
            if needed and not granted.intersection(needed):
                raise _missing_scope(field, needed, "not granted to the token")

    def _scope_error(self, label: str, fields: Sequence[str], reason: str) -> FatalError:
        granted = self.granted_scopes or frozenset()
        for field in fields:
            needed = FIELD_SCOPES.get(field)
            if needed and not granted.intersection(needed):
                return _missing_scope(field, needed, reason)
        needed_all = sorted({s for f in fields for s in FIELD_SCOPES.get(f, ())})
        return FatalError(
            f"{label}: Pluvo denied permission ({reason}); it needs the scope "
            f"{' or '.join(needed_all) or 'unknown'}",
            hint="check the API client's scopes in Pluvo and pluvo.scopes",
        )

    def _session_or_fail(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("use PluvoClient as `async with PluvoClient(config) as client`")
        return self._session

    def _auth_provider(self) -> TokenProvider:
        self._session_or_fail()
        assert self._auth is not None
        return self._auth

    # ------------------------------------------------------------------ reads

    async def paginate(
        self,
        path: Sequence[tuple[str, Mapping[str, Any]]],
        node_selection: str,
        *,
        page_size: int = MAX_PAGE,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every node of a Relay connection reached through `path`, page by page.

        `path` is the chain of fields with their arguments, the last one being the
        connection: `[("group", {"ref": "g1"}), ("users", {})]`. A missing parent
        (unknown group) yields nothing. A cursor seen twice is a server bug that would
        loop forever, so it stops the read.
        """
        first = max(1, min(page_size, MAX_PAGE))
        label = "read " + ".".join(name for name, _ in path)
        after: str | None = None
        seen: set[str] = set()
        while True:
            args = {**path[-1][1], "first": first}
            if after is not None:
                args["after"] = after
            levels = [*path[:-1], (path[-1][0], args)]
            inner = f"{PAGE_INFO} edges {{ node {{ {node_selection} }} }}"
            for name, level_args in reversed(levels):
                inner = Call(name, level_args, inner, "query").render()
            data = _data_or_raise(
                await self._request(f"query Page {{ {inner} }}", None, label, [path[0][0]]),
                label,
            )
            connection: Any = data
            for name, _ in path:
                connection = connection.get(name) if isinstance(connection, dict) else None
            if not isinstance(connection, dict):
                return
            for edge in connection.get("edges") or ():
                node = edge.get("node") if isinstance(edge, dict) else None
                if node is not None:
                    yield node
            page = connection.get("pageInfo") or {}
            cursor = page.get("endCursor")
            if not page.get("hasNextPage") or not cursor:
                return
            if cursor in seen:
                raise FatalError(f"{label}: Pluvo returned the cursor of a page already read")
            seen.add(cursor)
            after = cursor

    async def iter_users(
        self,
        *,
        archived: bool | None = None,
        page_size: int = MAX_PAGE,
        selection: str = ops.USER_SELECTION,
    ) -> AsyncIterator[dict[str, Any]]:
        args = {} if archived is None else {"archived": archived}
        async for node in self.paginate([("paginatedUsers", args)], selection, page_size=page_size):
            yield node

    async def count_users(self, *, archived: bool | None = None) -> int:
        args: dict[str, Any] = {"first": 1}
        if archived is not None:
            args["archived"] = archived
        call = Call("paginatedUsers", args, "count", "query")
        data = await self.execute(f"query CountUsers {{ {call.render()} }}")
        return int((data.get("paginatedUsers") or {}).get("count") or 0)

    async def get_user(
        self, *, ref: str | None = None, email: str | None = None, id: str | None = None
    ) -> dict[str, Any] | None:
        call = ops.get_user(ref=ref, email=email, id=id)
        result = (await self.run_calls([call]))[0]
        if result.error is not None:
            raise result.error
        return result.data if isinstance(result.data, dict) else None

    async def list_groups(self, *, members: bool = True, managers: bool = True) -> list[GroupInfo]:
        """Every group, with members and managers read concurrently within the limit.

        The group list is read as the users are (sync.pluvo.reads: offset pages side by
        side, checked, cursors as the fallback). Members and managers can only follow
        cursors (`Group.users` takes no offset), so groups are read side by side instead.
        """
        listed = await read_connection(self, "paginatedGroups", {}, "id ref name", what="groups")
        groups = listed.nodes
        gate = asyncio.Semaphore(self.config.concurrency)

        async def people(group: Mapping[str, Any], relation: str) -> tuple[Member, ...]:
            selector = {"ref": group["ref"]} if group.get("ref") else {"id": group["id"]}
            async with gate:
                found = [
                    Member(id=str(n["id"]), ref=n.get("ref"), email=n.get("email"))
                    async for n in self.paginate(
                        [("group", selector), (relation, {})], "id ref email"
                    )
                ]
            return tuple(found)

        async def one(group: Mapping[str, Any]) -> GroupInfo:
            return GroupInfo(
                id=str(group["id"]),
                ref=group.get("ref"),
                name=group.get("name"),
                members=await people(group, "users") if members else (),
                managers=await people(group, "managers") if managers else (),
            )

        async with asyncio.TaskGroup() as tasks:
            pending = [tasks.create_task(one(g)) for g in groups]
        return [t.result() for t in pending]

    async def list_extra_categories(self, content_type: str = "USER") -> list[ExtraCategory]:
        call = Call(
            "extraCategories",
            {"contentType": ops.Enum(content_type)},
            "id ref title categoryType forModelTypes choiceOptions { id ref stringValue }",
            "query",
        )
        data = await self.execute(f"query ExtraCategories {{ {call.render()} }}")
        return [ExtraCategory.parse(c) for c in data.get("extraCategories") or ()]


# ---------------------------------------------------------------------- helpers


def chunk_size(calls: int, batch_size: int, concurrency: int, spread: bool) -> int:
    """Calls per request: `batch_size`, or with `spread` fewer, so that the calls fill
    as many requests as may be in flight.

    Pluvo resolves the aliases of one document one after the other, so 20 reads in one
    request cost 20 reads' time on one of its workers, while 3 in each of 7 requests
    side by side cost 3. Mutations are not spread: fewer requests matter more there
    than the wall time of the last batch.
    """
    if not spread:
        return batch_size
    return max(1, min(batch_size, math.ceil(calls / max(1, concurrency))))


def _missing_scope(field: str, needed: tuple[str, ...], reason: str) -> FatalError:
    scope = " or ".join(needed)
    return FatalError(
        f"missing Pluvo scope {scope} (needed for {field}; {reason})",
        hint=f"grant {scope} to the API client in Pluvo and list it in pluvo.scopes",
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _errors(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, Mapping)]


def _code(error: Mapping[str, Any]) -> str:
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, Mapping) else None
    return str(code) if code else ""


def _reason(error: Mapping[str, Any], limit: int = 200) -> str:
    """A short, redacted reason: Pluvo's message, which may quote a value, is truncated."""
    message = redact(" ".join(str(error.get("message") or "unknown error").split()))
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    code = _code(error)
    return f"{code}: {message}" if code else message


def _record_error(field: str, error: Mapping[str, Any]) -> RecordError:
    """One alias's error, typed: callers decide by the class, never by the text.

    Pluvo documents no code for "already exists"; the sandbox says `Conflict`, and a
    message saying so is read the same way, here at the boundary and nowhere else.
    """
    code = _code(error) or None
    message = f"{field}: {_reason(error)}"
    if (code or "").lower() == "conflict" or "already exists" in message.lower():
        return ConflictError(message, code=code)
    return RecordError(message, code=code)


def _data_or_raise(body: Mapping[str, Any], label: str) -> dict[str, Any]:
    errors = _errors(body)
    data = body.get("data")
    if errors:
        error = errors[0]
        path = error.get("path")
        if isinstance(path, list) and path:
            raise RecordError(f"{label}: {_reason(error)}", code=_code(error) or None)
        raise FatalError(f"{label}: Pluvo rejected the document ({_reason(error)})")
    if not isinstance(data, dict):
        raise TransientError(f"{label}: answer without data")
    return data


__all__ = ["MAX_PAGE", "BeforeSend", "CallResult", "ClientCounters", "OnResult", "PluvoClient"]
