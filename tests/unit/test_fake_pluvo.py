"""The in-process Pluvo (tests/support/fake_pluvo.py): sandbox answers, failures where aimed.

The fake is `PluvoClient` over a transport that runs the sandbox's executor in process.
One test runs the same calls through the client against the sandbox over loopback
HTTP and through the fake, and asserts the same answers, the same requests and the
same final state: the transport is trusted in executor tests because of that test.
The others aim each injected failure at one call or its request and check that it
lands there and nowhere else, as the real client reports it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import pytest

from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError, PluvoError, RecordError, TransientError
from sync.pluvo import ops
from sync.pluvo.api import PluvoApi
from sync.pluvo.client import PluvoClient, chunk_size
from sync.pluvo.ops import Call
from sync.pluvo.results import CallResult, MembershipResult
from sync.sandbox.faults import Faults
from sync.sandbox.server import SandboxServer
from sync.sandbox.store import Seed
from tests.support.fake_pluvo import FakePluvo, Fault, subject_refs

UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def person(ref: str, name: str | None = None, **fields: Any) -> Call:
    user = {"name": name or f"Person {ref}", "email": f"{ref.lower()}@example.org", **fields}
    return ops.upsert_user(ref, user, send_invite=False)


def people(*refs: str) -> list[Call]:
    return [person(ref) for ref in refs]


def seeded(**kwargs: Any) -> FakePluvo:
    """A fake holding users E1..E4 and group G1 (no members)."""
    return FakePluvo(
        seed=Seed(
            users=[
                {"ref": f"E{i}", "name": f"Person {i}", "email": f"e{i}@example.org"}
                for i in range(1, 5)
            ],
            groups=[{"ref": "G1", "name": "Sales"}],
        ),
        **kwargs,
    )


def failing(results: Sequence[CallResult]) -> list[int]:
    return [i for i, r in enumerate(results) if r.error is not None]


# ---------------------------------------------------------------- like the sandbox


def _first_calls() -> list[Call]:
    """Every mutation the engine sends, in its successful and its refused forms."""
    return [
        person("E1", "Ann", language="NL"),
        ops.upsert_user(
            "E2",
            {"name": "Bob", "email": "bob@example.org", "roles": "MANAGER,TRAINER"},
            send_invite=True,
        ),
        person("E3", "Cy"),
        ops.upsert_user("BAD", {"name": "No mail", "email": "not-an-email"}, send_invite=False),
        ops.upsert_user("E4", {"name": "Dup", "email": "E1@example.org"}, send_invite=False),
        person("E1", "Ann B"),
        ops.update_user(ref="NOBODY", user={"name": "x"}),
        ops.update_user(ref="E3", user={"isActive": False}),
        ops.create_group("G1", "Sales"),
        ops.create_group("G1", "Sales again"),
        ops.update_group("G1", name="Sales NL"),
        ops.update_group("G9", name="Missing"),
        ops.create_group("G2", "Ops"),
        ops.add_users_to_group("G1", ["E1", "E2", "NOPE"]),
        ops.add_users_to_group("G1", ["E1"]),
        ops.remove_users_from_group("G1", ["E2", "E3"]),
        ops.add_users_to_group("G2", ["E1", "E3", "NOPE"], result_fields="refs"),
        ops.add_users_to_group("G9", ["E1"]),
        ops.add_managers_to_group("G1", ["E2", "E3", "NOPE"]),
        ops.remove_managers_from_group("G1", ["E3"]),
        ops.set_extra_values(
            "E1",
            [
                {"categoryRef": "department", "stringValue": "Sales"},
                {"categoryRef": "location", "choiceValues": [{"stringValue": "Utrecht"}]},
                {"categoryRef": "start_date", "datetimeValue": "2024-05-01T08:30:00"},
            ],
        ),
        ops.set_extra_values(
            "E2", [{"categoryRef": "location", "choiceValues": [{"stringValue": "Paris"}]}]
        ),
        ops.set_extra_values("NOBODY", [{"categoryRef": "department", "stringValue": "x"}]),
        ops.upsert_user("E2", {"archived": True}, send_invite=False),
    ]


def _then_calls(e3_id: str) -> tuple[list[Call], list[Call]]:
    mutations = [ops.archive_users([e3_id, UNKNOWN_ID]), ops.archive_users([e3_id], archive=False)]
    queries = [
        ops.get_user(ref="E1"),
        ops.get_user(email="BOB@example.org"),
        ops.get_user(ref="NOBODY"),
        Call(
            "paginatedUsers",
            {"first": 2, "archived": False},
            "count edges { node { ref name } }",
            "query",
        ),
    ]
    return mutations, queries


def _scrub(value: Any, names: dict[str, str]) -> Any:
    """Ids replaced by the ref they stand for (each side has its own uuids)."""
    if isinstance(value, dict):
        return {k: _scrub(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, names) for v in value]
    if isinstance(value, str):
        return re.sub(
            r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            lambda m: f"<{names.get(m.group(0), 'id')}>",
            value,
        )
    return value


def _answers(results: Sequence[CallResult], names: dict[str, str]) -> list[Any]:
    return [
        (
            _scrub(r.data, names),
            type(r.error).__name__ if r.error else None,
            getattr(r.error, "code", None),
            _scrub(str(r.error), names) if r.error else None,
        )
        for r in results
    ]


def _comparable(state: dict[str, Any]) -> dict[str, Any]:
    drop = {"id", "createdAt", "archivedAt", "memberIds", "managerIds"}
    return {
        kind: sorted(
            ({k: v for k, v in item.items() if k not in drop} for item in state[kind]),
            key=lambda item: str(item["ref"]),
        )
        for kind in ("users", "groups")
    }


def _names(state: dict[str, Any]) -> dict[str, str]:
    return {item["id"]: str(item["ref"]) for kind in ("users", "groups") for item in state[kind]}


async def test_answers_and_state_are_the_sandboxes(sandbox: SandboxServer) -> None:
    config = PluvoConfig.model_validate(
        {
            "url": sandbox.url,
            "client_id": "sandbox-client",
            "client_secret": "sandbox-secret",
            "batch_size": 5,
            "concurrency": 1,
        }
    )
    async with PluvoClient(config) as client:
        real_first = await client.run_calls(_first_calls())
        real_e3 = sandbox.control.user("E3")
        assert real_e3 is not None
        mutations, queries = _then_calls(real_e3["id"])
        real_then = await client.run_calls(mutations) + await client.run_calls(queries)
        real_count = await client.count_users(archived=True)
        real_counters = client.counters
    fake = FakePluvo(batch_size=5)
    fake_first = await fake.run_calls(_first_calls())
    fake_e3 = fake.user("E3")
    assert fake_e3 is not None
    mutations, queries = _then_calls(fake_e3["id"])
    fake_then = await fake.run_calls(mutations) + await fake.run_calls(queries)

    real_state, fake_state = sandbox.control.state(), fake.state()
    real_names, fake_names = _names(real_state), _names(fake_state)
    assert _answers(fake_first, fake_names) == _answers(real_first, real_names)
    assert _answers(fake_then, fake_names) == _answers(real_then, real_names)
    assert _comparable(fake_state) == _comparable(real_state)
    assert await fake.count_users(archived=True) == real_count == 1
    assert (fake.counters.requests, fake.counters.mutations) == (
        real_counters.requests,
        real_counters.mutations,
    )
    seen = sandbox.control.counters()
    assert dict(fake.server_counters.mutations) == seen["mutations"]
    assert fake.server_counters.invites == seen["invites"] == 1
    # the refusals the comparison covered, so an empty script cannot pass
    assert failing(fake_first) == [3, 4, 6, 9, 11, 17, 21, 22]
    assert fake_first[9].error is not None
    assert getattr(fake_first[9].error, "code", None) == "Conflict"


async def test_it_is_a_pluvo_api() -> None:
    fake = FakePluvo()
    api: PluvoApi = fake
    async with api as entered:
        assert entered is fake
        assert await entered.count_users() == 0
    assert fake.opened == 1
    assert api.counters.requests == 1


async def test_variables_and_literals_agree() -> None:
    calls = [person("E1", 'Zoë "Z"', roles=["MANAGER"], language="EN"), person("E2")]
    typed, inline = FakePluvo(), FakePluvo(inline_arguments=True)
    for fake in (typed, inline):
        assert all(r.ok for r in await fake.run_calls(calls))
    assert _comparable(typed.state()) == _comparable(inline.state())
    assert (typed.user("E1") or {})["name"] == 'Zoë "Z"'


async def test_a_value_that_cannot_be_coerced_fails_its_call_alone() -> None:
    fake = FakePluvo()
    results = await fake.run_calls([person("E1"), person("E2", language="XX"), person("E3")])
    assert failing(results) == [1]
    assert isinstance(results[1].error, RecordError)
    assert results[1].error.code == "BadRequest"
    assert set(fake.users()) == {"E1", "E3"}


# ---------------------------------------------------------------- recording


async def test_chunks_hooks_and_counters_follow_run_calls() -> None:
    fake = FakePluvo(batch_size=2)
    events: list[tuple[str, Any]] = []

    async def before_send(indexes: Sequence[int]) -> None:
        events.append(("send", list(indexes)))

    async def on_result(index: int, result: CallResult) -> None:
        events.append(("result", index))

    calls = people("E1", "E2", "E3")
    results = await fake.run_calls(calls, before_send=before_send, on_result=on_result)
    assert [r.call for r in results] == calls
    assert events == [
        ("send", [0, 1]),
        ("result", 0),
        ("result", 1),
        ("send", [2]),
        ("result", 2),
    ]
    assert fake.announced == [(0, 1), (2,)]
    assert fake.batches == [tuple(calls[:2]), (calls[2],)]
    assert fake.calls == calls
    assert fake.results == results
    assert (fake.counters.requests, fake.counters.mutations) == (2, 3)
    assert await fake.count_users() == 3
    assert (fake.counters.requests, fake.counters.mutations) == (3, 3)
    assert fake.sent("paginatedUsers")[0].operation == "query"
    assert await fake.run_calls([]) == []
    with pytest.raises(ValueError, match="one kind"):
        await fake.run_calls([person("E1"), ops.get_user(ref="E1")])
    fake.clear_records()
    assert (fake.calls, fake.batches, fake.counters.requests) == ([], [], 0)
    assert set(fake.users()) == {"E1", "E2", "E3"}


async def test_concurrent_chunks_interleave_like_the_client() -> None:
    fake = FakePluvo(batch_size=1, concurrency=2)
    events: list[tuple[str, int]] = []
    await fake.run_calls(
        people("E1", "E2"),
        before_send=lambda ix: events.append(("send", ix[0])),
        on_result=lambda i, r: events.append(("result", i)),
    )
    assert events.index(("send", 1)) < events.index(("result", 0))
    assert set(fake.users()) == {"E1", "E2"}


async def test_spread_reads_fill_the_concurrency_as_the_client_does() -> None:
    fake = FakePluvo(batch_size=25, concurrency=4)
    reads = [Call("user", {"ref": f"E{i}"}, "id", "query") for i in range(19)]
    await fake.run_calls(reads, spread=True)
    assert [len(b) for b in fake.batches] == [5, 5, 5, 4]
    fake.clear_records()
    await fake.run_calls(reads)
    assert [len(b) for b in fake.batches] == [19]
    assert [chunk_size(n, 25, 4, True) for n in (1, 4, 5, 100, 101, 1000)] == [1, 1, 2, 25, 25, 25]
    assert chunk_size(1000, 25, 4, False) == 25


async def test_a_hook_that_raises_surfaces_as_itself() -> None:
    """The client unwraps its task group: the caller's handlers see the hook's error."""

    def broken(index: int, result: CallResult) -> None:
        raise RuntimeError("journal unavailable")

    with pytest.raises(RuntimeError, match="journal unavailable"):
        await FakePluvo().run_calls(people("E1"), on_result=broken)


# ---------------------------------------------------------------- injected failures


async def test_record_error_lands_on_the_call_it_names() -> None:
    fake = seeded()
    rule = fake.inject(Fault.record("Conflict", "already exists"), field="createGroup", ref="G3")
    calls = [ops.create_group(ref, ref) for ref in ("G2", "G3", "G4")]
    results = await fake.run_calls(calls)
    assert failing(results) == [1]
    error = results[1].error
    assert isinstance(error, RecordError)
    assert error.code == "Conflict"
    assert str(error) == "createGroup: Conflict: already exists"
    assert rule.hits == [1]
    assert set(fake.groups()) == {"G1", "G2", "G4"}  # refused: not applied
    again = await fake.run_calls([ops.create_group("G3", "G3")])
    assert again[0].ok  # spent after one call
    assert rule.spent


async def test_transient_error_by_call_number_fails_its_request() -> None:
    """A transient failure is the request's: every call of the batch carrying call 2
    is the client's TransientError, none of them applied; the next batch goes."""
    fake = seeded(batch_size=2)
    await fake.run_calls(people("E5"))  # call 0
    rule = fake.inject(Fault.transient(), call=2)
    results = await fake.run_calls(people("E6", "E7", "E8"))  # calls 1..3
    assert failing(results) == [0, 1]
    assert all(isinstance(r.error, TransientError) for r in results[:2])
    assert "gave up after 1 attempts" in str(results[1].error)
    assert fake.calls.index(results[1].call) == 2
    assert rule.hits == [2]
    assert not {"E6", "E7"} & set(fake.users())
    assert "E8" in fake.users()


