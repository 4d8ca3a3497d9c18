"""Reading a whole Relay connection (every user, every group) without a torn list.

Why offsets. Pluvo has no "changed since" filter, so a full read costs count/50 pages,
and following cursors makes each page wait for the one before it: at 20 ms a round
trip, 1,000 pages are 20 s of waiting alone. The first page carries the `count`, so
every other page is known up front (`offset: 50k`); they go out through
`run_calls`, spread over as many requests as `pluvo.concurrency` lets be in flight
(aliased several to a request when there are more pages than that), each through
the client's one request path (token, retries with backoff, 429 handling, the
circuit breaker).

Why checked. Offsets are positions, and so are Pluvo's cursors (graphene's
`arrayconnection:N`): a user created, archived or deleted while the pages are read
shifts every position after it, and a page then repeats a node or skips one. Nothing
in an answer says so except the numbers, so they are checked: every page must report
the count the first page reported, hold exactly the nodes that count implies, and no
node may come twice. A page that executed after the last change reports the new
count, so a change anywhere in the read is seen. (What cannot be seen is one user
added and another removed between the same two pages: the count stays put. No
reading of a list that has no version can see that.)

Why cursors as the fallback. Pluvo's documentation pages the users with `after` only;
`offset` comes from the best-known schema. A Pluvo that ignored `offset` would answer
the first page every time, which the check sees as repeats: the documented cursor
read then takes over. It also gives a list that changed once a second, quieter
window. It is checked the same way, and a list that changed under it too ends the
read with a TransientError: a comparison made from a torn list would report drift
that is not there, and `reconcile --apply` would act on it.

Nested connections (a group's members and managers) take no offset: `paginate` follows
their cursors, one document a page, through the client's request path, and
`list_groups` reads the groups side by side instead.

Page errors are the calls' errors: a transient failure has been retried by the
client already, and any error left stops the read (nothing is compared from part of
a list).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sync.errors import FatalError, PluvoError, TransientError
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult, GroupInfo, Member

log = logging.getLogger("sync.pluvo")

MAX_PAGE = 50
"""Pluvo caps `first` at 50 on paginated fields."""

PAGE_INFO = "pageInfo { hasNextPage endCursor }"


class CallRunner(Protocol):
    """The one thing a read needs: `PluvoClient.run_calls` (or a fake's)."""

    async def run_calls(self, calls: Sequence[Call], *, spread: bool = ...) -> list[CallResult]: ...


class Reader(CallRunner, Protocol):
    """What the cursor reads need besides calls: a raw query's data (PluvoClient)."""

    async def read_document(
        self, document: str, label: str, fields: Sequence[str]
    ) -> dict[str, Any]: ...


class TornReadError(TransientError):
    """The list kept changing while it was read, by offsets and then by cursors."""


@dataclass(frozen=True)
class ConnectionRead:
    """Every node of a connection, in the connection's order.

    count: what the pages agreed the total was. pages: pages asked for, the offset
    pages and, after a fallback, the cursor pages too. by_cursor: the offset pages did
    not add up and the nodes come from the cursor read.
    """

    nodes: tuple[dict[str, Any], ...]
    count: int
    pages: int
    by_cursor: bool = False


@dataclass(frozen=True)
class _Page:
    count: int
    edges: int
    nodes: tuple[dict[str, Any], ...]
    has_next: bool
    end_cursor: str | None


def page_selection(node_selection: str) -> str:
    return f"count {PAGE_INFO} edges {{ node {{ {node_selection} }} }}"


def offset_calls(
    field: str,
    args: Mapping[str, Any],
    node_selection: str,
    count: int,
    *,
    start: int = 0,
    page_size: int = MAX_PAGE,
) -> list[Call]:
    """One query call per page from `start` to `count`, every one of the same shape
    (so every batch of them is one document text for Pluvo to parse once)."""
    size = _page_size(page_size)
    pages = math.ceil((count - start) / size) if count > start else 0
    return [_offset_call(field, args, node_selection, size, start + k * size) for k in range(pages)]


async def read_connection(
    api: CallRunner,
    field: str,
    args: Mapping[str, Any],
    node_selection: str,
    *,
    what: str,
    page_size: int = MAX_PAGE,
) -> ConnectionRead:
    """Every node of the root connection `field(args)`: offset pages side by side,
    checked, and the cursor read when they do not add up. `what` names the list in
    errors and logs ("active users")."""
    size = _page_size(page_size)
    (head,) = await _pages(api, [_offset_call(field, args, node_selection, size, 0)], what)
    rest = await _pages(
        api, offset_calls(field, args, node_selection, head.count, start=size, page_size=size), what
    )
    pages = [head, *rest]
    problem = _torn(pages, head.count, size)
    if problem is None:
        return ConnectionRead(_nodes(pages), head.count, len(pages))
    log.warning("reading %s: %s; reading them again page after page", what, problem)
    again = await read_by_cursor(api, field, args, node_selection, what=what, page_size=size)
    return replace(again, pages=len(pages) + again.pages)


async def read_by_cursor(
    api: CallRunner,
    field: str,
    args: Mapping[str, Any],
    node_selection: str,
    *,
    what: str,
    page_size: int = MAX_PAGE,
) -> ConnectionRead:
    """The documented read alone, checked the same way: the fallback, and the
    baseline the benchmark and tests hold the offset read against."""
    size = _page_size(page_size)
    pages = await _cursor_pages(api, field, args, node_selection, size, what)
    problem = _torn(pages, pages[0].count, size)
    if problem is not None:
        raise TornReadError(
            f"reading {what}: the list changed while it was read ({problem}); "
            "nothing was compared from it",
            hint="run again when Pluvo is quieter",
        )
    return ConnectionRead(_nodes(pages), pages[0].count, len(pages), by_cursor=True)


async def count_of(api: CallRunner, field: str, args: Mapping[str, Any], *, what: str) -> int:
    """The connection's `count` alone (one node asked for: `first: 0` is not documented)."""
    (result,) = await api.run_calls([Call(field, {**args, "first": 1}, "count", "query")])
    if result.error is not None:
        raise PluvoError(f"counting {what} failed: {result.error}")
    data = result.data if isinstance(result.data, Mapping) else {}
    return int(data.get("count") or 0)


async def paginate(
    api: Reader,
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
        data = await api.read_document(f"query Page {{ {inner} }}", label, [path[0][0]])
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


async def list_groups(
    api: Reader, concurrency: int, *, members: bool = True, managers: bool = True
) -> list[GroupInfo]:
    """Every group, with members and managers read concurrently within the limit.

    The group list is read as the users are (offset pages side by side, checked,
    cursors as the fallback). Members and managers can only follow cursors
    (`Group.users` takes no offset), so groups are read side by side instead.
    """
    listed = await read_connection(api, "paginatedGroups", {}, "id ref name", what="groups")
    groups = listed.nodes
    gate = asyncio.Semaphore(concurrency)

    async def people(group: Mapping[str, Any], relation: str) -> tuple[Member, ...]:
        selector = {"ref": group["ref"]} if group.get("ref") else {"id": group["id"]}
        async with gate:
            found = [
                Member(id=str(n["id"]), ref=n.get("ref"), email=n.get("email"))
                async for n in paginate(api, [("group", selector), (relation, {})], "id ref email")
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


# ---------------------------------------------------------------------- helpers


def _page_size(page_size: int) -> int:
    return max(1, min(page_size, MAX_PAGE))


def _offset_call(
    field: str, args: Mapping[str, Any], node_selection: str, size: int, offset: int
) -> Call:
    page_args = {**args, "first": size, "offset": offset}
    return Call(field, page_args, page_selection(node_selection), "query")


async def _pages(api: CallRunner, calls: Sequence[Call], what: str) -> list[_Page]:
    if not calls:
        return []
    results = await api.run_calls(calls, spread=True)
    for result in results:
        if result.error is not None:
            raise PluvoError(f"reading {what} failed: {result.error}")
    return [_page(result.data) for result in results]


def _page(data: Any) -> _Page:
    connection = data if isinstance(data, Mapping) else {}
    edges = connection.get("edges") or ()
    nodes = tuple(
        edge["node"]
        for edge in edges
        if isinstance(edge, Mapping) and isinstance(edge.get("node"), dict)
    )
    info = connection.get("pageInfo") or {}
    return _Page(
        count=int(connection.get("count") or 0),
        edges=len(edges),
        nodes=nodes,
        has_next=bool(info.get("hasNextPage")),
        end_cursor=info.get("endCursor"),
    )


async def _cursor_pages(
    api: CallRunner,
    field: str,
    args: Mapping[str, Any],
    node_selection: str,
    size: int,
    what: str,
) -> list[_Page]:
    """Page after page by `after`; a cursor seen twice would loop forever."""
    selection = page_selection(node_selection)
    pages: list[_Page] = []
    seen: set[str] = set()
    after: str | None = None
    while True:
        page_args = {**args, "first": size}
        if after is not None:
            page_args["after"] = after
        (page,) = await _pages(api, [Call(field, page_args, selection, "query")], what)
        pages.append(page)
        if not page.has_next or not page.end_cursor:
            return pages
        if page.end_cursor in seen:
            raise FatalError(f"reading {what}: Pluvo returned the cursor of a page already read")
        seen.add(page.end_cursor)
        after = page.end_cursor


def _torn(pages: Sequence[_Page], count: int, size: int) -> str | None:
    """Why these pages are not one list of `count` nodes, or None when they are."""
    for k, page in enumerate(pages):
        if page.count != count:
            return f"the count went from {count} to {page.count}"
        expected = max(0, min(size, count - k * size))
        if page.edges != expected:
            return f"page {k + 1} held {page.edges} nodes where {expected} were due"
    if len(pages) < math.ceil(count / size):
        return f"{len(pages)} pages cannot hold {count} nodes"
    ids = [str(node["id"]) for page in pages for node in page.nodes if node.get("id")]
    if len(set(ids)) != len(ids):
        return f"{len(ids) - len(set(ids))} nodes came twice"
    return None


def _nodes(pages: Sequence[_Page]) -> tuple[dict[str, Any], ...]:
    return tuple(node for page in pages for node in page.nodes)


__all__ = [
    "MAX_PAGE",
    "CallRunner",
    "ConnectionRead",
    "Reader",
    "TornReadError",
    "count_of",
    "list_groups",
    "offset_calls",
    "paginate",
    "read_by_cursor",
    "read_connection",
]
