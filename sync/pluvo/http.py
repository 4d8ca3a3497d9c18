"""Transport policy: backoff, Retry-After, adaptive concurrency and a client-side throttle.

Pluvo documents a rate limit "per API client" without numbers or 429 behaviour, so
the client has to find the limit itself: an AIMD limiter halves the requests it lets
in flight on every 429 and grows back by one after a run of successes, the way TCP
finds a link's capacity. A 429's Retry-After also pauses every request of the client,
not just the one that was refused, because the limit is per client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from yarl import URL

from sync.errors import FatalError, TransientError

RETRY_AFTER_CAP = 300.0
"""Longest Retry-After honoured: a nightly run should fail loudly, not sleep for hours."""


class Throttled(TransientError):
    """A 429: wait at least `retry_after` seconds; it does not count as a failure."""

    def __init__(self, message: str, *, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(TransientError):
    """A 503 that says when to come back (Retry-After), as during maintenance.

    Unlike a 429 it counts toward the retries, so an outage still ends the run; but
    the retry waits at least that long, and so does every other request of the client.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def safe_url(url: str) -> str:
    """The URL without query string, fragment or credentials, fit for an error message."""
    parsed = URL(url)
    return str(parsed.with_query(None).with_fragment(None).with_user(None))


def redirect_error(status: int, url: str) -> FatalError:
    """A 3xx is always a misconfiguration: following it would drop the POST body."""
    return FatalError(
        f"Pluvo answered {status} for {safe_url(url)}: check pluvo.url "
        "(the trailing slash is required and the host must be the organisation's own; "
        "redirects are never followed because they drop the POST body)"
    )


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    Full jitter can retry immediately, which hurts a server that is shedding load;
    equal jitter keeps the spread (no thundering herd) with a floor.
    """
    ceiling = min(cap, base * 2.0 ** max(attempt, 0))
    return float(ceiling / 2 + rng() * ceiling / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        current = datetime.now(UTC).timestamp() if now is None else now
        seconds = when.timestamp() - current
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


class AdaptiveLimiter:
    """AIMD bound on requests in flight, between 1 and the configured concurrency.

    Only one halving per "generation": the 429s of requests that were already in
    flight when the limit dropped describe the old load, so they must not halve again.
    """

    def __init__(self, maximum: int, *, increase_after: int = 10) -> None:
        self.maximum = max(1, maximum)
        self.limit = self.maximum
        self.lowest = self.maximum
        self.in_flight = 0
        self.increase_after = max(1, increase_after)
        self._successes = 0
        self._generation = 0
        self._cond = asyncio.Condition()

    async def acquire(self) -> int:
        """Wait for a slot; returns the generation to pass back to `on_throttle`."""
        async with self._cond:
            await self._cond.wait_for(lambda: self.in_flight < self.limit)
            self.in_flight += 1
            return self._generation

    async def release(self) -> None:
        async with self._cond:
            self.in_flight -= 1
            self._cond.notify_all()

    def on_throttle(self, generation: int) -> None:
        if generation != self._generation:
            return
        self._generation += 1
        self._successes = 0
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)

    async def on_success(self) -> None:
        self._successes += 1
        if self._successes >= self.increase_after and self.limit < self.maximum:
            self._successes = 0
            async with self._cond:
                self.limit += 1
                self._cond.notify_all()


class Pacer:
    """Client-side requests-per-second spacing plus a shared "not before" pause."""

    def __init__(
        self, requests_per_second: float | None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._clock = clock
        self._next = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Hold every request of this client for `seconds` (a Retry-After)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def wait(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                start = max(now, self._next, self._paused_until)
                if start <= now:
                    break
                await asyncio.sleep(start - now)
            self._next = max(now, self._next) + self.interval
