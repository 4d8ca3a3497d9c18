"""Full reads (every user, every group) against the sandbox over real HTTP: offset pages
side by side within the client's limit, the same list as the cursor read, and the
cursor fallback when the list changes while it is read.

Mid-read changes are real: the sandbox's latency holds each request for a while, the
test waits until the sandbox has executed the first page (its query counter), and
then changes the users through the control API while the other pages are still on
their way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from sync.commands.reconcile.live import USER_NODE_SELECTION, read_users
from sync.config.pluvo import PluvoConfig
from sync.errors import PluvoError
from sync.pluvo.client import PluvoClient
from sync.pluvo.reads import ConnectionRead, TornReadError, read_by_cursor, read_connection
from sync.sandbox import Faults, SandboxServer, Seed
from tests.integration.test_client_sandbox import make_config

T = TypeVar("T")
USERS = "paginatedUsers"
ACTIVE = {"archived": False}


def users(n: int, *, prefix: str = "U", archived: bool = False) -> list[dict[str, Any]]:
    return [
        {
            "ref": f"{prefix}{i:04d}",
            "email": f"{prefix.lower()}{i}@example.org",
            "name": f"Person {prefix}{i}",
            "archived": archived,
        }
        for i in range(n)
    ]


def sandbox_with(
    make_sandbox: Callable[..., SandboxServer], people: list[dict[str, Any]], latency: float
) -> SandboxServer:
    return make_sandbox(faults=Faults(latency=latency), seed=Seed(users=people))


def config(server: SandboxServer, **overrides: Any) -> PluvoConfig:
    """One page per request by default, so the pages of a small list are requests
    that can be in flight together (the default aliases 25 pages to a request)."""
    return make_config(server, **{"batch_size": 1, **overrides})


async def off_loop(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """A control API call (synchronous urllib) without stalling the client's loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


async def executed(server: SandboxServer, calls: int, field: str = USERS) -> None:
    """Return once the sandbox has executed `calls` calls of `field` since the reset."""
    deadline = time.monotonic() + 30
    while (await off_loop(server.control.counters))["queries"].get(field, 0) < calls:
        assert time.monotonic() < deadline, f"the sandbox never executed {calls} {field}"
        await asyncio.sleep(0.005)


def live_refs(server: SandboxServer, *, archived: bool = False) -> list[str]:
    """The list as the sandbox holds it now, in its order."""
    return [u["ref"] for u in server.control.state()["users"] if bool(u["archived"]) == archived]


def refs(read: ConnectionRead) -> list[str]:
    return [str(n["ref"]) for n in read.nodes]


async def read_active(client: PluvoClient) -> ConnectionRead:
    return await read_connection(client, USERS, ACTIVE, USER_NODE_SELECTION, what="users")


