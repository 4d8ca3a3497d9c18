"""Batches with variables against the sandbox, seen on the wire through a recording proxy.

The proxy is a real aiohttp server between client and sandbox that keeps each GraphQL
body it forwards, so the tests assert what actually travels (document text, variables)
as well as what the sandbox stored.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from graphql import build_schema

from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError, RecordError
from sync.pluvo import ops
from sync.pluvo.client import PluvoClient
from sync.pluvo.results import GroupRecord, MembershipResult, UpsertResult
from sync.pluvo.schema import SCHEMA_FILE
from sync.sandbox.server import SandboxServer

Bodies = list[dict[str, Any]]


@asynccontextmanager
async def recording_proxy(target: str) -> AsyncIterator[tuple[str, Bodies]]:
    """Forward token and GraphQL POSTs to `target`, keeping every GraphQL body."""
    bodies: Bodies = []
    session = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path == "/graphql/":
            bodies.append(json.loads(raw))
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "content-type", "accept")
        }
        async with session.post(
            target + request.path.lstrip("/"), data=raw, headers=headers, allow_redirects=False
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                body=body,
                status=upstream.status,
                content_type=upstream.content_type,
                headers={k: v for k, v in upstream.headers.items() if k == "Retry-After"},
            )

    app = web.Application()
    app.router.add_post("/oauth/token/", forward)
    app.router.add_post("/graphql/", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/", bodies
    finally:
        await runner.cleanup()
        await session.close()


def make_config(url: str, **overrides: Any) -> PluvoConfig:
    values: dict[str, Any] = {
        "url": url,
        "client_id": "sandbox-client",
        "client_secret": "sandbox-secret",
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "max_retries": 2,
        "timeout": 5,
        **overrides,
    }
    return PluvoConfig.model_validate(values)


def people(n: int, prefix: str = "E", **extra: Any) -> list[ops.Call]:
    return [
        ops.upsert_user(
            f"{prefix}{i:03d}",
            {"name": f"Person {i}", "email": f"{prefix.lower()}{i}@example.org", **extra},
            send_invite=False,
        )
        for i in range(n)
    ]


def renamed_schema(tmp_path: Path) -> Path:
    """A Pluvo whose user input type has another name than the bundled contract's."""
    text = SCHEMA_FILE.read_text(encoding="utf-8").replace("UserInput", "UserMutationInput")
    path = tmp_path / "renamed.graphql"
    path.write_text(text, encoding="utf-8")
    return path


async def test_one_document_text_per_batch_shape(sandbox: SandboxServer) -> None:
    async with (
        recording_proxy(sandbox.url) as (url, bodies),
        PluvoClient(make_config(url, batch_size=5, concurrency=2)) as client,
    ):
        results = await client.run_calls(people(20))
    assert all(r.ok for r in results)
    assert len(bodies) == 4
    assert len({b["query"] for b in bodies}) == 1
    assert {b["variables"]["a4_ref"] for b in bodies} == {f"E{i:03d}" for i in (4, 9, 14, 19)}
    assert "Person" not in bodies[0]["query"]
    assert len(sandbox.control.state()["users"]) == 20


async def test_values_round_trip_through_variables(sandbox: SandboxServer) -> None:
    """Enums, lists of enums, booleans, nested inputs and datetimes as Pluvo stores them."""
    user = {
        "name": 'Zoë "Z" de Vries',
        "email": "zoe@example.org",
        "roles": "MANAGER,TRAINER",
        "language": "EN",
        "is_active": False,
        "afas_employee_id": "A-17",
    }
    values: list[dict[str, Any]] = [
        {"categoryRef": "start_date", "datetimeValue": datetime(2024, 5, 1, 8, 30, tzinfo=UTC)},
        {"categoryRef": "is_external", "booleanValue": True},
        {"categoryRef": "department", "stringValue": "Sales\nNL"},
        {"categoryRef": "location", "choiceValues": [{"stringValue": "Utrecht"}]},
        {
            "categoryRef": "skills",
            "choiceValues": [{"stringValue": "SQL"}, {"stringValue": "Excel"}],
        },
    ]
    async with (
        recording_proxy(sandbox.url) as (url, bodies),
        PluvoClient(make_config(url)) as client,
    ):
        (upsert,) = await client.run_calls([ops.upsert_user("Z1", user, send_invite=True)])
        (extra,) = await client.run_calls([ops.set_extra_values("Z1", values)])
    assert upsert.ok, str(upsert.error)
    assert extra.ok, str(extra.error)
    assert UpsertResult.parse(upsert.data).created
    assert bodies[0]["variables"]["a0_user"]["roles"] == ["MANAGER", "TRAINER"]
    assert bodies[1]["variables"]["a0_contentType"] == "USER"
    stored = sandbox.control.user("Z1")
    assert stored is not None
    assert stored["name"] == 'Zoë "Z" de Vries'
    assert stored["roles"] == ["MANAGER", "TRAINER"]
    assert stored["language"] == "EN"
    assert stored["isActive"] is False
    assert stored["afasEmployeeId"] == "A-17"
    assert stored["invited"] is True
    assert stored["extra"] == {
        "start_date": "2024-05-01T08:30:00+00:00",
        "is_external": True,
        "department": "Sales\nNL",
        "location": "Utrecht",
        "skills": ["SQL", "Excel"],
    }


