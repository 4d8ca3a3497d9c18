"""What the engine needs from Pluvo, as a protocol.

The executor, adoption and the live reads depend on this, not on `PluvoClient`:
the real client sends the calls over HTTP, and a test can hand them an in-memory
fake that answers (or fails) call by call, so failure paths are tested without a
server and without patching.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Protocol, Self

from sync.config import Config
from sync.pluvo.ops import Call
from sync.pluvo.results import BeforeSend, CallResult, ClientCounters, GroupInfo, OnResult


class PluvoApi(Protocol):
    """Batched calls with per-call results, plus the one count the engine asks for.

    Used as an async context manager: the real client holds its connection pool and
    token for that long.
    """

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    @property
    def counters(self) -> ClientCounters: ...

    async def run_calls(
        self,
        calls: Sequence[Call],
        *,
        on_result: OnResult | None = None,
        before_send: BeforeSend | None = None,
        keep: bool = True,
        spread: bool = False,
    ) -> list[CallResult]:
        """One CallResult per call, in input order; calls of one kind (all mutations or
        all queries). `before_send` is told the indexes of each batch just before it is
        sent, `on_result` each result as soon as it is known. With `keep=False` the
        results go only to `on_result` and the list returned is empty; `spread` makes
        batches smaller when that lets more of them be in flight (reads)."""
        ...

    async def count_users(self, *, archived: bool | None = None) -> int: ...

    async def list_groups(
        self, *, members: bool = True, managers: bool = True
    ) -> list[GroupInfo]: ...


ApiFactory = Callable[[Config], PluvoApi]
"""Makes the Pluvo API a run talks to; tests hand in a fake, the CLI the real client."""


def pluvo_client(config: Config) -> PluvoApi:
    """The composition root: the one place the protocol's side names the client, and
    only when called (the client brings aiohttp, gql and graphql-core, which a command
    that never talks to Pluvo should not pay for at start-up)."""
    from sync.pluvo.client import PluvoClient

    return PluvoClient(config.pluvo)