async def test_retries_send_the_request_again() -> None:
    """With retries, a transient failure that does not last is the client's to absorb."""
    fake = seeded(batch_size=2, pluvo={"max_retries": 2})
    rule = fake.inject(Fault.transient(), ref="E6", times=2)
    results = await fake.run_calls(people("E5", "E6"))
    assert failing(results) == []
    assert rule.hits == [1, 3]
    assert len(fake.batches) == 3
    assert (fake.counters.requests, fake.counters.retries) == (3, 2)
    assert {"E5", "E6"} <= set(fake.users())


async def test_lost_answer_is_applied_but_reported_transient() -> None:
    fake = seeded(batch_size=2)
    fake.inject(Fault.lost(), field="updateOrCreateUser", ref="E2")
    results = await fake.run_calls(
        [person("E1", "One"), person("E2", "Two"), person("E3", "Three")]
    )
    assert failing(results) == [0, 1]  # the request's answer was lost, not one call's
    assert isinstance(results[1].error, TransientError)
    assert results[1].data is None
    assert (fake.user("E1") or {})["name"] == "One"
    assert (fake.user("E2") or {})["name"] == "Two"
    assert results[2].ok
    resent = await fake.run_calls([person("E2", "Two")])
    assert resent[0].ok
    assert resent[0].data["created"] is False


