"""Fault injection: each fault hits before the request is applied, and is counted."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import aiohttp
import pytest

from sync.sandbox import Faults, SandboxServer
from sync.sandbox.faults import Dice
from tests.sandbox_fixture import SandboxHttp

pytestmark = pytest.mark.faults

READ = "{ paginatedUsers(first: 1) { count } }"


def create(ref: str) -> str:
    return (
        f'mutation {{ createUser(sendInvite: false, user: {{ref: "{ref}", name: "{ref}", '
        f'email: "{ref.lower()}@x.nl"}}) {{ user {{ id }} }} }}'
    )


def statuses(http: SandboxHttp, count: int, token: str) -> list[int]:
    return [http.post_graphql(READ, token=token).status for _ in range(count)]


def test_error_rate_answers_5xx_for_its_share(make_sandbox: Callable[..., SandboxServer]) -> None:
    server = make_sandbox(faults=Faults(error_rate=0.5, seed=7))
    http = SandboxHttp(server.url)
    token = http.token()  # the token endpoint is spared unless token_faults
    seen = Counter(statuses(http, 60, token))
    errors = sum(n for status, n in seen.items() if status >= 500)
    assert set(seen) <= {200, 500, 502, 503}
    assert 15 <= errors <= 45
    counters = server.control.counters()
    assert counters["faults"]["error"] == errors
    assert counters["graphql_requests"] == 60
    assert counters["token_requests"] == 1
    assert counters["queries"]["paginatedUsers"] == 60 - errors  # never executed


def test_5xx_does_not_apply_the_mutation(make_sandbox: Callable[..., SandboxServer]) -> None:
    server = make_sandbox(faults=Faults(error_rate=1.0, error_status=502))
    http = SandboxHttp(server.url)
    response = http.post_graphql(create("X1"))
    assert response.status == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert server.control.state()["users"] == []
    assert server.control.counters()["mutations"] == {}
    server.control.set_faults(error_rate=0.0)
    assert http.post_graphql(create("X1")).status == 200
    assert len(server.control.state()["users"]) == 1


def test_same_seed_same_faults(make_sandbox: Callable[..., SandboxServer]) -> None:
    runs = []
    for _ in range(2):
        server = make_sandbox(faults=Faults(error_rate=0.3, throttle_rate=0.2, seed=42))
        http = SandboxHttp(server.url)
        runs.append(statuses(http, 30, http.token()))
    assert runs[0] == runs[1]
    assert {200, 429} <= set(runs[0])


def test_throttle_answers_429_with_retry_after(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    sandbox.control.set_faults(throttle_rate=1.0, retry_after=2.5)
    response = sandbox_http.post_graphql(create("T1"), token=token)
    assert response.status == 429
    assert response.headers["Retry-After"] == "3"
    assert response.json()["retry_after"] == 2.5
    assert sandbox.control.state()["users"] == []
    assert sandbox.control.counters()["faults"] == {"throttle": 1}


def test_a_503_announces_retry_after_when_asked(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    sandbox.control.set_faults(fail_all=True)
    assert "Retry-After" not in sandbox_http.post_graphql(READ, token=token).headers
    sandbox.control.set_faults(unavailable_retry_after=1.2)
    response = sandbox_http.post_graphql(READ, token=token)
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    sandbox.control.set_faults(fail_all=False, error_rate=1.0, error_status=500)
    assert "Retry-After" not in sandbox_http.post_graphql(READ, token=token).headers


def test_rate_limit_over_a_sliding_second(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    sandbox.control.set_faults(rate_limit=5)
    seen = statuses(sandbox_http, 8, token)
    assert seen[:5] == [200] * 5
    assert seen[5:] == [429] * 3
    response = sandbox_http.post_graphql(READ, token=token)
    assert response.status == 429
    assert response.headers["Retry-After"] == "1"
    assert 0 < response.json()["retry_after"] <= 1
    time.sleep(response.json()["retry_after"] + 0.05)
    assert sandbox_http.post_graphql(READ, token=token).status == 200
    assert sandbox.control.counters()["faults"]["rate_limited"] == 4


async def test_rate_limit_holds_under_concurrency(sandbox: SandboxServer) -> None:
    # Ten requests per ten-minute window: the whole burst falls in one window however
    # slowly it arrives, so exactly the limit gets through.
    sandbox.control.set_faults(rate_limit=10, rate_limit_window=600)
    token = sandbox.control.token()
    headers = {"Authorization": f"Bearer {token}"}

    async def one(session: aiohttp.ClientSession) -> int:
        async with session.post(sandbox.graphql_url, json={"query": READ}, headers=headers) as r:
            await r.read()
            return r.status

    async with aiohttp.ClientSession() as session:
        results = await asyncio.gather(*(one(session) for _ in range(30)))
    assert results.count(200) == 10
    assert results.count(429) == 20
    counters = sandbox.control.counters()
    assert counters["faults"] == {"rate_limited": 20}
    assert counters["queries"] == {"paginatedUsers": 10}  # refused requests ran nothing


def test_rate_limit_window_sets_the_wait(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    token = sandbox_http.token()
    sandbox.control.set_faults(rate_limit=2, rate_limit_window=120)
    assert statuses(sandbox_http, 3, token) == [200, 200, 429]
    response = sandbox_http.post_graphql(READ, token=token)
    assert response.status == 429
    # The first request leaves the window two minutes after it came, not one second.
    assert 100 < response.json()["retry_after"] <= 120
    assert int(response.headers["Retry-After"]) > 100


def test_drop_closes_without_answer_and_applies_nothing(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    sandbox.control.set_faults(drop_rate=1.0)
    with pytest.raises(ConnectionError):
        sandbox_http.post_graphql(create("D1"), token=token)
    assert sandbox.control.state()["users"] == []
    counters = sandbox.control.counters()
    assert counters["dropped"] == 1
    assert counters["faults"] == {"drop": 1}
    assert counters["status"] == {"200": 1}  # the token request


def test_drop_after_apply_applies_then_closes(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    sandbox.control.set_faults(drop_after_apply_rate=1.0)
    with pytest.raises(ConnectionError):
        sandbox_http.post_graphql(create("D2"), token=token)
    assert [u["ref"] for u in sandbox.control.state()["users"]] == ["D2"]
    assert sandbox.control.counters()["faults"] == {"drop_after_apply": 1}
    sandbox.control.set_faults(drop_after_apply_rate=0.0)
    # The retry a client would make now meets the conflict it created.
    status, body = sandbox_http.gql(create("D2"), token=token)
    assert status == 200
    assert body["errors"][0]["extensions"]["code"] == "Conflict"


async def test_drop_seen_by_aiohttp(sandbox: SandboxServer) -> None:
    token = sandbox.control.token()
    sandbox.control.set_faults(drop_rate=1.0)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.post(
                sandbox.graphql_url,
                json={"query": READ},
                headers={"Authorization": f"Bearer {token}"},
            )


def test_fail_all_is_an_outage_until_lifted(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    assert sandbox_http.post_graphql(READ, token=token).status == 200
    sandbox.control.set_faults(fail_all=True)
    assert statuses(sandbox_http, 3, token) == [503, 503, 503]
    assert sandbox_http.token_response().status == 200  # token endpoint spared by default
    sandbox.control.set_faults(token_faults=True)
    assert sandbox_http.token_response().status == 503
    sandbox.control.set_faults(fail_all=False)
    assert sandbox_http.post_graphql(READ, token=token).status == 200
    counters = sandbox.control.counters()
    assert counters["faults"] == {"fail_all": 4}
    assert counters["status"] == {"200": 4, "503": 4}


def test_latency_delays_every_request(make_sandbox: Callable[..., SandboxServer]) -> None:
    faults = Faults(latency=0.2, latency_jitter=0.1, seed=1)
    server = make_sandbox(faults=faults)
    http = SandboxHttp(server.url)
    started = time.monotonic()
    token = http.token()
    http.post_graphql(READ, token=token)
    elapsed = time.monotonic() - started
    # The two requests drew their jitter from the seeded dice, in this order; each
    # waited the fixed latency plus its draw (a lower bound: speed is not judged here).
    dice = Dice(1)
    drawn = [dice.latency(faults) for _ in range(2)]
    assert all(0.2 <= delay <= 0.3 for delay in drawn), drawn
    assert elapsed >= sum(drawn)


def test_counted_outage_starts_and_ends_at_set_requests(
    sandbox: SandboxServer, sandbox_http: SandboxHttp
) -> None:
    token = sandbox_http.token()
    sandbox_http.post_graphql(READ, token=token)  # before the setting: not counted
    sandbox.control.set_faults(outage_after=3, outage_length=2)
    assert statuses(sandbox_http, 7, token) == [200, 200, 200, 503, 503, 200, 200]
    assert sandbox_http.token_response().status == 200  # token endpoint spared
    # Setting it again restarts the count; no length: the outage lasts until lifted.
    sandbox.control.set_faults(outage_after=1, outage_length=None)
    assert statuses(sandbox_http, 4, token) == [200, 503, 503, 503]
    assert sandbox.control.state()["users"] == []
    response = sandbox_http.post_graphql(create("O1"), token=token)
    assert response.status == 503
    assert sandbox.control.state()["users"] == []  # refused before it was applied
    sandbox.control.set_faults(outage_after=None)
    assert sandbox_http.post_graphql(READ, token=token).status == 200
    counters = sandbox.control.counters()
    assert counters["faults"] == {"fail_all": 6}
    assert counters["mutations"] == {}


def test_fault_settings_are_checked(sandbox: SandboxServer) -> None:
    from sync.sandbox import SandboxControlError

    for bad in (
        {"error_rate": 2},
        {"nope": 1},
        {"extra_values_mode": "mix"},
        {"fail_all": "yes"},
        {"outage_after": -1},
        {"outage_length": 0},
        {"outage_after": 1.5},
        {"rate_limit_window": 0},
    ):
        with pytest.raises(SandboxControlError) as info:
            sandbox.control.set_faults(**bad)
        assert info.value.status == 400
    faults = sandbox.control.set_faults(error_rate=0.1, rate_limit=None, seed=3)
    assert faults["error_rate"] == 0.1
    assert sandbox.control.faults() == faults


async def test_in_flight_gauge_sees_overlapping_requests_only(
    make_sandbox: Callable[..., SandboxServer],
) -> None:
    # Latency keeps each request in flight long enough that overlapping ones are seen
    # together, and that requests taking turns are not, however fast the machine.
    server = make_sandbox(faults=Faults(latency=0.3))
    token = server.control.token()
    headers = {"Authorization": f"Bearer {token}"}

    async def one(session: aiohttp.ClientSession) -> None:
        async with session.post(server.graphql_url, json={"query": READ}, headers=headers) as r:
            assert r.status == 200
            await r.read()

    async with aiohttp.ClientSession() as session:
        server.control.reset_counters()
        await one(session)
        await one(session)
        assert server.control.counters()["in_flight_max"] == 1
        server.control.reset_counters()
        await asyncio.gather(*(one(session) for _ in range(3)))
    counters = server.control.counters()
    assert counters["in_flight_max"] == 3
    assert counters["in_flight"] == 0
    server.control.reset_counters()
    assert server.control.counters()["in_flight_max"] == 0


def test_counters_and_reset(sandbox: SandboxServer, sandbox_http: SandboxHttp) -> None:
    token = sandbox_http.token()
    sandbox_http.post_graphql(
        'mutation { a: createGroup(group: {ref: "A", name: "A"}) { group { id } } '
        'b: createGroup(group: {ref: "B", name: "B"}) { group { id } } '
        'c: createGroup(group: {ref: "A", name: "A"}) { group { id } } }',
        token=token,
    )
    sandbox_http.post_graphql(
        '{ groups { id } a: group(ref: "A") { id } b: group(ref: "B") { id } }', token=token
    )
    sandbox_http.request("POST", "/graphql", body=b"{}")
    counters = sandbox.control.counters()
    assert counters["requests"] == 4
    assert counters["graphql_requests"] == 2
    assert counters["token_requests"] == 1
    assert counters["mutations"] == {"createGroup": 3}
    assert counters["queries"] == {"groups": 1, "group": 2}
    assert counters["mutations_total"] == 3
    assert counters["status"] == {"200": 3, "301": 1}
    assert counters["errors"] == {"Conflict": 1}
    sandbox.control.reset_counters()
    counters = sandbox.control.counters()
    assert counters["requests"] == 0
    assert counters["mutations"] == {}
    assert counters["status"] == {}
