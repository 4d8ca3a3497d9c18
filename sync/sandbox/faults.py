"""Fault settings and the seeded dice that decide which request a fault hits.

Every fault is decided *before* the request reaches the store (a 5xx, 429 or drop never
applies a mutation), except `drop_after_apply_rate`, which applies the document and then
closes the connection without an answer: the case that tests a client's idempotency.

One draw per request decides between drop, 5xx and 429 (bands of `drop_rate`,
`error_rate` and `throttle_rate` laid end to end), so the shares are what they say and a
run with the same `seed` meets the same faults in the same order.

Two settings need no dice at all, for tests that must expect one exact outcome: an
outage that starts after a set number of requests (`outage_after`, `outage_length`),
and a rate limit whose window is long enough that arrival speed cannot matter
(`rate_limit_window`).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections import deque
from dataclasses import dataclass, fields
from typing import Any, Literal

ERROR_STATUSES = (500, 502, 503)
ExtraValuesMode = Literal["merge", "replace"]


@dataclass(frozen=True)
class Faults:
    """What the sandbox does wrong (and a few of its limits), changeable at run time.

    Rates are shares of GraphQL requests in [0, 1]. The token endpoint meets latency
    always and the other faults only when `token_faults` is true.
    """

    latency: float = 0.0
    """Seconds added to every request (token and GraphQL)."""
    latency_jitter: float = 0.0
    """Up to this many more seconds, uniformly drawn."""
    error_rate: float = 0.0
    """Share of requests answered with a 5xx (an HTML body, as a proxy would)."""
    error_status: int | None = None
    """The 5xx status to use; None picks 500, 502 or 503 at random."""
    throttle_rate: float = 0.0
    """Share of requests answered 429 with `Retry-After: retry_after`."""
    retry_after: float = 1.0
    """Seconds announced by a throttled answer (`Retry-After` is rounded up)."""
    rate_limit: float | None = None
    """Hard requests per second over a sliding window; past it 429 + Retry-After."""
    rate_limit_window: float | None = None
    """Seconds of the sliding window that holds `floor(rate_limit)` requests; None: one
    second (more when under one request a second is allowed). A long window makes what
    passes independent of how fast requests arrive."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed without an answer, unapplied."""
    drop_after_apply_rate: float = 0.0
    """Share of requests executed (mutations applied) and then dropped."""
    fail_all: bool = False
    """Every GraphQL request answers 503: an outage from this moment on."""
    outage_after: int | None = None
    """Counted outage: this many GraphQL requests, counted from when it is set, are let
    through; every later one answers 503 as under `fail_all` (and counts as `fail_all`)."""
    outage_length: int | None = None
    """Requests the counted outage lasts before service resumes; None: until lifted."""
    unavailable_retry_after: float | None = None
    """Seconds a 503 (fail_all or the error share) announces in `Retry-After`; None: none."""
    token_lifetime: float = 86400.0
    """Seconds a new token lives (`expires_in`)."""
    membership_delay: float = 0.0
    """Seconds before a membership or manager change is visible to reads."""
    extra_values_mode: ExtraValuesMode = "merge"
    """merge: values not passed are kept; replace: they are cleared."""
    invite_default: bool = True
    """What an omitted `sendInvite` means on creation (newest docs: invite)."""
    max_page_size: int = 50
    """Largest `first` a connection accepts; more is a GraphQL error."""
    max_root_fields: int | None = None
    """Largest number of root fields (aliases) one document may hold; more is refused
    with HTTP 400 `TooComplex`, as a GraphQL server capping complexity does."""
    archived_unasked: bool = True
    """What `paginatedUsers` lists when `archived` is omitted or null: every user (true),
    or active users only (false: the documentation's reading, as a stricter Pluvo)."""
    token_faults: bool = False
    """Let error, throttle, drop, rate-limit and fail_all hit the token endpoint too."""
    seed: int | None = None
    """Seed of the dice; setting it at run time restarts the sequence."""
    scripted: tuple[int, ...] = ()
    """HTTP statuses (401 as for an expired token, 429, 5xx) the next GraphQL requests
    get, in order, before any other fault; a deterministic sequence for tests. Setting
    it restarts the script."""

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with `changes` applied, checked field by field (ValueError names it)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        clean: dict[str, Any] = {}
        for name, value in changes.items():
            clean[name] = _check(name, value)
        return dataclasses.replace(self, **clean)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_RATES = {"error_rate", "throttle_rate", "drop_rate", "drop_after_apply_rate"}
_SECONDS = {"latency", "latency_jitter", "retry_after", "token_lifetime", "membership_delay"}
_COUNTS = {"outage_after": 0, "outage_length": 1}  # smallest value allowed


