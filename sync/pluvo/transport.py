"""The seam under the client: one HTTP exchange, and nothing the client decides.

The client (sync.pluvo.client and the modules beside it) owns everything that makes a
run correct: batching and scheduling, size splitting, the salvage of refused batches,
retries with backoff, 429 handling, re-authentication, the circuit breaker and reading
the answers. A transport only carries one POST to Pluvo and brings back what came
back: status, headers and text, or a TransportError when nothing came back. That is
httpx's transport seam (`httpx.MockTransport`), for the same reason: a test hands the
client a transport that answers in process (tests/support/fake_pluvo.py runs the
sandbox's GraphQL executor), and the client's real code paths run against it.

The production transport is sync.pluvo.aiohttp_transport; this module imports no
HTTP library, so the protocol costs nothing to import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sync.errors import TransientError

if TYPE_CHECKING:
    from sync.pluvo.ops import Call


@dataclass(frozen=True, slots=True)
class Request:
    """One POST: a GraphQL document as `json`, or the token request as `form`."""

    url: str
    headers: Mapping[str, str]
    json: Mapping[str, Any] | None = None
    form: Mapping[str, str] | None = None
    calls: Sequence[Call] = ()
    """The calls the document carries, alias `aN` being `calls[N]` (empty for a raw
    document or the token request). Carried, never sent: an in-process transport
    answers and fails call by call with it; the HTTP transport ignores it."""


@dataclass(frozen=True, slots=True)
class Response:
    """What came back, uninterpreted: the client reads status, Retry-After and body."""

    status: int
    headers: Mapping[str, str]
    text: str


class TransportError(TransientError):
    """Nothing came back: the connection failed, dropped or timed out.

    Whether Pluvo applied the request is unknown, so the client retries it only
    because every mutation it sends is idempotent. The message is in the user's words
    (it names the host, never a class, a token or the payload).
    """


class Transport(Protocol):
    """Sends one request and returns its response; raises TransportError when no
    response arrived. Redirects are never followed: a 3xx is returned as it is."""

    async def send(self, request: Request) -> Response: ...

    async def aclose(self) -> None:
        """Release connections; the client calls it only on a transport it made."""
        ...


__all__ = ["Request", "Response", "Transport", "TransportError"]
