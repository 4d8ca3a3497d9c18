"""One document to Pluvo until it gets an answer worth interpreting.

This is where a request meets the world: the token (fetched, shared, renewed on a
401), the scopes the token answer granted, the adaptive limit on requests in flight
and the client-side pacing, retries with backoff, 429s (Retry-After shared by the
whole client), the circuit breaker, and the reading of the status and body into an
answer or a typed error. The batches above it (sync.pluvo.batches) decide what a
refusal means for their calls; the transport below it (sync.pluvo.transport) only
carries the POST.

Errors. Failures of the whole request are TransientError once retries are exhausted
(5xx, 429, timeouts, drops) or FatalError at once (refused credentials, 3xx, missing
scope, a document Pluvo rejects). Messages carry the operation name and a short
reason, never the token, the secret or the payload.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError, RecordError, TransientError
from sync.logs import redact
from sync.pluvo.auth import TokenProvider
from sync.pluvo.http import (
    AdaptiveLimiter,
    Pacer,
    Throttled,
    Unavailable,
    backoff_delay,
    parse_retry_after,
    redirect_error,
)
from sync.pluvo.results import ClientCounters
from sync.pluvo.transport import Request, Transport

if TYPE_CHECKING:
    from sync.pluvo.ops import Call

log = logging.getLogger("sync.pluvo")

# Which scope each root field needs (any one of the tuple). Which one
# updateExtraCategoryValues needs is undocumented, hence two candidates.
FIELD_SCOPES: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("user", "users", "paginatedUsers"), ("users.read",)),
    **dict.fromkeys(
        ("createUser", "updateUser", "updateOrCreateUser", "archiveUsers"), ("users.write",)
    ),
    **dict.fromkeys(("group", "groups", "paginatedGroups"), ("groups.read",)),
    **dict.fromkeys(
        (
            "createGroup",
            "updateGroup",
            "deleteGroups",
            "addUsersToGroup",
            "removeUsersFromGroup",
            "addManagersToGroup",
            "removeManagersFromGroup",
        ),
        ("groups.write",),
    ),
    "updateExtraCategoryValues": ("extra_categories.write", "users.write"),
}


class Rejected(FatalError):
    """Pluvo refused the whole document; `errors` lets a batch salvage its calls."""

    def __init__(self, message: str, errors: Sequence[Mapping[str, Any]]) -> None:
        super().__init__(message, hint=_advice(errors))
        self.errors = list(errors)


class TooLarge(FatalError):
    """Pluvo refused a request for its size (complexity, depth, body size): a smaller
    batch may pass."""


_TOO_LARGE = re.compile(
    r"too ?complex|complexity|too deep|max(imum)? ?depth|too (large|big|many)|"
    r"request entity|payload|body size|exceed",
    re.IGNORECASE,
)


def size_refusal(errors: Sequence[Mapping[str, Any]]) -> bool:
    return any(_TOO_LARGE.search(f"{code_of(e)} {e.get('message') or ''}") for e in errors)


_RESULT_FIELDS = {"ids": ("addedIds", "removedIds"), "refs": ("addedRefs", "removedRefs")}


def _advice(errors: Sequence[Mapping[str, Any]]) -> str | None:
    """What to change when a refusal is one the config can settle (as doctor says)."""
    text = " ".join(str(e.get("message") or "") for e in errors)
    for setting, fields in _RESULT_FIELDS.items():
        other = "refs" if setting == "ids" else "ids"
        if any(f"Cannot query field '{f}'" in text for f in fields):
            return (
                f"this Pluvo does not offer the {setting} membership result fields: set "
                f"pluvo.membership_result_fields: {other} (`pluvo-sync doctor` checks this)"
            )
    return None


_UNATTACHED = "use PluvoClient as `async with PluvoClient(config) as client`"


class _AuthRejected(Exception):
    """Internal: the token was refused (401 or an Auth* error); renew once and retry."""

    def __init__(self, token: str, reason: str) -> None:
        super().__init__(reason)
        self.token = token
        self.reason = reason


class Channel:
    """The request path of one client: token, limits, retries, breaker, status reading.

    `_last_answer` and `_outage` are the breaker's state: shared by every request of
    the client, so one request's silence counts for all of them.
    """

    def __init__(
        self, config: PluvoConfig, transport: Transport | None, *, increase_after: int = 10
    ) -> None:
        """Without a transport nothing can be sent until one is attached."""
        self.config = config
        self._transport: Transport | None = None
        self._auth: TokenProvider | None = None
        if transport is not None:
            self.attach(transport)
        self.counters = ClientCounters()
        self.limiter = AdaptiveLimiter(config.concurrency, increase_after=increase_after)
        self._pacer = Pacer(config.requests_per_second)
        self._last_answer = time.monotonic()
        self._outage: FatalError | None = None

    def attach(self, transport: Transport) -> None:
        """Send through `transport` from now on, with a token of its own."""
        self._transport = transport
        self._auth = TokenProvider(self.config, transport)

    def detach(self) -> Transport | None:
        """Stop sending; the transport that was attached, for its owner to close."""
        transport, self._transport, self._auth = self._transport, None, None
        return transport

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            raise RuntimeError(_UNATTACHED)
        return self._transport

    @property
    def auth(self) -> TokenProvider:
        if self._auth is None:
            raise RuntimeError(_UNATTACHED)
        return self._auth

    @property
    def granted_scopes(self) -> frozenset[str] | None:
        return self._auth.granted_scopes if self._auth is not None else None

    @property
    def token_requests(self) -> int:
        return self._auth.fetches if self._auth is not None else 0

    async def request(
        self,
        document: str,
        variables: Mapping[str, Any] | None,
        label: str,
        fields: Sequence[str],
        calls: Sequence[Call] = (),
    ) -> dict[str, Any]:
        """POST one document until it gets an answer worth interpreting; its body.

        429s wait (Retry-After, shared by the whole client) and count apart from
        failures, bounded by `2 * max_retries + 4`, since a throttled request was not
        processed and will succeed once the client slows down.
        """
        if self._outage is not None:
            raise self._outage
        config = self.config
        provider = self.auth
        failures = throttles = renewals = 0
        refused_fresh = checked = False
        while True:
            started = provider.now()
            try:
                if not checked:
                    # The token answer says which scopes were granted: a missing one
                    # fails here, before the first request that needs it is sent.
                    await provider.token()
                    self._check_scopes(fields)
                    checked = True
                return await self._attempt(document, variables, label, fields, calls)
            except _AuthRejected as exc:
                provider.invalidate(exc.token)
                issued = provider.issued_at(exc.token)
                # A token issued during this very attempt and refused at once is a
                # refusal; one issued before it (tokens expire mid-run, and a retry may
                # have waited out a backoff longer than a short token lives) has expired
                # and is renewed as often as that happens.
                fresh = issued is not None and issued >= started
                if fresh and refused_fresh:
                    raise FatalError(
                        f"{label}: Pluvo refused a freshly issued token ({exc.reason})",
                        hint="check the API client's status and scopes in Pluvo",
                    ) from None
                refused_fresh = refused_fresh or fresh
                renewals += 1
                if renewals > 2 * config.max_retries + 4:
                    raise TransientError(
                        f"{label}: tokens kept expiring ({renewals} renewals)"
                    ) from None
                self.counters.reauths += 1
                log.info("%s: token refused (%s), renewing it", label, exc.reason)
            except Throttled as exc:
                throttles += 1
                if throttles > 2 * config.max_retries + 4:
                    raise TransientError(
                        f"{label}: still rate limited after {throttles} attempts"
                    ) from None
                delay = exc.retry_after
                if delay is None:
                    delay = backoff_delay(
                        throttles - 1, base=config.backoff_base, cap=config.backoff_max
                    )
                self.counters.retries += 1
                log.info("%s: rate limited, waiting %.1f s", label, delay)
                self._pacer.pause(delay)
            except TransientError as exc:
                failures += 1
                self._check_outage(exc)
                if failures > config.max_retries:
                    raise TransientError(
                        f"{exc.message}; gave up after {failures} attempts ({label})"
                    ) from None
                delay = backoff_delay(
                    failures - 1, base=config.backoff_base, cap=config.backoff_max
                )
                if isinstance(exc, Unavailable):
                    delay = max(delay, exc.retry_after)
                # Never wait past the point where the breaker would trip: an outage ends
                # the run within outage_timeout, whatever the backoff or Retry-After.
                deadline = self._last_answer + config.outage_timeout - time.monotonic()
                delay = min(delay, max(0.0, deadline) + 0.05)
                if isinstance(exc, Unavailable):
                    self._pacer.pause(delay)
                self.counters.retries += 1
                log.info("%s: %s; retry %d in %.1f s", label, exc.message, failures, delay)
                await asyncio.sleep(delay)

    def _check_outage(self, failure: TransientError) -> None:
        """The circuit breaker: after `outage_timeout` seconds in which no request got an
        answer from Pluvo (only 5xx, drops or timeouts), stop sending for good. Refused
        records are answers and never trip it."""
        silent = time.monotonic() - self._last_answer
        if self._outage is None and silent > self.config.outage_timeout:
            self._outage = FatalError(
                f"Pluvo has not answered for {silent:.0f} s (last: {failure.message}); "
                "stopping, and what was not sent is planned again by the next run",
                hint="pluvo.outage_timeout sets how long an outage is waited out",
            )
            log.error("%s", self._outage)
        if self._outage is not None:
            raise self._outage

    async def _attempt(
        self,
        document: str,
        variables: Mapping[str, Any] | None,
        label: str,
        fields: Sequence[str],
        calls: Sequence[Call],
    ) -> dict[str, Any]:
        url = self.config.graphql_url
        generation = await self.limiter.acquire()
        try:
            await self._pacer.wait()
            token = await self.auth.token()
            self.counters.requests += 1
            payload: dict[str, Any] = {"query": document}
            if variables:
                payload["variables"] = dict(variables)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            response = await self.transport.send(Request(url, headers, payload, calls=calls))
            status = response.status
            if status < 500:
                self._last_answer = time.monotonic()  # Pluvo is there, whatever it said
            if 300 <= status < 400:
                raise redirect_error(status, url)
            if status == 401:
                raise _AuthRejected(token, "HTTP 401")
            if status == 403:
                raise self._scope_error(label, fields, "HTTP 403")
            if status == 429:
                self.counters.throttled += 1
                self.limiter.on_throttle(generation)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise Throttled(f"{label}: 429", retry_after=retry_after)
            if status >= 500:
                wait = (
                    parse_retry_after(response.headers.get("Retry-After"))
                    if status == 503
                    else None
                )
                if wait is not None:
                    raise Unavailable(f"Pluvo answered {status}", retry_after=wait)
                raise TransientError(f"Pluvo answered {status}")
            body = _json_object(response.text)
            if status == 413 or (
                status == 400 and body is not None and size_refusal(errors_of(body))
            ):
                found = errors_of(body) if body else []
                reason = short_reason(found[0]) if found else f"HTTP {status}"
                raise TooLarge(f"{label}: Pluvo refused the request as too large ({reason})")
            if body is None:
                if status == 200:
                    raise TransientError("unreadable answer (not a JSON object)")
                raise FatalError(f"{label}: Pluvo answered {status}")
            for error in errors_of(body):
                code = code_of(error)
                if "Auth" in code:
                    raise _AuthRejected(token, code)
                if "Permission" in code or "Forbidden" in code:
                    raise self._scope_error(label, fields, code)
            if status != 200:
                errors = errors_of(body)
                reason = short_reason(errors[0]) if errors else f"HTTP {status}"
                raise Rejected(f"{label}: Pluvo rejected the document ({reason})", errors)
            await self.limiter.on_success()
            return body
        finally:
            await self.limiter.release()

    def _check_scopes(self, fields: Sequence[str]) -> None:
        """Fail before sending when the token answer said a needed scope is not granted."""
        granted = self.granted_scopes
        if granted is None:
            return
        for field in fields:
            needed = FIELD_SCOPES.get(field)
            if needed and not granted.intersection(needed):
                raise _missing_scope(field, needed, "not granted to the token")

    def _scope_error(self, label: str, fields: Sequence[str], reason: str) -> FatalError:
        granted = self.granted_scopes or frozenset()
        for field in fields:
            needed = FIELD_SCOPES.get(field)
            if needed and not granted.intersection(needed):
                return _missing_scope(field, needed, reason)
        needed_all = sorted({s for f in fields for s in FIELD_SCOPES.get(f, ())})
        return FatalError(
            f"{label}: Pluvo denied permission ({reason}); it needs the scope "
            f"{' or '.join(needed_all) or 'unknown'}",
            hint="check the API client's scopes in Pluvo and pluvo.scopes",
        )


# ---------------------------------------------------------------------- answers


def _missing_scope(field: str, needed: tuple[str, ...], reason: str) -> FatalError:
    scope = " or ".join(needed)
    return FatalError(
        f"missing Pluvo scope {scope} (needed for {field}; {reason})",
        hint=f"grant {scope} to the API client in Pluvo and list it in pluvo.scopes",
    )


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def errors_of(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, Mapping)]


def code_of(error: Mapping[str, Any]) -> str:
    extensions = error.get("extensions")
    code = extensions.get("code") if isinstance(extensions, Mapping) else None
    return str(code) if code else ""


def short_reason(error: Mapping[str, Any], limit: int = 200) -> str:
    """A short, redacted reason: Pluvo's message, which may quote a value, is truncated."""
    message = redact(" ".join(str(error.get("message") or "unknown error").split()))
    if len(message) > limit:
        message = message[: limit - 1] + "…"
    code = code_of(error)
    return f"{code}: {message}" if code else message


def data_or_raise(body: Mapping[str, Any], label: str) -> dict[str, Any]:
    """A raw document's `data`, or its first error raised as a PluvoError."""
    errors = errors_of(body)
    data = body.get("data")
    if errors:
        error = errors[0]
        path = error.get("path")
        if isinstance(path, list) and path:
            raise RecordError(f"{label}: {short_reason(error)}", code=code_of(error) or None)
        raise FatalError(f"{label}: Pluvo rejected the document ({short_reason(error)})")
    if not isinstance(data, dict):
        raise TransientError(f"{label}: answer without data")
    return data


__all__ = [
    "FIELD_SCOPES",
    "Channel",
    "Rejected",
    "TooLarge",
    "code_of",
    "data_or_raise",
    "errors_of",
    "short_reason",
    "size_refusal",
]