@pytest.mark.parametrize("fields", ["ids", "refs"])
async def test_failed_members_are_reported_and_not_applied(fields: ops.MembershipFields) -> None:
    fake = seeded()
    fake.inject(Fault.failed_items("E2"), field="addUsersToGroup", ref="G1")
    calls = [
        ops.add_users_to_group("G1", ["E1", "E2", "E3"], result_fields=fields),
        ops.add_users_to_group("G1", ["E4"], result_fields=fields),
    ]
    results = await fake.run_calls(calls)
    assert failing(results) == []
    first = MembershipResult.parse(results[0].data)
    assert first.failed == ("E2",)
    assert len(first.changed) == 2
    assert MembershipResult.parse(results[1].data).failed == ()
    assert fake.members("G1") == {"E1", "E3", "E4"}


async def test_failed_items_in_bulk_answers() -> None:
    fake = seeded()
    ids = {ref: u["id"] for ref, u in fake.users().items()}
    fake.inject(Fault.failed_items(ids["E2"]), field="archiveUsers")
    fake.inject(Fault.failed_items(), field="addManagersToGroup")
    results = await fake.run_calls(
        [
            ops.archive_users([ids["E1"], ids["E2"]]),
            ops.add_managers_to_group("G1", ["E3", "E4"]),
            ops.add_managers_to_group("G1", ["E1"]),
        ]
    )
    assert results[0].data["response"] == {"succeededIds": [ids["E1"]], "failedIds": [ids["E2"]]}
    assert results[1].data["response"] == {"succeededIds": [], "failedIds": ["E3", "E4"]}
    assert results[2].data["response"]["failedIds"] == []
    users = fake.users()
    assert (users["E1"]["archived"], users["E2"]["archived"]) == (True, False)
    assert fake.managers("G1") == {"E1"}


