"""Client behaviour the sandbox does not model, against a tiny real HTTP server.

Redirects (a misconfigured URL) and a document-level validation error are answered
by a purpose-built aiohttp app on loopback, so the client is exercised over real HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError
from sync.pluvo import ops
from sync.pluvo.client import PluvoClient

SECRET = "http-test-secret-91c2"
TOKEN = "http-test-token-5d7e"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Hits:
    token: int = 0
    graphql: int = 0
    bodies: list[str] = field(default_factory=list)


@asynccontextmanager
async def _serve(token: Handler, graphql: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/oauth/token/", token)
    app.router.add_post("/graphql/", graphql)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        await runner.cleanup()


def _config(url: str, **overrides: object) -> PluvoConfig:
    values: dict[str, object] = {
        "url": url,
        "client_id": "c1",
        "client_secret": SECRET,
        "backoff_base": 0.01,
        "backoff_max": 0.05,
        "max_retries": 2,
        **overrides,
    }
    return PluvoConfig.model_validate(values)


def _token_ok(hits: Hits) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        hits.token += 1
        form = await request.post()
        assert form["client_secret"] == SECRET
        assert form["grant_type"] == "client_credentials"
        return web.json_response(
            {"access_token": TOKEN, "expires_in": 3600, "scope": form["scope"]}
        )

    return handler


async def _redirect(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently(location=str(request.url).rstrip("/") + "/x/?token=t")


async def test_redirect_on_token_url_is_a_config_error() -> None:
    hits = Hits()
    async with _serve(_redirect, _token_ok(hits)) as url, PluvoClient(_config(url)) as client:
        (result,) = await client.run_calls([ops.create_group("G1", "Sales")])
    assert isinstance(result.error, FatalError)
    text = str(result.error)
    assert text.startswith(f"Pluvo answered 301 for {url}oauth/token/: check pluvo.url")
    assert "trailing slash" in text
    assert SECRET not in text


async def test_redirect_on_graphql_stops_every_remaining_chunk() -> None:
    hits = Hits()

    async def graphql(request: web.Request) -> web.StreamResponse:
        hits.graphql += 1
        return await _redirect(request)

    async with _serve(_token_ok(hits), graphql) as url:
        config = _config(url, batch_size=2, concurrency=1)
        calls = [ops.create_group(f"G{i}", f"Group {i}") for i in range(6)]
        seen: list[int] = []
        async with PluvoClient(config) as client:
            results = await client.run_calls(calls, on_result=lambda i, r: seen.append(i))
    assert hits.graphql == 1  # the first chunk's 301 is not retried and stops the others
    assert seen == list(range(6))
    errors = {id(r.error) for r in results}
    assert len(errors) == 1
    first = results[0].error
    assert isinstance(first, FatalError)
    assert str(first).startswith(f"Pluvo answered 301 for {url}graphql/:")
    assert TOKEN not in str(first)


async def test_document_validation_error_is_fatal_for_the_batch() -> None:
    hits = Hits()

    async def graphql(request: web.Request) -> web.StreamResponse:
        hits.graphql += 1
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        hits.bodies.append(json.loads(await request.text())["query"])
        return web.json_response(
            {"errors": [{"message": "Cannot query field 'x'", "extensions": {"code": "VALID"}}]},
            status=400,
        )

    calls = [ops.create_group(f"G{i}", "n") for i in range(4)]
    async with (
        _serve(_token_ok(hits), graphql) as url,
        PluvoClient(_config(url, batch_size=2, concurrency=1)) as client,
    ):
        results = await client.run_calls(calls)
    assert hits.graphql == 1
    assert hits.bodies[0].startswith(
        "mutation SyncBatch($a0_group: CreateGroupInput!, $a1_group: CreateGroupInput!) "
        "{ a0: createGroup(group: $a0_group)"
    )
    assert all(isinstance(r.error, FatalError) for r in results)
    assert "Pluvo rejected the document (VALID: Cannot query field 'x')" in str(results[3].error)