async def test_a_value_pluvo_cannot_coerce_fails_its_call_only(sandbox: SandboxServer) -> None:
    """`$a1_user` names call 1: it is a record error, and the rest of the batch is resent."""
    calls = people(3)
    calls[1] = ops.upsert_user("BAD", {"name": "Bad", "language": "XX"}, send_invite=False)
    async with (
        recording_proxy(sandbox.url) as (url, bodies),
        PluvoClient(make_config(url, batch_size=10)) as client,
    ):
        results = await client.run_calls(calls)
        assert client.counters.mutations == 3
    assert len(bodies) == 2
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, RecordError)
    assert "updateOrCreateUser" in str(results[1].error)
    assert "Language" in str(results[1].error)
    assert [r.data["user"]["ref"] for r in (results[0], results[2])] == ["E000", "E002"]
    assert sandbox.control.user("BAD") is None


async def test_refused_variable_types_fall_back_to_literals(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """A live Pluvo naming its input type differently: one refused batch, then literals."""
    server = make_sandbox(schema_file=renamed_schema(tmp_path))
    async with (
        recording_proxy(server.url) as (url, bodies),
        PluvoClient(make_config(url, batch_size=3, concurrency=1)) as client,
    ):
        results = await client.run_calls([*people(6), ops.create_group("G1", "Sales")])
    assert all(r.ok for r in results), [r.error for r in results if r.error]
    assert "$a0_user: UserInput!" in bodies[0]["query"]  # refused
    assert 'a0: updateOrCreateUser(ref: "E000"' in bodies[1]["query"]  # the same, as literals
    assert 'a0: updateOrCreateUser(ref: "E003"' in bodies[2]["query"]  # literal from then on
    assert "$a0_group: CreateGroupInput!" in bodies[3]["query"]  # other fields keep variables
    assert len(bodies) == 4
    assert len(server.control.state()["users"]) == 6


async def test_schema_given_to_the_client_types_the_variables(
    make_sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    path = renamed_schema(tmp_path)
    server = make_sandbox(schema_file=path)
    live = build_schema(path.read_text(encoding="utf-8"))
    async with (
        recording_proxy(server.url) as (url, bodies),
        PluvoClient(make_config(url), schema=live) as client,
    ):
        results = await client.run_calls(people(2))
    assert all(r.ok for r in results)
    assert len(bodies) == 1
    assert "$a0_user: UserMutationInput!" in bodies[0]["query"]


async def test_inline_arguments_sends_literals(sandbox: SandboxServer) -> None:
    async with (
        recording_proxy(sandbox.url) as (url, bodies),
        PluvoClient(make_config(url, inline_arguments=True)) as client,
    ):
        results = await client.run_calls(people(2, language="NL", roles="PARTICIPANT"))
    assert all(r.ok for r in results)
    assert "variables" not in bodies[0]
    assert bodies[0]["query"].startswith(
        'mutation SyncBatch { a0: updateOrCreateUser(ref: "E000", sendInvite: false, user: {'
    )
    assert "language: NL, roles: [PARTICIPANT]" in bodies[0]["query"]
    stored = sandbox.control.user("E001")
    assert stored is not None
    assert (stored["language"], stored["roles"]) == ("NL", ["PARTICIPANT"])


async def test_a_field_pluvo_lacks_still_fails_the_batch(sandbox: SandboxServer) -> None:
    """Literals cannot fix an unknown field: no blind resend, the batch is fatal as before."""
    call = ops.Call("mergeUsers", {"ref": "E1"}, "ok")
    async with (
        recording_proxy(sandbox.url) as (url, bodies),
        PluvoClient(make_config(url)) as client,
    ):
        results = await client.run_calls([call, *people(1)])
    assert len(bodies) == 1
    assert all(isinstance(r.error, FatalError) for r in results)
    assert "mergeUsers" in str(results[0].error)


@pytest.mark.parametrize("inline", [False, True])
async def test_reads_and_writes_agree_in_both_forms(sandbox: SandboxServer, inline: bool) -> None:
    async with PluvoClient(make_config(sandbox.url, inline_arguments=inline)) as client:
        await client.run_calls(people(3, roles=["PARTICIPANT"]))
        (created,) = await client.run_calls([ops.create_group("G1", "Sales")])
        (adding,) = await client.run_calls(
            [ops.add_users_to_group("G1", ["E000", "E001", "NOBODY"])]
        )
        fetched = await client.get_user(ref="E002")
    assert created.ok, str(created.error)
    assert adding.ok, str(adding.error)
    group = GroupRecord.parse(created.data)
    added = MembershipResult.parse(adding.data)
    assert group.ref == "G1"
    assert len(added.changed) == 2
    assert added.failed == ("NOBODY",)
    assert fetched is not None
    assert fetched["roles"] == ["PARTICIPANT"]
