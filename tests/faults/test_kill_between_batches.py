"""A killed run's successor re-sends only what the journal says may not have reached Pluvo.

The run is stopped between two batches of one phase: some of the phase's operations
`done`, the next batch `started` (its request in Pluvo's hands), the rest `pending`.
The kill point is made exact rather than raced for: the sandbox's GraphQL executor is
replaced by one that holds the third request of user upserts until released, so the
process dies while Pluvo has that request and before any answer. Released after the
kill, the request is applied, as a request can be by a server whose client is gone.

The next run settles the dead one (`started` → `abandoned`, `pending` → `skipped`) and
re-plans from the store, which holds only what Pluvo acknowledged. What it sends, read
on the sandbox's side, must be exactly the operations the killed run did not finish,
and none it finished.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, OperationType, parse
from graphql.utilities import value_from_ast_untyped

from sync.core.plan import Kind, operation_from_json
from sync.sandbox import SandboxServer
from sync.sandbox.api import Context, GraphQLApi, Outcome
from tests.faults.checks import assert_converged
from tests.support.pluvo_state import users_by_ref
from tests.support.waiting import running, wait_until
from tests.support.workspace import Workspace, employees, make_workspace

pytestmark = pytest.mark.faults

USERS = 23
BATCH = 5
HELD_BATCH = 3
"""The users phase's third request is held: two batches done, one started, two pending."""
USERS_PHASE = 1
DEADLINE = 60.0
"""Seconds any wait may take before the test fails saying what it waited for (a hang
guard, not a speed requirement)."""
HOLD_LIMIT = 120.0
"""A held request is let go after this long even if nobody releases it."""


# ------------------------------------------------------------------- the sandbox side


def mutation_calls(query: Any, variables: Any) -> list[tuple[str, str]]:
    """(root field, ref it concerns) of each mutation field of a GraphQL document."""
    if not isinstance(query, str):
        return []
    try:
        document = parse(query)
    except GraphQLError:
        return []
    values = variables if isinstance(variables, dict) else {}
    calls: list[tuple[str, str]] = []
    for definition in document.definitions:
        if not (
            isinstance(definition, OperationDefinitionNode)
            and definition.operation is OperationType.MUTATION
        ):
            continue
        for node in definition.selection_set.selections:
            if isinstance(node, FieldNode):
                args = {
                    a.name.value: value_from_ast_untyped(a.value, values)
                    for a in node.arguments or ()
                }
                calls.append((node.name.value, ref_in(args)))
    return calls


def ref_in(args: Mapping[str, Any]) -> str:
    """The ref a call names: a user, a group, or the user whose values it sets."""
    for key in ("ref", "groupRef", "modelRef"):
        if args.get(key):
            return str(args[key])
    for key in ("group", "user"):
        nested = args.get(key)
        if isinstance(nested, dict) and nested.get("ref"):
            return str(nested["ref"])
    return ""


class HoldingApi(GraphQLApi):
    """The sandbox's executor, recording every mutation field it runs, holding one request.

    The `hold_at`-th request carrying a `hold_field` mutation waits (before anything of
    it is applied) until `release` is set; `held` says it is waiting, `applied` that it
    ran afterwards.
    """

    def __init__(self, hold_field: str, hold_at: int) -> None:
        super().__init__()
        self.hold_field = hold_field
        self.hold_at = hold_at
        self.seen = 0
        self.calls: list[tuple[str, str]] = []
        self.held = threading.Event()
        self.release = threading.Event()
        self.applied = threading.Event()

    async def run(
        self, query: Any, variables: Any, operation_name: Any, context: Context
    ) -> Outcome:
        calls = mutation_calls(query, variables)
        holding = False
        if any(name == self.hold_field for name, _ in calls):
            self.seen += 1
            holding = self.seen == self.hold_at
        if holding:
            self.held.set()
            # Waited for off the sandbox's loop, which keeps serving the control API.
            await asyncio.to_thread(self.release.wait, HOLD_LIMIT)
        outcome = await super().run(query, variables, operation_name, context)
        self.calls.extend(calls)
        if holding:
            self.applied.set()
        return outcome


class HoldingSandbox(SandboxServer):
    """A default sandbox whose GraphQL requests go through a `HoldingApi`."""

    def __init__(self, api: HoldingApi) -> None:
        super().__init__()
        self.api = api
        self.holding = api


@pytest.fixture
def sandbox() -> Iterator[HoldingSandbox]:
    """This module's sandbox: holds request HELD_BATCH of user upserts (released at the
    latest on teardown, so the server can stop)."""
    server = HoldingSandbox(HoldingApi("updateOrCreateUser", HELD_BATCH))
    with server:
        yield server
        server.holding.release.set()


CONFIG: dict[str, Any] = {
    "pluvo.batch_size": BATCH,
    "pluvo.concurrency": 1,  # one request at a time: batches leave in plan order
    "pluvo.max_retries": 2,
    "pluvo.backoff_base": 0.05,
    "pluvo.backoff_max": 0.2,
    "pluvo.timeout": 2 * HOLD_LIMIT,  # the held request must not time out client-side
}


@pytest.fixture
def ws(sandbox: HoldingSandbox, tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "ws", sandbox.url, **CONFIG)


# ------------------------------------------------------------------- the engine side


@dataclass(frozen=True)
class Op:
    """One journaled operation, as the store holds it."""

    seq: int
    phase: int
    kind: str
    ref: str
    status: str
    payload: str

    def field(self) -> str:
        """The GraphQL field this operation sends."""
        return operation_from_json(json.loads(self.payload)).to_call(send_invite=False).field


def journal(ws: Workspace, run_id: str) -> list[Op]:
    rows = ws.query(
        "SELECT seq, phase, kind, ref, status, payload FROM operations WHERE run_id = ? "
        "ORDER BY seq",
        run_id,
    )
    return [Op(*row) for row in rows]


