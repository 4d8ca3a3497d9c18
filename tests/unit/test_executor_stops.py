"""A stop asked for mid-run (SIGTERM, SIGINT): what it does to the operations it kept
from leaving and to the run.

Nothing more is sent once a stop is asked for; the call in flight finishes; what never
left is journaled skipped with the reason, also when the client did not give one; and
a stop during the last phase still ends the run stopped. Each test plans with the diff
and applies the plan to the in-process Pluvo (tests/support/fake_pluvo.py), whose
`run_calls` is PluvoClient's own, stop check included, reading the outcome back from
the journal.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence

import pytest

from sync import stopping
from sync.core.plan import Kind
from sync.pluvo.api import BeforeSend, OnResult
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult
from sync.state.journal import ErrorClass, OpStatus
from sync.state.read import read_owned
from sync.state.store import StateStore
from tests.support.executing import Sync, team
from tests.support.fake_pluvo import FakePluvo, Fault, subject_refs

REASON = "stopped by signal SIGTERM"


@pytest.fixture
def no_stop_left() -> Iterator[None]:
    """The stop request is process-wide: none may leak into or out of a test."""
    stopping.clear()
    yield
    stopping.clear()


class NoReasonGiven(FakePluvo):
    """A PluvoApi that honours a stop without saying why: the calls it kept back have
    no error at all. PluvoApi promises one result per call, not that a call that never
    left carries an error; PluvoClient (what FakePluvo runs) answers them with its
    StoppedError."""

    def __init__(self) -> None:
        super().__init__(batch_size=1)

    async def run_calls(
        self,
        calls: Sequence[Call],
        *,
        on_result: OnResult | None = None,
        before_send: BeforeSend | None = None,
        keep: bool = True,
        spread: bool = False,
    ) -> list[CallResult]:
        results: list[CallResult] = []
        for start in range(0, len(calls), self.batch_size):
            chunk = list(calls[start : start + self.batch_size])
            if stopping.requested() is None:
                results += await super().run_calls(
                    chunk,
                    on_result=_shifted_result(on_result, start),
                    before_send=_shifted_send(before_send, start),
                )
                continue
            for index, call in enumerate(chunk, start):
                result = CallResult(call, None, None)
                results.append(result)
                if on_result is not None:
                    outcome = on_result(index, result)
                    if inspect.isawaitable(outcome):
                        await outcome
        return results if keep else []


def honouring(*, tell_why: bool) -> FakePluvo:
    """The client's own stop (its StoppedError), or one that gives no reason."""
    return FakePluvo(batch_size=1) if tell_why else NoReasonGiven()


def _shifted_result(hook: OnResult | None, by: int) -> OnResult | None:
    if hook is None:
        return None
    return lambda index, result: hook(index + by, result)


def _shifted_send(hook: BeforeSend | None, by: int) -> BeforeSend | None:
    if hook is None:
        return None
    return lambda indexes: hook([i + by for i in indexes])


def stop_when_sent(fake: FakePluvo, field: str, ref: str) -> None:
    """SIGTERM arrives while this call is in flight: it still gets its answer."""

    def asks_to_stop(call: Call) -> bool:
        if call.field == field and ref in subject_refs(call):
            stopping.request(REASON)
        return False  # a rule that never fires: it only watches the calls leave

    fake.inject(Fault.fatal(), where=asks_to_stop, times=None)


@pytest.mark.usefixtures("no_stop_left")
@pytest.mark.parametrize(
    ("tell_why", "text"),
    [(True, REASON), (False, "the run stopped before sending it")],
    ids=["stopped-error", "no-error"],
)
def test_a_stop_sends_nothing_more_and_the_journal_says_why(
    store: StateStore, tell_why: bool, text: str
) -> None:
    """`history` must tell an operator why a creation never left, also when the client
    did not say: each is skipped with a reason, and the run ends with the stop's."""
    api = honouring(tell_why=tell_why)
    sync = Sync(store, api)
    stop_when_sent(api, "updateOrCreateUser", "E2")

    run = sync.apply(sync.plan(*team("E1", "E2", "E3", "E4")))

    assert run.execution.aborted == REASON
    assert [c.args["ref"] for c in api.sent("updateOrCreateUser")] == ["E1", "E2"]
    assert api.sent("addUsersToGroup") == [], "no later phase is sent"
    creations = {ref: run.outcome(Kind.CREATE_USER, ref) for ref in ("E1", "E2", "E3", "E4")}
    assert creations == {
        "E1": (OpStatus.DONE, None),
        "E2": (OpStatus.DONE, None),  # in flight when the stop came: it finished
        "E3": (OpStatus.SKIPPED, text),
        "E4": (OpStatus.SKIPPED, text),
    }
    assert run.outcome(Kind.ADD_MEMBERS, "G1") == (OpStatus.SKIPPED, REASON)
    assert run.row(Kind.CREATE_USER, "E3").error_class == ErrorClass.STOPPED
    assert set(read_owned(store.engine).users.index) == {"E1", "E2"}


@pytest.mark.usefixtures("no_stop_left")
def test_a_stop_during_the_last_phase_still_ends_the_run_stopped(store: StateStore) -> None:
    """With nothing after it to notice the stop, the run would otherwise be reported a
    success although a membership was never sent."""
    api = honouring(tell_why=True)
    sync = Sync(store, api)
    stop_when_sent(api, "addUsersToGroup", "G1")

    run = sync.apply(sync.plan(*team("E1", group="G1"), *team("E2", group="G2")))

    assert run.execution.aborted == REASON
    assert [c.args["groupRef"] for c in api.sent("addUsersToGroup")] == ["G1"]
    assert run.outcome(Kind.ADD_MEMBERS, "G1") == (OpStatus.DONE, None)
    assert run.outcome(Kind.ADD_MEMBERS, "G2") == (OpStatus.SKIPPED, REASON)


@pytest.mark.usefixtures("no_stop_left")
def test_progress_never_counts_what_a_stop_kept_from_leaving(
    store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """After SIGINT the log must not say "users: 4/4 done" above "not attempted: 2":
    the operations a stop kept back are skipped, not done."""
    from sync.commands.terminal import RunDisplay

    api = honouring(tell_why=True)
    sync = Sync(store, api)
    stop_when_sent(api, "updateOrCreateUser", "E2")
    reports: list[tuple[str, int, int]] = []
    caplog.set_level("INFO", logger="sync.commands.terminal")
    with RunDisplay("applying", live=False) as display:

        def hook(phase: str, done: int, total: int) -> None:
            reports.append((phase, done, total))
            display(phase, done, total)

        run = sync.apply(sync.plan(*team("E1", "E2", "E3", "E4")), progress=hook)

    assert run.execution.skipped > 0
    users = [(done, total) for phase, done, total in reports if phase == "users"]
    assert users, reports
    assert users[-1] == (2, 4), users  # E1 and E2 answered; E3 and E4 never left
    assert "users: 4/4 done" not in caplog.text
    assert not any(r.getMessage().startswith("users:") for r in caplog.records)