async def test_pages_are_in_flight_side_by_side(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = sandbox_with(make_sandbox, users(300), latency=0.1)
    async with PluvoClient(config(server, concurrency=4)) as client:
        await client.count_users()  # the token, outside the counters
        server.control.reset_counters()
        read = await read_active(client)
    counters = server.control.counters()
    assert len(read.nodes) == read.count == 300
    assert (read.pages, read.by_cursor) == (6, False)
    assert counters["graphql_requests"] == 6
    # The first page brings the count; the other five then share four slots.
    assert counters["in_flight_max"] == 4


async def test_reconcile_reads_a_small_organisation_side_by_side(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    # At the default batch size 25 pages fit one request: 1,000 users would be one
    # request after the first, one Pluvo worker resolving 20 pages in turn.
    server = sandbox_with(make_sandbox, users(1000), latency=0.1)
    async with PluvoClient(make_config(server, concurrency=4)) as client:
        assert client.config.batch_size == 25
        await client.count_users()
        server.control.reset_counters()
        nodes, pages = await read_users(client)
    counters = server.control.counters()
    assert len(nodes) == 1000
    assert pages == 20 + 1  # the archived list's one (empty) page
    # The first page, then 19 pages as 5 + 5 + 5 + 4 side by side, the archived
    # list's page and the active list counted again.
    assert counters["graphql_requests"] == 1 + 4 + 1 + 1
    assert counters["in_flight_max"] == 4


async def test_in_flight_never_exceeds_the_concurrency(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = sandbox_with(make_sandbox, users(600), latency=0.05)
    async with PluvoClient(config(server, concurrency=2)) as client:
        await client.count_users()
        server.control.reset_counters()
        read = await read_active(client)
    assert len(read.nodes) == 600
    assert server.control.counters()["in_flight_max"] == 2


async def test_offset_read_is_the_cursor_read(make_sandbox: Callable[..., SandboxServer]) -> None:
    people = users(237) + users(61, prefix="A", archived=True)
    server = sandbox_with(make_sandbox, people, latency=0.0)
    async with PluvoClient(config(server, batch_size=3, concurrency=3)) as client:
        for args in ({"archived": False}, {"archived": True}):
            by_offset = await read_connection(client, USERS, args, USER_NODE_SELECTION, what="u")
            by_cursor = await read_by_cursor(client, USERS, args, USER_NODE_SELECTION, what="u")
            assert not by_offset.by_cursor
            assert by_offset.nodes == by_cursor.nodes  # the same nodes, in the same order
            assert by_offset.count == by_cursor.count == len(by_offset.nodes)
        plain = [u async for u in client.iter_users(archived=False, selection="id ref")]
        active = await read_active(client)
    assert [u["ref"] for u in plain] == refs(active) == live_refs(server)


async def test_the_group_list_is_read_by_offset_and_complete(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    groups = [{"ref": f"G{i:03d}", "name": f"Group {i}"} for i in range(120)]
    server = make_sandbox(seed=Seed(groups=groups))
    async with PluvoClient(config(server, concurrency=3)) as client:
        listed = await client.list_groups(members=False, managers=False)
    assert [g.ref for g in listed] == [g["ref"] for g in groups]
    counters = server.control.counters()
    assert counters["queries"] == {"paginatedGroups": 3}


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda s: s.control.seed(users=users(7, prefix="NEW")), id="created"),
        pytest.param(lambda s: s.control.update_user("U0010", archived=True), id="archived"),
    ],
)
async def test_a_list_changed_mid_read_is_read_again_by_cursor(
    make_sandbox: Callable[..., SandboxServer],
    change: Callable[[SandboxServer], object],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = sandbox_with(make_sandbox, users(200), latency=0.4)
    async with PluvoClient(config(server, concurrency=4)) as client:
        await client.count_users()
        server.control.reset_counters()
        with caplog.at_level(logging.WARNING, logger="sync.pluvo"):
            reading = asyncio.create_task(read_active(client))
            await executed(server, 1)  # the first page (and its count) is in
            await off_loop(change, server)  # the three other pages are still sleeping
            await off_loop(server.control.set_faults, latency=0.0)
            read = await reading
    assert read.by_cursor
    assert refs(read) == live_refs(server)  # nothing skipped, nothing twice
    assert read.count == len(read.nodes)
    assert read.pages == 4 + -(-read.count // 50)
    assert any("the count went from 200 to" in r.getMessage() for r in caplog.records)


async def test_a_list_that_keeps_changing_stops_the_read(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = sandbox_with(make_sandbox, users(200), latency=0.3)
    async with PluvoClient(config(server, concurrency=4)) as client:
        await client.count_users()
        server.control.reset_counters()
        reading = asyncio.create_task(read_active(client))
        await executed(server, 1)
        await off_loop(server.control.seed, users=users(1, prefix="X"))
        await executed(server, 5)  # the four offset pages, then the first cursor page
        await off_loop(server.control.seed, users=users(1, prefix="Y"))
        with pytest.raises(TornReadError, match="changed while it was read"):
            await reading


async def test_a_user_restored_between_the_two_lists_is_not_lost(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    people = users(100) + users(10, prefix="A", archived=True)
    server = sandbox_with(make_sandbox, people, latency=0.3)
    async with PluvoClient(config(server, concurrency=4)) as client:
        await client.count_users()
        server.control.reset_counters()
        reading = asyncio.create_task(read_users(client))
        await executed(server, 2)  # the active list is in; the archived one is on its way
        await off_loop(server.control.update_user, "A0003", archived=False)
        await off_loop(server.control.set_faults, latency=0.0)
        nodes, pages = await reading
    by_ref = {n["ref"]: n for n in nodes}
    assert sorted(by_ref) == sorted(p["ref"] for p in people)
    assert by_ref["A0003"]["archived"] is False
    # Both lists twice, since the active count moved in between: 100 active users and
    # 10 archived, then 101 and 9.
    assert pages == (2 + 1) + (3 + 1)


async def test_transient_page_failures_are_retried_and_the_list_is_whole(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = make_sandbox(faults=Faults(error_rate=0.3, seed=4), seed=Seed(users=users(400)))
    async with PluvoClient(config(server, concurrency=3, max_retries=8)) as client:
        read = await read_active(client)
        assert client.counters.retries > 0
    assert server.control.counters()["faults"]["error"] > 0
    assert not read.by_cursor
    assert refs(read) == live_refs(server)


async def test_a_page_that_keeps_failing_stops_the_read(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    server = sandbox_with(make_sandbox, users(120), latency=0.0)
    async with PluvoClient(config(server, max_retries=1)) as client:
        await client.count_users()
        server.control.set_faults(fail_all=True)
        with pytest.raises(PluvoError, match="reading users failed"):
            await read_active(client)
