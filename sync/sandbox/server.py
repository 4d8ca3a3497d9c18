"""The sandbox's HTTP side: token endpoint, GraphQL endpoint, faults, control endpoints.

`SandboxServer` runs an aiohttp app on its own event loop in a background thread, so a
synchronous test or bench can start one, talk to it over real HTTP and stop it. Every
request goes through the same steps, in this order:

1. paths without a trailing slash answer 301 to the slashed URL (like Django);
2. latency (plus jitter), then the faults: fail_all or the counted outage (503), rate
   limit (429), one draw for drop / 5xx / 429, all before anything is read or applied;
3. the bearer token (401 when missing, unknown or expired);
4. the GraphQL document, executed against the store;
5. optionally `drop_after_apply_rate`: applied, then the connection is closed.

Control endpoints under `/_sandbox/` skip all of it, are not counted, and answer only
to loopback peers. See README.md beside this file for the whole contract.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import ipaddress
import json
import logging
import math
import os
import secrets
import signal
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from aiohttp import web
from graphql import GraphQLError, OperationDefinitionNode, parse

from sync.sandbox.api import Context, GraphQLApi
from sync.sandbox.control import SandboxControl
from sync.sandbox.counters import Counters
from sync.sandbox.faults import Dice, Faults
from sync.sandbox.store import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    SandboxError,
    Seed,
    Store,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_SAVE_INTERVAL = 1.0
_STATUS_TEXT = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class _Token:
    client_id: str
    scopes: frozenset[str]
    expires_at: float


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data), status=status, content_type="application/json", headers=headers
    )


class SandboxServer:
    """A local Pluvo look-alike over real HTTP; see the module docstring."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        seed: Seed | None = None,
        state_file: Path | None = None,
        schema_file: Path | None = None,
        access_log: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.initial_faults = faults or Faults()
        self.faults = self.initial_faults
        self.seed = seed or Seed()
        self.state_file = Path(state_file) if state_file is not None else None
        self.access_log = access_log
        self.api = GraphQLApi(schema_file)
        self.store = Store()
        self.counters = Counters()
        self.dice = Dice(self.faults.seed)
        self.dice.restart_script(self.faults)
        self.client_id = DEFAULT_CLIENT_ID
        self.client_secret = DEFAULT_CLIENT_SECRET
        self._tokens: dict[str, _Token] = {}
        self._dropped: set[int] = set()  # id() of requests being dropped
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._startup_error: BaseException | None = None
        self._save_handle: asyncio.TimerHandle | None = None
        self._control: SandboxControl | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> SandboxServer:
        """Listen in a background thread; returns once the port is open."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._startup_error = None
        thread = threading.Thread(target=self._run, args=(ready,), name="pluvo-sandbox")
        thread.daemon = True
        self._thread = thread
        thread.start()
        ready.wait(timeout=60)
        if self._startup_error is not None or not ready.is_set():
            thread.join(timeout=10)
            self._thread = None
            error = self._startup_error or RuntimeError("the sandbox did not start in time")
            raise error
        return self

    def stop(self) -> None:
        """Stop listening, save the state file if there is one, end the thread."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        self._thread = None
        self._loop = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """Base URL with a trailing slash, e.g. `http://127.0.0.1:54321/`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def graphql_url(self) -> str:
        return self.url + "graphql/"

    @property
    def token_url(self) -> str:
        return self.url + "oauth/token/"

    @property
    def control(self) -> SandboxControl:
        if self._control is None or self._control.base_url != self.url:
            self._control = SandboxControl(self.url)
        return self._control

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self._open())
        except BaseException as exc:
            self._startup_error = exc
            with contextlib.suppress(Exception):
                loop.run_until_complete(self._close())
            loop.close()
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                loop.run_until_complete(self._close())
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    async def _open(self) -> None:
        self._load_initial_state()
        app = web.Application(middlewares=[self._middleware], client_max_size=64 * 1024**2)
        app.router.add_post("/oauth/token/", self._token)
        app.router.add_post("/graphql/", self._graphql)
        control = [
            ("GET", "counters", self._c_counters),
            ("POST", "counters/reset", self._c_counters_reset),
            ("GET", "state", self._c_state),
            ("GET", "faults", self._c_faults),
            ("POST", "faults", self._c_set_faults),
            ("POST", "reset", self._c_reset),
            ("POST", "seed", self._c_seed),
            ("POST", "users/update", self._c_update_user),
            ("POST", "membership", self._c_membership),
            ("POST", "membership/flush", self._c_flush),
            ("POST", "tokens/expire", self._c_expire_tokens),
            ("POST", "save", self._c_save),
        ]
        for method, path, handler in control:
            app.router.add_route(method, f"/_sandbox/{path}", handler)
        access = logging.getLogger("sync.sandbox.access") if self.access_log else None
        runner = web.AppRunner(app, access_log=access, shutdown_timeout=0.5)
        await runner.setup()
        self._runner = runner
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        address = runner.addresses[0]
        self.port = int(address[1])

    async def _close(self) -> None:
        if self._save_handle is not None:
            self._save_handle.cancel()
            self._save_handle = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self.save()

    # -------------------------------------------------------------------- state

    def _load_initial_state(self) -> None:
        self.store.clear()
        if self.state_file is not None and self.state_file.is_file():
            text = self.state_file.read_text(encoding="utf-8")
            if text.strip():
                self.store.load(json.loads(text))
                return
        self.store.load(self.seed.as_data())

    def save(self) -> None:
        """Write the state file now (atomically), when there is one."""
        if self.state_file is None:
            return
        data = json.dumps(self.store.dump(), indent=1, ensure_ascii=False)
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".sandbox-", dir=self.state_file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(data)
            os.replace(tmp, self.state_file)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _schedule_save(self) -> None:
        """After a write: save within a second, at most once a second."""
        if self.state_file is None or self._save_handle is not None or self._loop is None:
            return

        def run() -> None:
            self._save_handle = None
            try:
                self.save()
            except OSError:
                log.exception("sandbox: could not write %s", self.state_file)

        self._save_handle = self._loop.call_later(_SAVE_INTERVAL, run)

    # --------------------------------------------------------------- plumbing

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith("/_sandbox/") or path == "/_sandbox":
            if not _is_loopback(request.remote):
                return _json({"error": "the control API answers loopback peers only"}, 403)
            try:
                return await handler(request)
            except web.HTTPException as exc:
                return _json({"error": exc.reason}, exc.status)
            except SandboxError as exc:
                return _json({"error": exc.message, "code": exc.code}, 400)
            except (ValueError, TypeError, KeyError) as exc:
                return _json({"error": f"{type(exc).__name__}: {exc}"}, 400)
        self.counters.requests += 1
        response: web.StreamResponse
        if not path.endswith("/"):
            location = path + "/"
            if request.query_string:
                location += "?" + request.query_string
            response = web.Response(status=301, headers={"Location": location})
        else:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _json({"detail": exc.reason}, exc.status)
        if id(request) in self._dropped:
            self._dropped.discard(id(request))
            self.counters.dropped += 1
        else:
            self.counters.status[str(response.status)] += 1
        return response

    def _drop(self, request: web.Request) -> web.Response:
        """Close the connection without an answer (what the client sees: disconnected)."""
        self._dropped.add(id(request))
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=204)

    async def _faults_before(self, request: web.Request) -> web.StreamResponse | None:
        """Latency first, then the fault (if any) that answers instead of the endpoint."""
        faults = self.faults
        delay = self.dice.latency(faults)
        if delay > 0:
            await asyncio.sleep(delay)
        if request.path == "/oauth/token/" and not faults.token_faults:
            return None
        counted = self.counters.faults
        scripted = self.dice.scripted() if request.path != "/oauth/token/" else None
        if scripted is not None:
            counted["scripted"] += 1
            if scripted == 401:
                return self._unauthorized("Token has expired.")
            if scripted == 429:
                return self._throttled(faults.retry_after)
            return self._server_error(scripted)
        if faults.fail_all or self.dice.outage(faults):
            counted["fail_all"] += 1
            return self._server_error(503, faults.unavailable_retry_after)
        if faults.rate_limit is not None:
            wait = self.dice.rate_limited(faults, time.monotonic())
            if wait is not None:
                counted["rate_limited"] += 1
                return self._throttled(wait)
        verdict = self.dice.verdict(faults)
        if verdict == "drop":
            counted["drop"] += 1
            return self._drop(request)
        if verdict == "error":
            counted["error"] += 1
            status = self.dice.error_status(faults)
            return self._server_error(status, faults.unavailable_retry_after)
        if verdict == "throttle":
            counted["throttle"] += 1
            return self._throttled(faults.retry_after)
        return None

    @staticmethod
    def _server_error(status: int, retry_after: float | None = None) -> web.Response:
        text = _STATUS_TEXT.get(status, "Server Error")
        body = f"<html><body><h1>{status} {text}</h1></body></html>\n"
        headers = {}
        if status == 503 and retry_after is not None:
            headers["Retry-After"] = str(math.ceil(retry_after))
        return web.Response(text=body, status=status, content_type="text/html", headers=headers)

    @staticmethod
    def _throttled(wait: float) -> web.Response:
        seconds = max(1, math.ceil(wait))
        return _json(
            {
                "detail": f"Request was throttled. Expected available in {seconds} seconds.",
                "retry_after": round(wait, 3),
            },
            429,
            headers={"Retry-After": str(seconds)},
        )

    # ---------------------------------------------------------------- endpoints

    async def _token(self, request: web.Request) -> web.StreamResponse:
        self.counters.token_requests += 1
        blocked = await self._faults_before(request)
        if blocked is not None:
            return blocked
        try:
            form = await request.post()
        except ConnectionError:
            return web.Response(status=499)
        grant_type = str(form.get("grant_type", ""))
        client_id = str(form.get("client_id", ""))
        client_secret = str(form.get("client_secret", ""))
        basic = request.headers.get("Authorization", "")
        if basic.lower().startswith("basic ") and not client_id:
            try:
                decoded = base64.b64decode(basic[6:].strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            client_id, _, client_secret = decoded.partition(":")
        if grant_type != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        client = self.store.clients.get(client_id)
        if client is None or not hmac.compare_digest(
            client.client_secret.encode(), client_secret.encode()
        ):
            return _json({"error": "invalid_client"}, 401)
        scope = str(form.get("scope", "")).split()
        granted = client.grant(scope or None)
        if not granted:
            return _json({"error": "invalid_scope"}, 400)
        lifetime = self.faults.token_lifetime
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        if len(self._tokens) > 10_000:
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
        self._tokens[token] = _Token(client.client_id, frozenset(granted), now + lifetime)
        self.counters.tokens_issued += 1
        expires_in: float | int = int(lifetime) if lifetime == int(lifetime) else lifetime
        return _json(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": expires_in,
                "scope": " ".join(granted),
            }
        )

    @staticmethod
    async def _read(request: web.Request) -> bytes | None:
        """The body, or None when the client disconnected before sending all of it."""
        try:
            return await request.read()
        except ConnectionError:
            return None

    def _unauthorized(self, message: str) -> web.Response:
        return _json(
            {
                "detail": message,
                "errors": [{"message": message, "extensions": {"code": "AuthenticationFailed"}}],
            },
            401,
            headers={"WWW-Authenticate": 'Bearer realm="api", error="invalid_token"'},
        )

    async def _graphql(self, request: web.Request) -> web.StreamResponse:
        self.counters.graphql_requests += 1
        self.counters.enter()
        try:
            return await self._answer_graphql(request)
        finally:
            self.counters.leave()

    async def _answer_graphql(self, request: web.Request) -> web.StreamResponse:
        blocked = await self._faults_before(request)
        if blocked is not None:
            return blocked
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._unauthorized("Authentication credentials were not provided.")
        entry = self._tokens.get(token.strip())
        now = time.monotonic()
        if entry is None:
            return self._unauthorized("Invalid token.")
        if entry.expires_at <= now:
            del self._tokens[token.strip()]
            return self._unauthorized("Token expired.")
        raw = await self._read(request)
        if raw is None:
            return web.Response(status=499)  # the client went away mid-body
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            self.counters.errors["BadRequest"] += 1
            message = "POST body must be a JSON object with query and variables."
            return _json(
                {"errors": [{"message": message, "extensions": {"code": "BadRequest"}}]}, 400
            )
        refused = self._too_complex(payload.get("query"))
        if refused is not None:
            return refused
        self.store.flush(now)
        context = Context(
            store=self.store,
            faults=self.faults,
            counters=self.counters,
            scopes=entry.scopes,
            now=now,
        )
        outcome = await self.api.run(
            payload.get("query"), payload.get("variables"), payload.get("operationName"), context
        )
        if outcome.mutated:
            self._schedule_save()
        if self.dice.drop_after_apply(self.faults):
            self.counters.faults["drop_after_apply"] += 1
            return self._drop(request)
        return _json(outcome.body, outcome.status)

    def _too_complex(self, query: object) -> web.Response | None:
        """Refuse a document with more root fields than `max_root_fields` allows."""
        limit = self.faults.max_root_fields
        if limit is None or not isinstance(query, str):
            return None
        try:
            document = parse(query)
        except GraphQLError:
            return None  # the executor reports the syntax error itself
        roots = sum(
            len(d.selection_set.selections)
            for d in document.definitions
            if isinstance(d, OperationDefinitionNode)
        )
        if roots <= limit:
            return None
        self.counters.errors["TooComplex"] += 1
        message = f"Query is too complex: {roots} root fields, at most {limit} are allowed."
        return _json({"errors": [{"message": message, "extensions": {"code": "TooComplex"}}]}, 400)

    # ------------------------------------------------------------ control API

    async def _body(self, request: web.Request) -> dict[str, Any]:
        text = await request.text()
        data = json.loads(text) if text.strip() else {}
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        return data

    def counters_snapshot(self) -> dict[str, Any]:
        snapshot = self.counters.snapshot()
        snapshot["pending_membership_changes"] = self.store.pending_changes
        return snapshot

    async def _c_counters(self, _request: web.Request) -> web.StreamResponse:
        return _json(self.counters_snapshot())

    async def _c_counters_reset(self, _request: web.Request) -> web.StreamResponse:
        self.counters.reset()
        return _json(self.counters_snapshot())

    async def _c_state(self, _request: web.Request) -> web.StreamResponse:
        return _json(self.store.dump())

    async def _c_faults(self, _request: web.Request) -> web.StreamResponse:
        return _json(self.faults.to_dict())

    async def _c_set_faults(self, request: web.Request) -> web.StreamResponse:
        changes = await self._body(request)
        self.faults = self.faults.updated(changes)
        if "seed" in changes:
            self.dice.reseed(self.faults.seed)
        if {"outage_after", "outage_length"} & set(changes):
            self.dice.restart_outage()
        if "scripted" in changes:
            self.dice.restart_script(self.faults)
        return _json(self.faults.to_dict())

    async def _c_reset(self, _request: web.Request) -> web.StreamResponse:
        """Back to the seed, the constructor's faults and zero counters (tokens stay)."""
        self.store.clear()
        self.store.load(self.seed.as_data())
        self.faults = self.initial_faults
        self.dice = Dice(self.faults.seed)
        self.dice.restart_script(self.faults)
        self.counters.reset()
        self._schedule_save()
        return _json({"ok": True})

    async def _c_seed(self, request: web.Request) -> web.StreamResponse:
        data = await self._body(request)
        unknown = set(data) - {"users", "groups", "categories", "clients"}
        if unknown:
            raise ValueError(f"unknown seed key(s): {', '.join(sorted(unknown))}")
        self.store.load(data)
        self._schedule_save()
        return _json({"users": len(self.store.users), "groups": len(self.store.groups)})

    async def _c_update_user(self, request: web.Request) -> web.StreamResponse:
        data = await self._body(request)
        store = self.store
        user = store.require_user(id=data.get("id"), ref=data.get("ref"))
        fields = dict(data.get("fields") or {})
        extra = fields.pop("extra", None)
        store.update_user(user, fields)
        if extra:
            store.load_extra("USER", user, extra)
        self._schedule_save()
        dumped = next(u for u in store.dump()["users"] if u["id"] == user.id)
        return _json(dumped)

    async def _c_membership(self, request: web.Request) -> web.StreamResponse:
        """Add or remove a member or manager at once (no delay): drift for tests."""
        data = await self._body(request)
        store = self.store
        group = store.require_group(id=data.get("groupId"), ref=data.get("group"))
        user = store.find_user(ref=data.get("user")) or store.find_user(id=data.get("userId"))
        if user is None:
            name = data.get("user") or data.get("userId")
            raise SandboxError(f"unknown user {name!r}", "NotFound")
        relation = data.get("relation", "members")
        op = data.get("op", "add")
        if relation not in ("members", "managers") or op not in ("add", "remove"):
            raise ValueError("relation is members|managers, op is add|remove")
        changed, _ = store.change_relation(
            group, relation, op, [user], now=time.monotonic(), delay=0.0
        )
        self._schedule_save()
        return _json({"changed": bool(changed)})

    async def _c_flush(self, _request: web.Request) -> web.StreamResponse:
        self.store.flush(None)
        return _json({"pending": self.store.pending_changes})

    async def _c_expire_tokens(self, _request: web.Request) -> web.StreamResponse:
        for token in self._tokens.values():
            token.expires_at = 0.0
        return _json({"expired": len(self._tokens)})

    async def _c_save(self, _request: web.Request) -> web.StreamResponse:
        self.save()
        return _json({"saved": str(self.state_file) if self.state_file else None})


