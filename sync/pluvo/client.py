"""The one way the engine talks to Pluvo: batched, concurrent, retried, re-authenticated.

What lives where. This module schedules: it cuts a phase's calls into chunks, sends
them side by side within the concurrency, stops sending on a fatal error or a stop
request, and hands each result to the caller's hooks as soon as it is back; it also
holds the reads the engine asks for by name. A chunk becomes requests in
sync.pluvo.batches (rendering with typed variables, size splitting, the salvage of a
refused document, per-alias results); a request goes through sync.pluvo.channel
(token, scopes, limiter and pacing, retries, 429s, the circuit breaker, the reading of
status and body); the POST itself is a transport's (sync.pluvo.transport), aiohttp in
production (sync.pluvo.aiohttp_transport), the sandbox's executor in process for tests.
gql is used only to parse raw documents (`execute`).

Retrying mutations. A batch that timed out or whose connection dropped may have been
applied by Pluvo before the failure reached us; sending it again is only safe because
every mutation the executor sends is idempotent (upsert by ref, set membership,
archive, set values). A non-idempotent mutation (e.g. `createUser`) must not go
through `run_calls` with retries.

Errors. A call's own GraphQL error is its RecordError; a failure of the whole request
is every call of the batch's TransientError (retries exhausted) or FatalError; a
FatalError stops the chunks that have not been sent yet. Messages carry the operation
name and a short reason, never the token, the secret or the payload.
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from graphql import FieldNode, GraphQLError, GraphQLSchema, OperationDefinitionNode

from sync import stopping
from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError, StoppedError
from sync.pluvo import ops, reads
from sync.pluvo.auth import TokenProvider
from sync.pluvo.batches import Batches
from sync.pluvo.channel import Channel, data_or_raise
from sync.pluvo.http import AdaptiveLimiter
from sync.pluvo.ops import Call, MembershipFields
from sync.pluvo.reads import MAX_PAGE
from sync.pluvo.results import (
    BeforeSend,
    CallResult,
    ClientCounters,
    ExtraCategory,
    GroupInfo,
    OnResult,
)
from sync.pluvo.schema import ArgumentTypes, argument_types
from sync.pluvo.transport import Transport


class PluvoClient:
    """Async context manager owning the transport, the token and the rate policy.

    Without `transport`, entering makes an aiohttp one (and a token of its own) and
    leaving closes it; a transport handed in is its owner's to close, and the client
    may be used, and entered again, for as long as it lives. What the client learned
    (counters, the concurrency limit, batch size, variable types, the breaker)
    outlives each entry.
    """

    def __init__(
        self,
        config: PluvoConfig,
        *,
        membership_result_fields: MembershipFields | None = None,
        increase_after: int = 10,
        schema: GraphQLSchema | None = None,
        transport: Transport | None = None,
    ) -> None:
        """`schema` types the variables of batches (e.g. introspected from the live
        Pluvo); without it the bundled schema does. `config.inline_arguments` turns
        variables off altogether.
        """
        self.config = config
        self.membership_result_fields: MembershipFields = (
            membership_result_fields or config.membership_result_fields
        )
        types: ArgumentTypes | None = None if config.inline_arguments else argument_types(schema)
        self._owns_transport = transport is None
        channel = Channel(config, transport, increase_after=increase_after)
        self.sender = Batches(channel, types, config.batch_size)
        """How calls become requests, with what refusals taught it (batch size, types)."""

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> PluvoClient:
        if self._owns_transport:
            from sync.pluvo.aiohttp_transport import AiohttpTransport

            self.channel.attach(AiohttpTransport(self.config))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_transport:
            transport = self.channel.detach()
            if transport is not None:
                await transport.aclose()

    @property
    def channel(self) -> Channel:
        return self.sender.channel

    @property
    def counters(self) -> ClientCounters:
        return self.channel.counters

    @counters.setter
    def counters(self, counters: ClientCounters) -> None:
        self.channel.counters = counters

    @property
    def limiter(self) -> AdaptiveLimiter:
        return self.channel.limiter

    @property
    def auth(self) -> TokenProvider:
        return self.channel.auth

    @property
    def batch_limit(self) -> int:
        """Calls per request; halved for good when Pluvo refuses a batch as too large."""
        return self.sender.batch_limit

    @property
    def argument_types(self) -> ArgumentTypes | None:
        return self.sender.argument_types

    @property
    def granted_scopes(self) -> frozenset[str] | None:
        return self.channel.granted_scopes

    @property
    def token_requests(self) -> int:
        return self.channel.token_requests

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
        body = await self.channel.request(query, variables, label, fields)
        return data_or_raise(body, label)

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
        sender = self.sender
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
                    chunk_results = await sender.run_chunk(chunk)
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

    # ------------------------------------------------------------------ reads

    def paginate(
        self,
        path: Sequence[tuple[str, Mapping[str, Any]]],
        node_selection: str,
        *,
        page_size: int = MAX_PAGE,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every node of a Relay connection reached through `path`, page by page, by
        cursor (see sync.pluvo.reads.paginate)."""
        return reads.paginate(self, path, node_selection, page_size=page_size)

    async def read_document(
        self, document: str, label: str, fields: Sequence[str]
    ) -> dict[str, Any]:
        """A query's `data`, through the request path; what `paginate` reads with."""
        return data_or_raise(await self.channel.request(document, None, label, fields), label)

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
        """Sent as a batch of one, as every call is (one request path, one error path)."""
        args: dict[str, Any] = {"first": 1}
        if archived is not None:
            args["archived"] = archived
        (result,) = await self.run_calls([Call("paginatedUsers", args, "count", "query")])
        if result.error is not None:
            raise result.error
        data = result.data if isinstance(result.data, Mapping) else {}
        return int(data.get("count") or 0)

    async def get_user(
        self, *, ref: str | None = None, email: str | None = None, id: str | None = None
    ) -> dict[str, Any] | None:
        call = ops.get_user(ref=ref, email=email, id=id)
        result = (await self.run_calls([call]))[0]
        if result.error is not None:
            raise result.error
        return result.data if isinstance(result.data, dict) else None

    async def list_groups(self, *, members: bool = True, managers: bool = True) -> list[GroupInfo]:
        """Every group, with members and managers (see sync.pluvo.reads.list_groups)."""
        return await reads.list_groups(
            self, self.config.concurrency, members=members, managers=managers
        )

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


__all__ = ["MAX_PAGE", "BeforeSend", "CallResult", "ClientCounters", "OnResult", "PluvoClient"]
