"""The production transport: one aiohttp ClientSession per client.

gql's AIOHTTPTransport is not used because it hides what the client must see: the
status and headers of a 429 (Retry-After) or a 3xx (it follows redirects, which drop
POST bodies against Pluvo's slash-less URLs), a 401 to re-authenticate on, and the
`data` of an aliased batch next to the `errors` of its failed aliases. The pool is
sized to the concurrency (plus one for the token request), so connections stay alive
across the thousands of requests of a run.
"""

from __future__ import annotations

import os

import aiohttp
from yarl import URL

from sync.config.pluvo import PluvoConfig
from sync.pluvo.http import safe_url
from sync.pluvo.transport import Request, Response, TransportError

_FAILURES = (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)


class AiohttpTransport:
    """`Transport` over aiohttp; make it inside a running event loop (aiohttp's rule)."""

    def __init__(self, config: PluvoConfig) -> None:
        self._timeout = config.timeout
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=config.concurrency + 1),
            timeout=aiohttp.ClientTimeout(
                total=config.timeout, sock_connect=config.connect_timeout
            ),
            headers={"User-Agent": "pluvo-sync"},
        )

    async def send(self, request: Request) -> Response:
        try:
            async with self._session.post(
                request.url,
                json=request.json,
                data=request.form,
                headers=request.headers,
                allow_redirects=False,
            ) as resp:
                return Response(resp.status, resp.headers, await resp.text())
        except _FAILURES as exc:
            raise TransportError(
                transport_failure(exc, request.url, timeout=self._timeout)
            ) from None

    async def aclose(self) -> None:
        await self._session.close()


def transport_failure(exc: BaseException, url: str, *, timeout: float) -> str:
    """A connection-level failure in the user's words, naming the URL, never a class."""
    where = safe_url(str(URL(url).origin()) + "/")
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = exc.os_error
        if error is not None and error.errno:
            reason = os.strerror(error.errno)
        else:
            reason = (error.strerror if error is not None else None) or "no route"
        return f"cannot reach {where}: {reason.lower()}"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection without an answer"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return f"{where} sent an incomplete answer"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} within {timeout:g} s"
    if isinstance(exc, aiohttp.ClientOSError):
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or "error")
        return f"connection to {where} failed: {reason.lower()}"
    return f"connection to {where} failed"


__all__ = ["AiohttpTransport", "transport_failure"]