def banner(server: SandboxServer, faults: Faults, state_file: Path | None) -> str:
    """What `pluvo-sync sandbox` prints when it listens: every address in it answers.

    `/_sandbox/` itself has no page, so the control endpoints are named one by one: the
    ones to open in a browser (GET), then the ones to POST to."""
    control = f"{server.url}_sandbox/"
    changed = {k: v for k, v in faults.to_dict().items() if v != getattr(Faults(), k)}
    lines = [
        f"Pluvo sandbox listening on {server.url}",
        f"  token:    POST {server.token_url}  (grant_type=client_credentials)",
        f"  graphql:  POST {server.graphql_url}",
        f"  client_id={DEFAULT_CLIENT_ID}  client_secret={DEFAULT_CLIENT_SECRET}  (every scope)",
        f"  control:  GET {control}counters, {control}state, {control}faults;"
        " POST faults, reset, seed there too",
    ]
    if changed:
        lines.append("  faults:   " + " ".join(f"{k}={v}" for k, v in changed.items()))
    if state_file is not None:
        lines.append(f"  state:    {state_file}")
    lines.append("Ctrl-C to stop.")
    return "\n".join(lines)


def serve_cli(
    *,
    config_file: Path | None,
    port: int,
    host: str,
    state_file: Path | None,
    latency: float,
    error_rate: float,
    throttle_rate: float,
    rate_limit: float | None,
    drop_rate: float,
    token_lifetime: float,
    membership_delay: float,
    schema_file: Path | None,
) -> int:
    """`pluvo-sync sandbox`: serve in the foreground until Ctrl-C (or SIGTERM).

    `config_file` is accepted for symmetry with the other commands and not read: the
    sandbox is configured by its flags and at run time through `POST /_sandbox/faults`.
    """
    from sync.errors import ConfigError

    try:
        faults = Faults().updated(
            {
                "latency": latency,
                "error_rate": error_rate,
                "throttle_rate": throttle_rate,
                "rate_limit": rate_limit,
                "drop_rate": drop_rate,
                "token_lifetime": token_lifetime,
                "membership_delay": membership_delay,
            }
        )
    except ValueError as exc:
        raise ConfigError(f"sandbox: {exc}") from None
    server = SandboxServer(
        host=host,
        port=port,
        faults=faults,
        state_file=state_file,
        schema_file=schema_file,
        access_log=True,
    )
    try:
        server.start()
    except OSError as exc:
        raise ConfigError(
            f"sandbox: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from None
    except (ValueError, SandboxError) as exc:
        raise ConfigError(f"sandbox: cannot load {state_file}: {exc}") from None
    print(banner(server, faults, state_file), flush=True)

    stopping = threading.Event()

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    # Both signals are handled here, not left to KeyboardInterrupt: a process started
    # in the background by a non-interactive shell inherits SIGINT ignored, and Python
    # then never raises KeyboardInterrupt, so Ctrl-C (or kill -INT) would not stop it.
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, on_term)
    try:
        while not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("Pluvo sandbox stopped.", flush=True)
    return 0