async def test_failed_items_need_a_bulk_call() -> None:
    fake = seeded()
    fake.inject(Fault.failed_items(), field="updateOrCreateUser")
    with pytest.raises(ValueError, match="bulk or membership"):
        await fake.run_calls(people("E9"))


async def test_fatal_fails_its_chunk_and_every_later_one_unsent() -> None:
    fake = seeded(batch_size=2)
    announced: list[list[int]] = []
    seen: list[int] = []
    fake.inject(Fault.fatal("credentials revoked"), ref="E8")
    calls = people("E5", "E6", "E7", "E8", "E9", "E10")
    results = await fake.run_calls(
        calls,
        before_send=lambda ix: announced.append(list(ix)),
        on_result=lambda i, r: seen.append(i),
    )
    assert failing(results) == [2, 3, 4, 5]
    errors = {id(r.error) for r in results[2:]}
    assert len(errors) == 1
    assert isinstance(results[2].error, FatalError)
    assert str(results[2].error) == (
        "mutation updateOrCreateUser x2: Pluvo rejected the document "
        "(Injected: credentials revoked)"
    )
    assert announced == [[0, 1], [2, 3]]
    assert seen == list(range(6))
    assert fake.calls == calls[:4]
    assert fake.counters.requests == 2
    assert {"E5", "E6"} <= set(fake.users())
    assert not {"E7", "E8", "E9", "E10"} & set(fake.users())


