"""OAuth client-credentials tokens for Pluvo: fetched once, shared, renewed early.

Pluvo issues no refresh token, so "refresh" means asking again with the client
credentials. The token is renewed `token_refresh_margin` before it expires, so a long
run never sends a request with a token about to lapse; for short lifetimes (tests,
sandboxes) the margin is capped to a tenth of the lifetime, otherwise every request
would renew. A 401 invalidates the token that was refused, and concurrent requests
share one renewal behind a lock, so a burst of 401s costs one token request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from sync.config.pluvo import PluvoConfig
from sync.errors import FatalError, TransientError
from sync.logs import redact, register_secret
from sync.pluvo.http import Throttled, parse_retry_after, redirect_error, safe_url
from sync.pluvo.transport import Request, Transport, TransportError

log = logging.getLogger("sync.pluvo.auth")

DEFAULT_LIFETIME = 86400.0


def refresh_delay(lifetime: float, margin: float) -> float:
    """Seconds after issue at which a token of this lifetime should be renewed."""
    return max(0.0, lifetime - min(margin, lifetime / 10))


class TokenProvider:
    """Holds the current access token; `token()` is safe to call from many tasks."""

    def __init__(
        self,
        config: PluvoConfig,
        transport: Transport,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._config = config
        self._transport = transport
        self._clock = clock
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._issued: dict[str, float] = {}  # recent tokens → when they were issued
        self.granted_scopes: frozenset[str] | None = None
        """Scopes the token endpoint said it granted; None if it did not say."""
        self.fetches = 0
        register_secret(config.client_secret.get_secret_value())

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                await self._fetch()
            assert self._token is not None
            return self._token

    def now(self) -> float:
        return self._clock()

    def issued_at(self, token: str) -> float | None:
        """When this client received `token` (by its clock); None if unknown."""
        return self._issued.get(token)

    def invalidate(self, token: str) -> None:
        """Forget `token` if it is still current; a newer one is kept."""
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        config = self._config
        url = config.token_url
        form = {
            "grant_type": "client_credentials",
            "client_id": config.client_id,
            "client_secret": config.client_secret.get_secret_value(),
            "scope": " ".join(config.scopes),
        }
        self.fetches += 1
        try:
            response = await self._transport.send(
                Request(url, {"Accept": "application/json"}, form=form)
            )
        except TransportError as exc:
            raise TransientError(f"token request failed: {exc.message}") from None
        status, text = response.status, response.text
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if 300 <= status < 400:
            raise redirect_error(status, url)
        if status == 429:
            raise Throttled(
                f"token request to {safe_url(url)} was rate limited (429)",
                retry_after=retry_after,
            )
        if status >= 500:
            raise TransientError(f"token request to {safe_url(url)} answered {status}")
        body = _json_object(text)
        if status != 200:
            raise self._refusal(status, body)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise FatalError(f"token answer from {safe_url(url)} carries no access_token")
        register_secret(token)
        lifetime = _number(body.get("expires_in")) or DEFAULT_LIFETIME
        self._token = token
        self._issued = {**dict(list(self._issued.items())[-7:]), token: self._clock()}
        self._renew_at = self._clock() + refresh_delay(lifetime, config.token_refresh_margin)
        scope = body.get("scope")
        if isinstance(scope, str):
            self.granted_scopes = frozenset(scope.split())
            missing = sorted(set(config.scopes) - self.granted_scopes)
            if missing:
                log.warning("Pluvo did not grant the scopes %s", " ".join(missing))
        log.debug("new Pluvo token, renewed in %.0f s", self._renew_at - self._clock())

    def _refusal(self, status: int, body: dict[str, Any]) -> FatalError:
        code = str(body.get("error") or "")
        detail = _short(str(body.get("error_description") or ""))
        reason = f"{code}: {detail}" if code and detail else code or detail or f"HTTP {status}"
        if code == "invalid_scope":
            return FatalError(
                f"Pluvo refused the requested scopes ({reason})",
                hint=f"requested: {' '.join(self._config.scopes)}; check pluvo.scopes and the "
                "API client's scopes in Pluvo",
            )
        return FatalError(
            f"Pluvo refused the client credentials of client_id {self._config.client_id!r} "
            f"({reason})",
            hint="check pluvo.client_id and pluvo.client_secret",
        )


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number > 0 else None
    return None


def _short(text: str, limit: int = 160) -> str:
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