def running_run(ws: Workspace) -> str:
    """The id of the one open run; empty while there is none."""
    try:
        rows = ws.query("SELECT id FROM runs WHERE status = 'running'")
    except sqlite3.OperationalError:  # busy: not there yet
        return ""
    return str(rows[0][0]) if len(rows) == 1 else ""


def statuses_by_phase(ops: list[Op]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for op in ops:
        out.setdefault(op.phase, []).append(op.status)
    return out


def expected_at_kill(ops: list[Op]) -> dict[int, list[str]]:
    """Earlier phases done; in the users phase two batches done, one started, the rest
    pending; later phases pending."""
    users = sum(op.phase == USERS_PHASE for op in ops)
    done = (HELD_BATCH - 1) * BATCH
    shape: dict[int, list[str]] = {}
    for phase, statuses in statuses_by_phase(ops).items():
        if phase < USERS_PHASE:
            shape[phase] = ["done"] * len(statuses)
        elif phase == USERS_PHASE:
            rest = users - done - BATCH
            shape[phase] = ["done"] * done + ["started"] * BATCH + ["pending"] * rest
        else:
            shape[phase] = ["pending"] * len(statuses)
    return shape


def kill_between_batches(ws: Workspace, sandbox: HoldingSandbox) -> tuple[str, list[Op]]:
    """Start `run`, SIGKILL it while the held batch is in Pluvo's hands; its journal then."""
    holding = sandbox.holding
    with running(ws, "run") as process:
        wait_until(
            holding.held.is_set,
            what=f"request {HELD_BATCH} of user upserts at the sandbox",
            timeout=DEADLINE,
            process=process,
        )
        run_id = wait_until(
            lambda: running_run(ws), what="the open run", timeout=DEADLINE, process=process
        )
        seen: list[Op] = []

        def between_batches() -> bool:
            seen[:] = journal(ws, run_id)
            return bool(seen) and statuses_by_phase(seen) == expected_at_kill(seen)

        try:
            wait_until(
                between_batches,
                what="the journal between two batches of the users phase",
                timeout=DEADLINE,
                process=process,
            )
        except AssertionError as exc:
            shape = {p: dict(Counter(s)) for p, s in statuses_by_phase(seen).items()}
            raise AssertionError(f"{exc}; journal by phase: {shape}") from None
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=DEADLINE) == -signal.SIGKILL
    return run_id, journal(ws, run_id)


# ----------------------------------------------------------------------------- test


def test_successor_resends_exactly_what_the_killed_run_did_not_finish(
    sandbox: HoldingSandbox, ws: Workspace
) -> None:
    rows = employees(USERS)
    ws.write_hr(rows)
    holding = sandbox.holding

    killed_id, killed = kill_between_batches(ws, sandbox)
    assert statuses_by_phase(killed) == expected_at_kill(killed), "the journal moved at the kill"
    by_status: dict[str, list[Op]] = {}
    for op in killed:
        by_status.setdefault(op.status, []).append(op)
    started = by_status["started"]
    assert {op.kind for op in started} == {str(Kind.CREATE_USER)}
    users_done = {op.ref for op in by_status["done"] if op.phase == USERS_PHASE}
    users_started = {op.ref for op in started}
    users_pending = {op.ref for op in by_status["pending"] if op.phase == USERS_PHASE}

    # The held request was not applied while the engine lived; it is once released.
    assert set(users_by_ref(sandbox)) == users_done
    holding.release.set()
    assert holding.applied.wait(DEADLINE), "the held request was not applied after release"
    assert set(users_by_ref(sandbox)) == users_done | users_started
    assert not users_pending & set(users_by_ref(sandbox))

    sandbox.control.reset_counters()
    holding.calls.clear()
    successor = ws.cli("run")
    assert successor.returncode == 0, successor.stdout[-2000:] + successor.stderr[-2000:]
    assert f"settled 1 interrupted run(s): {killed_id}" in successor.stderr

    # The killed run is settled: what left may have reached Pluvo, the rest never did.
    settled = {op.seq: op.status for op in journal(ws, killed_id)}
    moved = {"done": "done", "started": "abandoned", "pending": "skipped"}
    assert settled == {op.seq: moved[op.status] for op in killed}
    assert ws.query("SELECT status FROM runs WHERE id = ?", killed_id) == [("aborted",)]

    # The successor planned exactly the unfinished operations. A creation that reached
    # Pluvo comes back as an adoption of the user it made (matched by ref), and that
    # user is still the engine's own.
    (successor_id,) = ws.query("SELECT id FROM runs WHERE id != ?", killed_id)[0]
    again = journal(ws, successor_id)
    assert {op.status for op in again} == {"done"}
    unfinished = [op for op in killed if op.status != "done"]
    expected = Counter(
        (str(Kind.ADOPT_USER) if op in started else op.kind, op.ref) for op in unfinished
    )
    assert Counter((op.kind, op.ref) for op in again) == expected
    owned = dict(ws.query("SELECT ref, owned FROM users"))
    assert {owned[ref] for ref in users_started} == {"created"}

    # And Pluvo received exactly those calls: every unfinished operation once, nothing
    # the killed run had finished.
    received = Counter(holding.calls)
    assert received == Counter((op.field(), op.ref) for op in unfinished)
    upserted = {ref for name, ref in received if name == "updateOrCreateUser"}
    assert upserted == users_started | users_pending
    assert not upserted & users_done, "a user the killed run had finished was sent again"
    counters = sandbox.control.counters()
    assert counters["mutations"] == dict(Counter(name for name, _ in received.elements()))
    assert counters["mutations_total"] == len(unfinished)

    assert_converged(sandbox, ws, rows)