async def test_rules_combine_conditions_and_count_hits() -> None:
    fake = seeded(batch_size=1)  # a request per call: each call's rule decides its fate
    always = fake.inject(Fault.transient(), field="updateUser", times=None)
    twice = fake.inject(Fault.record("InvalidInput"), field="updateOrCreateUser", times=2)
    odd = fake.inject(Fault.record("NotFound"), where=lambda c: c.field == "createGroup", ref="G7")
    calls = [
        ops.update_user(ref="E1", user={"name": "a"}),
        person("E1"),
        ops.update_user(ref="E2", user={"name": "b"}),
        person("E2"),
        person("E3"),
    ]
    results = await fake.run_calls(calls)
    assert failing(results) == [0, 1, 2, 3]
    assert always.hits == [0, 2]
    assert twice.hits == [1, 3]
    groups = await fake.run_calls([ops.create_group("G6", "x"), ops.create_group("G7", "y")])
    assert failing(groups) == [1]
    assert odd.hits == [6]


async def test_first_matching_rule_wins_and_fatal_beats_the_rest() -> None:
    fake = seeded(batch_size=3)
    first = fake.inject(Fault.transient(), ref="E1")
    second = fake.inject(Fault.record("X"), ref="E1")
    results = await fake.run_calls([person("E1")])
    assert isinstance(results[0].error, TransientError)
    assert (first.hits, second.hits) == ([0], [])
    fatal = fake.inject(Fault.fatal(), ref="E2")
    results = await fake.run_calls([person("E1"), person("E2")])
    assert all(isinstance(r.error, FatalError) for r in results)
    assert second.hits == []  # nothing of a refused request is matched or applied
    assert fatal.hits == [2]


async def test_count_users_can_fail_too() -> None:
    fake = seeded()
    fake.inject(Fault.transient(), field="paginatedUsers")
    with pytest.raises(TransientError):
        await fake.count_users()
    assert await fake.count_users() == 4


