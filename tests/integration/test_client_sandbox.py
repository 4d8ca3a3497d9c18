"""The Pluvo client against the sandbox over real HTTP, with injected faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError, PluvoError, RecordError, TransientError
from sync.pluvo import ops
from sync.pluvo.client import PluvoClient
from sync.pluvo.results import BulkResult, CallResult, MembershipResult, UpsertResult
from sync.sandbox.server import SandboxServer

CLIENT_ID = "sandbox-client"
SECRET = "sandbox-secret"


def make_config(sandbox: SandboxServer, **overrides: Any) -> PluvoConfig:
    values: dict[str, Any] = {
        "url": sandbox.url,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "max_retries": 4,
        "timeout": 5,
        **overrides,
    }
    return PluvoConfig.model_validate(values)


def people(n: int, prefix: str = "E") -> list[ops.Call]:
    return [
        ops.upsert_user(
            f"{prefix}{i:04d}",
            {"name": f"Person {i}", "email": f"{prefix.lower()}{i}@example.org", "language": "NL"},
            send_invite=False,
        )
        for i in range(n)
    ]


async def send(client: PluvoClient, call: ops.Call) -> CallResult:
    """One call as a request of its own; its result, error included."""
    (result,) = await client.run_calls([call])
    return result


async def data_of(client: PluvoClient, call: ops.Call) -> Any:
    """The data of one call sent on its own, which must succeed."""
    result = await send(client, call)
    assert result.error is None, str(result.error)
    return result.data


def assert_clean(error: BaseException | None, *tokens: str) -> None:
    """No secret, token or Authorization header ever reaches an error message."""
    text = repr(error) + str(error)
    for secret in (SECRET, *tokens):
        assert secret not in text
    assert "Bearer" not in text


async def test_batched_upserts_map_back_in_order(sandbox: SandboxServer) -> None:
    calls = people(7)
    seen: list[int] = []
    async with PluvoClient(make_config(sandbox, batch_size=3)) as client:
        results = await client.run_calls(calls, on_result=lambda i, r: seen.append(i))
        assert client.counters.requests == 3
        assert client.counters.mutations == 7
        again = UpsertResult.parse(
            await data_of(client, ops.upsert_user("E0003", {"name": "Renamed"}, send_invite=False))
        )
        fetched = await client.get_user(ref="E0003")
    assert sorted(seen) == list(range(7))
    assert all(r.ok for r in results)
    assert [r.data["user"]["ref"] for r in results] == [f"E{i:04d}" for i in range(7)]
    assert all(r.data["created"] for r in results)
    assert not again.created
    assert fetched is not None
    assert fetched["name"] == "Renamed"


class Rendered(Sequence[ops.Call]):
    """Calls made when the client asks for them, with the indexes asked so far."""

    def __init__(self, calls: list[ops.Call]) -> None:
        self.calls = calls
        self.taken: list[int] = []

    def __len__(self) -> int:
        return len(self.calls)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            raise AssertionError("the client takes calls one index at a time")
        self.taken.append(index)
        return self.calls[index]


async def test_calls_are_taken_a_chunk_at_a_time_and_answers_not_kept(
    sandbox: SandboxServer,
) -> None:
    """A first load's phase is a million calls: the client renders only what goes out
    next (never more than the chunks in flight ahead of the answers), and with
    keep=False holds no answer after `on_result` had it."""
    calls = Rendered(people(40))
    ahead: list[int] = []
    answered: list[int] = []

    def on_result(index: int, result: CallResult) -> None:
        assert result.ok
        answered.append(index)
        ahead.append(len(set(calls.taken)) - len(answered))

    config = make_config(sandbox, batch_size=4, concurrency=2)
    async with PluvoClient(config) as client:
        results = await client.run_calls(calls, on_result=on_result, keep=False)
    assert results == []
    assert sorted(answered) == list(range(40))
    assert sorted(set(calls.taken)) == list(range(40))
    assert len(calls.taken) <= 41  # each call rendered once (the first again, for its kind)
    assert max(ahead) < 2 * 4  # at most the two chunks in flight, never the whole list


async def test_one_failing_alias_keeps_the_others(sandbox: SandboxServer) -> None:
    calls = people(3)
    bad = ops.upsert_user("BAD", {"name": "No Mail", "email": "not-an-email"}, send_invite=False)
    calls.insert(1, bad)
    calls.append(ops.update_user(ref="NOBODY", user={"name": "x"}))
    async with PluvoClient(make_config(sandbox, batch_size=10)) as client:
        results = await client.run_calls(calls)
        assert client.counters.requests == 1
        alone = await send(client, ops.update_user(ref="NOBODY", user={"name": "x"}))
    assert [r.ok for r in results] == [True, False, True, True, False]
    assert isinstance(results[1].error, RecordError)
    assert "email" in str(results[1].error)
    assert results[1].call is bad
    assert isinstance(results[4].error, RecordError)
    assert results[4].error.code == "NotFound"
    assert isinstance(alone.error, RecordError)
    assert alone.error.code == "NotFound"
    assert results[2].data["user"]["ref"] == "E0001"


async def test_pagination_reads_every_user_once(sandbox: SandboxServer) -> None:
    async with PluvoClient(make_config(sandbox, batch_size=25, concurrency=4)) as client:
        results = await client.run_calls(people(130, "P"))
        assert all(r.ok for r in results)
        total = await client.count_users()
        before = client.counters.requests
        users = [u async for u in client.iter_users(page_size=500)]  # clamped to 50
        pages = client.counters.requests - before
    ids = [u["id"] for u in users]
    assert total >= 130
    assert len(ids) == total
    assert len(set(ids)) == len(ids)
    assert {f"P{i:04d}" for i in range(130)} <= {u["ref"] for u in users}
    assert pages == -(-total // 50)


async def test_groups_members_and_managers(sandbox: SandboxServer) -> None:
    async with PluvoClient(make_config(sandbox)) as client:
        await client.run_calls(people(60))
        await data_of(client, ops.create_group("G1", "Sales"))
        await data_of(client, ops.create_group("G2", "Ops"))
        refs = [f"E{i:04d}" for i in range(55)] + ["NOPE"]
        added = MembershipResult.parse(await data_of(client, ops.add_users_to_group("G1", refs)))
        again = MembershipResult.parse(
            await data_of(client, ops.add_users_to_group("G1", ["E0000"]))
        )
        managers = BulkResult.parse(
            await data_of(client, ops.add_managers_to_group("G2", ["E0001", "E0002"]))
        )
        await data_of(client, ops.remove_users_from_group("G1", ["E0054"]))
        sandbox.control.set_faults(membership_delay=0)
        groups = {g.ref: g for g in await client.list_groups()}
        categories = await client.list_extra_categories()
    assert len(added.changed) == 55
    assert added.failed == ("NOPE",)
    assert len(again.unchanged) == 1
    assert len(managers.succeeded) == 2
    assert groups["G1"].member_refs == {f"E{i:04d}" for i in range(54)}
    assert groups["G2"].manager_refs == {"E0001", "E0002"}
    assert groups["G2"].members == ()
    assert {c.ref for c in categories} >= {"department", "skills"}


async def test_token_renewed_proactively_before_expiry(sandbox: SandboxServer) -> None:
    sandbox.control.set_faults(token_lifetime=1.0)
    async with PluvoClient(make_config(sandbox)) as client:
        await client.count_users()
        await asyncio.sleep(1.0)  # renewal due at 0.9 s (margin capped to lifetime/10)
        await client.count_users()
        assert client.token_requests == 2
        assert client.counters.reauths == 0


async def test_expired_token_reauthenticates_once_on_401(sandbox: SandboxServer) -> None:
    async with PluvoClient(make_config(sandbox, concurrency=4, batch_size=1)) as client:
        await client.count_users()
        sandbox.control.expire_tokens()  # the client still believes its token is fresh
        results = await client.run_calls(people(4))
        assert all(r.ok for r in results)
        assert 1 <= client.counters.reauths <= 4  # each refused request renews once...
        assert client.token_requests == 2  # ...but they share one new token


async def test_a_token_expiring_again_after_a_backoff_is_renewed_again(
    sandbox: SandboxServer,
) -> None:
    """Tokens expire mid-run (24 h at Pluvo, seconds here) and a retry may wait out a
    backoff longer than a token lives: a 401 after a wait is a new expiry, renewed as
    often as it happens; it is not a refusal."""
    async with PluvoClient(make_config(sandbox, backoff_base=0.2, backoff_max=0.2)) as client:
        await client.count_users()
        sandbox.control.set_faults(scripted=[503, 401, 503, 401])
        result = await send(client, people(1)[0])
        assert result.error is None, str(result.error)
        assert client.counters.reauths == 2
        assert client.token_requests == 3
    assert sandbox.control.counters()["faults"]["scripted"] == 4


async def test_a_token_refused_right_after_it_was_issued_is_fatal(
    sandbox: SandboxServer,
) -> None:
    async with PluvoClient(make_config(sandbox)) as client:
        sandbox.control.set_faults(scripted=[401] * 6)
        result = await send(client, people(1)[0])
        assert isinstance(result.error, FatalError)
        assert "refused a freshly issued token" in str(result.error)
        assert client.token_requests == 2  # a first token and a renewed one, both refused at once


async def test_an_unreachable_pluvo_is_said_in_the_users_words() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    config = PluvoConfig.model_validate(
        {
            "url": f"http://127.0.0.1:{port}/",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "max_retries": 1,
            "backoff_base": 0.01,
            "backoff_max": 0.01,
        }
    )
    async with PluvoClient(config) as client:
        with pytest.raises(TransientError) as info:
            await client.count_users()
    message = str(info.value)
    assert message.startswith(
        f"token request failed: cannot reach http://127.0.0.1:{port}/: connection refused"
    ), message
    assert "Error" not in message  # no exception class names


async def test_throttling_honours_retry_after_and_shrinks_concurrency(
    sandbox: SandboxServer,
) -> None:
    sandbox.control.set_faults(throttle_rate=0.4, retry_after=1, seed=7)
    config = make_config(sandbox, batch_size=1, concurrency=8)
    async with PluvoClient(config) as client:
        start = time.monotonic()
        results = await client.run_calls(people(8))
        elapsed = time.monotonic() - start
        assert all(r.ok for r in results), [str(r.error) for r in results if r.error]
        assert client.counters.throttled > 0
        assert client.limiter.lowest < 8
        throttled = client.counters.throttled
    assert sandbox.control.counters()["faults"]["throttle"] == throttled
    assert elapsed >= 1.0  # Retry-After: 1 was waited out, not retried at once


async def test_rate_limit_converges(sandbox: SandboxServer) -> None:
    sandbox.control.set_faults(rate_limit=20)
    async with PluvoClient(make_config(sandbox, batch_size=1, concurrency=16)) as client:
        results = await client.run_calls(people(40))
        assert all(r.ok for r in results)
        assert client.limiter.lowest < 16


async def test_server_errors_and_drops_are_retried_to_success(sandbox: SandboxServer) -> None:
    sandbox.control.set_faults(error_rate=0.3, drop_rate=0.2, seed=3)
    async with PluvoClient(make_config(sandbox, batch_size=4, max_retries=8)) as client:
        results = await client.run_calls(people(40))
        assert all(r.ok for r in results), [str(r.error) for r in results if r.error]
        assert client.counters.retries > 0
    sandbox.control.set_faults(error_rate=0, drop_rate=0)
    async with PluvoClient(make_config(sandbox)) as client:
        assert await client.count_users() == 40


async def test_retries_exhausted_give_transient_error_on_every_call(
    sandbox: SandboxServer,
) -> None:
    sandbox.control.set_faults(fail_all=True)
    async with PluvoClient(make_config(sandbox, batch_size=2, max_retries=2)) as client:
        results = await client.run_calls(people(5))
        assert client.counters.requests == 3 * 3  # three chunks, three attempts each
    assert all(isinstance(r.error, TransientError) for r in results)
    assert "gave up after 3 attempts" in str(results[0].error)
    for result in results:
        assert_clean(result.error)


async def test_a_503_with_retry_after_is_waited_out_and_still_counts_as_a_failure(
    sandbox: SandboxServer,
) -> None:
    sandbox.control.set_faults(fail_all=True, unavailable_retry_after=1)
    config = make_config(sandbox, batch_size=5, max_retries=2)
    async with PluvoClient(config) as client:
        start = time.monotonic()
        results = await client.run_calls(people(5))
        elapsed = time.monotonic() - start
        assert client.counters.requests == 3  # the outage still ends after the retries
    assert all(isinstance(r.error, TransientError) for r in results)
    assert elapsed >= 2.0  # two retries, each after the announced second


async def test_wrong_secret_is_fatal_and_secret_free(sandbox: SandboxServer) -> None:
    config = make_config(sandbox, client_secret="wrong-secret-4711")
    async with PluvoClient(config) as client:
        with pytest.raises(FatalError) as info:
            await client.count_users()
    assert "client_id 'sandbox-client'" in str(info.value)
    assert "wrong-secret-4711" not in str(info.value)
    assert_clean(info.value)


async def test_missing_scope_is_named(sandbox: SandboxServer) -> None:
    sandbox.control.seed(
        clients=[
            {"client_id": "reader", "client_secret": "reader-secret-77", "scopes": ["users.read"]}
        ]
    )
    config = make_config(sandbox, client_id="reader", client_secret="reader-secret-77")
    async with PluvoClient(config) as client:
        results = await client.run_calls(people(3))
        assert client.granted_scopes == frozenset({"users.read"})
        group = await send(client, ops.create_group("G1", "Sales"))
        assert await client.count_users() == len(sandbox.control.state()["users"])
    # The token's answer named the scopes: nothing was sent that needed another one.
    assert sandbox.control.counters()["mutations_total"] == 0
    assert all(isinstance(r.error, FatalError) for r in results)
    assert "missing Pluvo scope users.write" in str(results[0].error)
    assert isinstance(group.error, FatalError)
    assert "missing Pluvo scope groups.write" in str(group.error)


async def test_permission_denied_from_server_names_the_scope(sandbox: SandboxServer) -> None:
    """Pluvo may not echo granted scopes; the refusal itself must still name the scope."""
    sandbox.control.seed(
        clients=[{"client_id": "r2", "client_secret": "reader-secret-78", "scopes": ["users.read"]}]
    )
    config = make_config(sandbox, client_id="r2", client_secret="reader-secret-78")
    async with PluvoClient(config) as client:
        await client.count_users()
        assert client.auth is not None
        client.auth.granted_scopes = None  # as if the token answer carried no `scope`
        group = await send(client, ops.create_group("G1", "Sales"))
    assert isinstance(group.error, FatalError)
    assert "groups.write" in str(group.error)


async def test_errors_never_carry_secrets_or_tokens(sandbox: SandboxServer) -> None:
    errors: list[PluvoError] = []
    async with PluvoClient(make_config(sandbox, max_retries=1)) as client:
        await client.count_users()
        assert client.auth is not None
        token = await client.auth.token()
        for action in _failing_actions(sandbox, client):
            try:
                await action()
            except PluvoError as exc:
                errors.append(exc)
    assert len(errors) == 3
    for error in errors:
        assert_clean(error, token)


def _failing_actions(sandbox: SandboxServer, client: PluvoClient) -> list[Callable[[], Any]]:
    async def record() -> None:
        result = await send(client, ops.update_user(ref="NOBODY", user={"name": SECRET}))
        assert result.error is not None
        raise result.error

    async def outage() -> None:
        sandbox.control.set_faults(fail_all=True)
        await client.count_users()

    async def invalid() -> None:
        sandbox.control.set_faults(fail_all=False)
        await client.execute("query { nope }")

    return [record, outage, invalid]


async def test_batches_applied_then_dropped_are_safely_resent(sandbox: SandboxServer) -> None:
    """The ambiguous failure: Pluvo applied the batch, the answer was lost, the upsert is resent."""
    sandbox.control.set_faults(drop_after_apply_rate=0.4, seed=1)
    async with PluvoClient(make_config(sandbox, batch_size=3, max_retries=8)) as client:
        results = await client.run_calls(people(30))
        assert client.counters.retries > 0
    assert sandbox.control.counters()["faults"]["drop_after_apply"] > 0
    assert all(r.ok for r in results)
    assert any(not r.data["created"] for r in results)  # a resent upsert found its user
    sandbox.control.set_faults(drop_after_apply_rate=0)
    async with PluvoClient(make_config(sandbox)) as client:
        refs = [u["ref"] async for u in client.iter_users()]
    assert sorted(refs) == [f"E{i:04d}" for i in range(30)]


async def test_execute_with_variables_and_client_side_pacing(sandbox: SandboxServer) -> None:
    async with PluvoClient(make_config(sandbox, requests_per_second=20)) as client:
        await client.run_calls(people(2))
        start = time.monotonic()
        for _ in range(4):
            data = await client.execute(
                "query One($ref: String) { user(ref: $ref) { ref name } }", {"ref": "E0001"}
            )
        elapsed = time.monotonic() - start
    assert data == {"user": {"ref": "E0001", "name": "Person 1"}}
    assert elapsed >= 0.14  # four requests at 20/s: at least three intervals


async def test_batches_refused_as_too_complex_are_split_and_the_size_kept(
    sandbox: SandboxServer,
) -> None:
    """A server capping document complexity (here: 10 root fields) is met by halving the
    batch until it passes; later batches start at the size that worked."""
    sandbox.control.set_faults(max_root_fields=10)
    async with PluvoClient(make_config(sandbox, batch_size=25, concurrency=1)) as client:
        results = await client.run_calls(people(60))
        assert [r.error for r in results if r.error] == []
        assert client.batch_limit == 6  # 25 → 12 → 6, the first that passed
        refused = sandbox.control.counters()["errors"].get("TooComplex", 0)
        # The first chunk: 25 and two halves of 12 refused; every later one fits at once.
        assert refused == 3
    assert len(sandbox.control.state()["users"]) == 60


async def test_batches_shrink_down_to_single_calls(sandbox: SandboxServer) -> None:
    sandbox.control.set_faults(max_root_fields=1)
    async with PluvoClient(make_config(sandbox, batch_size=3)) as client:
        results = await client.run_calls(people(2))
        assert all(r.ok for r in results)
        assert client.batch_limit == 1


async def test_a_single_call_refused_as_too_large_is_that_calls_error(
    sandbox: SandboxServer,
) -> None:
    from sync.pluvo.channel import TooLarge

    (call,) = people(1)
    async with PluvoClient(make_config(sandbox)) as client:
        (result,) = await client.sender.split([call], TooLarge("x1: too complex"))
    assert isinstance(result.error, RecordError)
    assert "even on its own as too large" in str(result.error)
