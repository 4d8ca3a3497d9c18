"""The client's own request path, run against the in-process Pluvo.

FakePluvo is PluvoClient over a transport that executes in process, so what the
client does about a refusal, an expired token or an outage is checked here in the
fast tier, without a server: the circuit breaker ending a run within
`pluvo.outage_timeout`, re-authentication, and the splitting of a batch Pluvo refuses
as too large.
"""

from __future__ import annotations

import time

from sync.core.plan import Kind
from sync.errors import FatalError
from sync.pluvo import ops
from sync.sandbox.faults import Faults
from sync.state.journal import OpStatus
from sync.state.store import StateStore
from tests.support.executing import Sync, team
from tests.support.fake_pluvo import FakePluvo, Fault

OUTAGE_TIMEOUT = 0.5


def test_an_outage_ends_the_run_within_the_outage_timeout(store: StateStore) -> None:
    """Every user batch goes unanswered; retries and backoff are set so that, without
    the breaker, the first batch alone would be retried for over a minute."""
    fake = FakePluvo(
        batch_size=2,
        pluvo={
            "max_retries": 8,
            "backoff_base": 1.0,
            "backoff_max": 30.0,
            "outage_timeout": OUTAGE_TIMEOUT,
        },
    )
    fake.inject(Fault.transient("Pluvo answered 503"), field="updateOrCreateUser", times=None)
    sync = Sync(store, fake)

    started = time.monotonic()
    run = sync.apply(sync.plan(*team("E1", "E2", "E3", "E4", "E5", "E6")))
    elapsed = time.monotonic() - started

    assert elapsed < OUTAGE_TIMEOUT + 1.5, f"the run took {elapsed:.1f} s"
    aborted = run.execution.aborted or ""
    assert aborted.startswith("Pluvo has not answered for"), aborted
    assert fake.counters.requests <= 6, "a few unanswered requests, then nothing more"
    sent = {c.args["ref"] for c in fake.sent("updateOrCreateUser")}
    assert sent == {"E1", "E2"}, "only the first user batch was ever sent"
    statuses = {ref: run.outcome(Kind.CREATE_USER, ref)[0] for ref in ("E1", "E3", "E6")}
    assert statuses == {
        "E1": OpStatus.FAILED,
        "E3": OpStatus.SKIPPED,
        "E6": OpStatus.SKIPPED,
    }
    assert run.outcome(Kind.ADD_MEMBERS, "G1")[0] is OpStatus.SKIPPED
    assert fake.users() == {}


async def test_expired_tokens_are_renewed_and_the_call_goes_again() -> None:
    fake = FakePluvo()
    (first,) = await fake.run_calls([ops.create_group("G1", "Sales")])
    assert first.ok
    fake.expire_tokens()
    (second,) = await fake.run_calls([ops.create_group("G2", "Ops")])
    assert second.ok
    assert (fake.counters.reauths, fake.token_requests, fake.tokens_issued) == (1, 2, 2)
    assert fake.counters.requests == 3  # the refused attempt, then the same request again
    assert set(fake.groups()) == {"G1", "G2"}


async def test_a_token_refused_as_soon_as_issued_is_fatal() -> None:
    fake = FakePluvo()
    fake.inject(Fault.record(), field="createGroup")  # never reached
    fake.expire_tokens()
    original = fake._token

    def useless(form: object) -> object:
        answer = original(form)  # type: ignore[arg-type]
        fake.expire_tokens()
        return answer

    fake._token = useless  # type: ignore[method-assign]
    (result,) = await fake.run_calls([ops.create_group("G1", "Sales")])
    assert isinstance(result.error, FatalError)
    assert "refused a freshly issued token" in str(result.error)
    assert fake.groups() == {}


async def test_a_batch_refused_as_too_large_is_split_for_the_rest_of_the_run() -> None:
    fake = FakePluvo(batch_size=5, settings=Faults(max_root_fields=2))
    calls = [ops.create_group(f"G{i}", f"Group {i}") for i in range(7)]
    results = await fake.run_calls(calls)
    assert all(r.ok for r in results)
    assert len(fake.groups()) == 7
    sizes = [len(b) for b in fake.batches]
    assert sizes[:2] == [5, 3], "refused whole, then its first half refused again"
    assert max(sizes[2:]) <= 2
    assert sum(sizes[2:]) == 7
    assert fake.batch_limit <= 2  # kept for the rest of the client's life
    assert fake.server_counters.errors["TooComplex"] == 2