def test_subject_refs() -> None:
    assert subject_refs(ops.create_group("G1", "x")) == {"G1"}
    assert subject_refs(ops.add_users_to_group("G1", ["E1"])) == {"G1"}
    assert subject_refs(ops.set_extra_values("E1", [])) == {"E1"}
    assert subject_refs(ops.get_user(email="a@b.org")) == {"a@b.org"}
    assert subject_refs(person("E1")) == {"E1"}


# ---------------------------------------------------------------- the sandbox's own refusals


async def test_a_scope_the_token_lacks_fails_before_sending() -> None:
    """The token answer lists the granted scopes: the client refuses to send a batch
    that needs another, and stops the batches after it."""
    fake = seeded(batch_size=2, scopes=["users.read", "users.write"])
    results = await fake.run_calls(
        [person("E5"), ops.create_group("G2", "x"), person("E6"), person("E7")]
    )
    assert all(isinstance(r.error, FatalError) for r in results)
    assert "groups.write" in str(results[0].error)
    assert "not granted to the token" in str(results[0].error)
    assert fake.batches == []
    assert not {"E5", "E6", "E7"} & set(fake.users())


async def test_a_missing_scope_pluvo_refuses_is_fatal_for_the_request() -> None:
    """A token answer that does not list scopes: Pluvo's PermissionDenied on one alias
    fails the whole request (its permitted calls were executed) and stops the rest."""
    fake = seeded(batch_size=2, scopes=["users.read", "users.write"], report_scopes=False)
    results = await fake.run_calls(
        [person("E5"), ops.create_group("G2", "x"), person("E6"), person("E7")]
    )
    assert all(isinstance(r.error, FatalError) for r in results)
    assert "groups.write" in str(results[0].error)
    assert len(fake.batches) == 1
    assert "E5" in fake.users()
    assert not {"E6", "E7"} & set(fake.users())


async def test_a_document_the_schema_refuses_is_fatal() -> None:
    fake = seeded(batch_size=2)
    results = await fake.run_calls(
        [person("E5"), Call("mergeUsers", {"ref": "E1"}, "ok"), person("E6")]
    )
    assert all(isinstance(r.error, FatalError) for r in results)
    assert "mergeUsers" in str(results[0].error)
    assert "E5" not in fake.users()
    assert fake.counters.requests == 1


# ---------------------------------------------------------------- state and reads


async def test_state_accessors() -> None:
    fake = FakePluvo(settings=Faults(extra_values_mode="replace"))
    fake.seed(
        users=[{"ref": "E1", "name": "Ann", "email": "ann@example.org"}],
        groups=[{"ref": "G1", "name": "Sales", "members": ["E1"]}],
    )
    await fake.run_calls(
        [
            person("E2"),
            ops.add_managers_to_group("G1", ["E2"]),
            ops.set_extra_values("E1", [{"categoryRef": "department", "stringValue": "A"}]),
            ops.set_extra_values("E1", [{"categoryRef": "job_title", "stringValue": "B"}]),
            ops.upsert_user("E2", {"isActive": False}, send_invite=False),
        ]
    )
    assert fake.extra("E1") == {"job_title": "B"}  # replace mode cleared department
    assert fake.members("G1") == {"E1"}
    assert fake.managers("G1") == {"E2"}
    assert fake.members("NOPE") == set()
    user = fake.user("E2")
    assert user is not None
    assert (user["isActive"], user["archived"]) == (False, False)
    group = fake.group("G1")
    assert group is not None
    assert group["name"] == "Sales"
    assert fake.user("NOBODY") is None


async def test_execute_and_list_groups_read_the_store() -> None:
    fake = seeded()
    await fake.run_calls([ops.add_users_to_group("G1", ["E1", "E2"])])
    data = await fake.execute("query($ref: String) { user(ref: $ref) { ref name } }", {"ref": "E1"})
    assert data == {"user": {"ref": "E1", "name": "Person 1"}}
    with pytest.raises(FatalError, match="rejected"):
        await fake.execute("query { nope }")
    with pytest.raises(PluvoError):
        await fake.execute("query { paginatedUsers(first: 500) { count } }")
    (group,) = await fake.list_groups()
    assert group.member_refs == {"E1", "E2"}
    assert group.managers == ()
