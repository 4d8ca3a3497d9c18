"""Backoff, Retry-After, the AIMD limiter, the pacer and the token renewal schedule."""

from __future__ import annotations

import asyncio
import time
from email.utils import formatdate

import pytest

from sync.errors import FatalError
from sync.pluvo.auth import refresh_delay
from sync.pluvo.http import (
    RETRY_AFTER_CAP,
    AdaptiveLimiter,
    Pacer,
    backoff_delay,
    parse_retry_after,
    redirect_error,
    safe_url,
)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    low = [backoff_delay(n, base=0.5, cap=30, rng=lambda: 0.0) for n in range(8)]
    high = [backoff_delay(n, base=0.5, cap=30, rng=lambda: 1.0) for n in range(8)]
    assert low == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    assert high == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("99999") == RETRY_AFTER_CAP
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 7, usegmt=True), now=now) == pytest.approx(7)
    assert parse_retry_after(formatdate(now - 7, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_redirect_message_names_url_without_query_or_credentials() -> None:
    error = redirect_error(301, "https://bob:pw@acme.pluvo.com/graphql?access_token=t0k3n#x")
    assert isinstance(error, FatalError)
    text = str(error)
    assert text.startswith("Pluvo answered 301 for https://acme.pluvo.com/graphql: check pluvo.url")
    assert "trailing slash" in text
    assert "t0k3n" not in text
    assert "pw" not in text
    assert safe_url("http://h/p/?q=1") == "http://h/p/"


def test_refresh_margin_is_capped_for_short_lifetimes() -> None:
    assert refresh_delay(86400, 3600) == 82800
    assert refresh_delay(10, 3600) == 9
    assert refresh_delay(10, 0) == 10


async def test_limiter_halves_once_per_generation_and_grows_back() -> None:
    limiter = AdaptiveLimiter(8, increase_after=3)
    generations = [await limiter.acquire() for _ in range(4)]
    for generation in generations:  # four 429s from one burst: one halving
        limiter.on_throttle(generation)
    assert limiter.limit == 4
    for _ in range(4):
        await limiter.release()
    for _ in range(5):
        limiter.on_throttle(await limiter.acquire())
        await limiter.release()
    assert limiter.limit == 1
    assert limiter.lowest == 1
    for _ in range(3 * 20):
        await limiter.on_success()
    assert limiter.limit == 8  # never above the configured concurrency


async def test_limiter_blocks_beyond_the_limit() -> None:
    limiter = AdaptiveLimiter(2)
    await limiter.acquire()
    await limiter.acquire()
    waiter = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await limiter.release()
    await asyncio.wait_for(waiter, 1)
    assert limiter.in_flight == 2


async def test_pacer_spaces_requests_and_honours_pauses() -> None:
    pacer = Pacer(20.0)
    start = time.monotonic()
    for _ in range(5):
        await pacer.wait()
    assert time.monotonic() - start >= 0.19
    pacer = Pacer(None)
    pacer.pause(0.2)
    start = time.monotonic()
    await pacer.wait()
    assert time.monotonic() - start >= 0.19