def _check(name: str, value: Any) -> Any:
    def number() -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}: expected a number, got {value!r}")
        return float(value)

    if name in _RATES:
        rate = number()
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"{name}: must be between 0 and 1, got {value!r}")
        return rate
    if name in _SECONDS:
        seconds = number()
        if seconds < 0:
            raise ValueError(f"{name}: must not be negative, got {value!r}")
        return seconds
    if name == "unavailable_retry_after":
        if value is None:
            return None
        seconds = number()
        if seconds < 0:
            raise ValueError(f"{name}: must not be negative or must be null, got {value!r}")
        return seconds
    if name in _COUNTS:
        if value is None:
            return None
        least = _COUNTS[name]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name}: expected an integer >= {least} or null, got {value!r}")
        return value
    if name == "rate_limit_window":
        if value is None:
            return None
        window = number()
        if window <= 0:
            raise ValueError(f"rate_limit_window: must be positive or null, got {value!r}")
        return window
    if name == "rate_limit":
        if value is None:
            return None
        limit = number()
        if limit <= 0:
            raise ValueError(f"rate_limit: must be positive or null, got {value!r}")
        return limit
    if name == "error_status":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 500 <= value <= 599:
            raise ValueError(f"error_status: expected a 5xx status or null, got {value!r}")
        return value
    if name in {"fail_all", "invite_default", "token_faults", "archived_unasked"}:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {value!r}")
        return value
    if name == "extra_values_mode":
        if value not in ("merge", "replace"):
            raise ValueError(f"extra_values_mode: expected 'merge' or 'replace', got {value!r}")
        return value
    if name == "max_root_fields":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ValueError(f"max_root_fields: expected a positive integer or null, got {value!r}")
        return value
    if name == "max_page_size":
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"max_page_size: expected a positive integer, got {value!r}")
        return value
    if name == "scripted":
        if not isinstance(value, list | tuple) or not all(
            isinstance(s, int) and not isinstance(s, bool) and (s in (401, 429) or 500 <= s < 600)
            for s in value
        ):
            raise ValueError(
                f"scripted: expected a list of 401, 429 or 5xx statuses, got {value!r}"
            )
        return tuple(value)
    if name == "seed":
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"seed: expected an integer or null, got {value!r}")
        return value
    raise ValueError(f"unknown fault setting: {name}")  # pragma: no cover - guarded above


Verdict = Literal["drop", "error", "throttle"]


class Dice:
    """The random side of faults, plus the rate limiter's window and the outage count."""

    def __init__(self, seed: int | None = None) -> None:
        self.rng = random.Random(seed)
        self._window: deque[float] = deque()
        self._outage_count = 0
        self._script: deque[int] = deque()

    def reseed(self, seed: int | None) -> None:
        self.rng = random.Random(seed)

    def restart_script(self, faults: Faults) -> None:
        self._script = deque(faults.scripted)

    def scripted(self) -> int | None:
        """The next scripted status, if any is left."""
        return self._script.popleft() if self._script else None

    def restart_outage(self) -> None:
        """Count the requests before a counted outage from zero again."""
        self._outage_count = 0

    def outage(self, faults: Faults) -> bool:
        """Whether this request falls in the counted outage (and count it)."""
        if faults.outage_after is None:
            return False
        self._outage_count += 1
        past = self._outage_count - faults.outage_after
        return past > 0 and (faults.outage_length is None or past <= faults.outage_length)

    def latency(self, faults: Faults) -> float:
        delay = faults.latency
        if faults.latency_jitter > 0:
            delay += self.rng.uniform(0.0, faults.latency_jitter)
        return delay

    def verdict(self, faults: Faults) -> Verdict | None:
        """One draw: drop, error, throttle or nothing, in bands of their rates."""
        total = faults.drop_rate + faults.error_rate + faults.throttle_rate
        if total <= 0:
            return None
        roll = self.rng.random()
        if roll < faults.drop_rate:
            return "drop"
        if roll < faults.drop_rate + faults.error_rate:
            return "error"
        if roll < total:
            return "throttle"
        return None

    def error_status(self, faults: Faults) -> int:
        if faults.error_status is not None:
            return faults.error_status
        return self.rng.choice(ERROR_STATUSES)

    def drop_after_apply(self, faults: Faults) -> bool:
        return faults.drop_after_apply_rate > 0 and self.rng.random() < faults.drop_after_apply_rate

    def rate_limited(self, faults: Faults, now: float) -> float | None:
        """Seconds to wait if this request is over the limit, else None (and count it).

        At most `floor(rate)` requests (at least one) in any window of `capacity / rate`
        seconds (one second for rates of one and more) or of `rate_limit_window` seconds
        when set. Refused requests do not count.
        """
        if faults.rate_limit is None:
            self._window.clear()
            return None
        capacity = max(1, math.floor(faults.rate_limit))
        span = faults.rate_limit_window or capacity / faults.rate_limit
        window = self._window
        while window and window[0] <= now - span:
            window.popleft()
        if len(window) >= capacity:
            return max(0.001, window[0] + span - now)
        window.append(now)
        return None
