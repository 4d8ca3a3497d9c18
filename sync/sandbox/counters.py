"""What the sandbox saw since the last reset: the numbers tests and benches assert on."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any


class Counters:
    """Counts kept by the server; `snapshot()` is what `GET /_sandbox/counters` returns.

    - requests: every HTTP request but the control ones (`/_sandbox/...`)
    - graphql_requests, token_requests: requests that reached those endpoints
    - queries / mutations: top-level fields executed, by name (each alias once)
    - status: answers by HTTP status ("200", "301", "429", ...); `dropped` the
      connections closed without an answer (before or after applying)
    - faults: injected faults by kind (error, throttle, rate_limited, drop,
      drop_after_apply, fail_all)
    - errors: GraphQL errors by `extensions.code`
    - invites: users created with an invitation (sendInvite true or defaulted)
    - in_flight / in_flight_max: GraphQL requests being answered now, and the most at
      once since the last reset (from arrival to answer, latency included). A client's
      concurrency is otherwise invisible from here: requests that took turns and
      requests that overlapped leave the same totals.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.graphql_requests = 0
        self.token_requests = 0
        self.tokens_issued = 0
        self.dropped = 0
        self.invites = 0
        self.queries: Counter[str] = Counter()
        self.mutations: Counter[str] = Counter()
        self.status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.in_flight_max = self.in_flight  # requests still in flight stay counted
        self.since = time.time()

    def enter(self) -> None:
        """A GraphQL request arrived; `leave()` must follow, whatever its answer."""
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)

    def leave(self) -> None:
        self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "graphql_requests": self.graphql_requests,
            "token_requests": self.token_requests,
            "tokens_issued": self.tokens_issued,
            "queries": dict(self.queries),
            "mutations": dict(self.mutations),
            "queries_total": sum(self.queries.values()),
            "mutations_total": sum(self.mutations.values()),
            "status": dict(self.status),
            "dropped": self.dropped,
            "faults": dict(self.faults),
            "errors": dict(self.errors),
            "invites": self.invites,
            "in_flight": self.in_flight,
            "in_flight_max": self.in_flight_max,
            "seconds": round(time.time() - self.since, 3),
        }
