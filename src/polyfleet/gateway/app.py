"""The gateway as an ASGI app: auth, parse, reserve the budget, route with failover, relay, account.

``Gateway(routes)`` is the app factory's product; uvicorn runs it (see
``polyfleet.cli.serve``).  The answer is relayed by ``relay``, the request accounted
for by ``accounting`` (off the request path), the gateway's own endpoints are ``admin``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import orjson

from polyfleet.gateway import admin
from polyfleet.gateway.accounting import Accountant
from polyfleet.gateway.anthropic import messages_to_chat
from polyfleet.gateway.auth import Keys
from polyfleet.gateway.backends import BackendState, Pool, open_upstream
from polyfleet.gateway.budgets import SharedBudgets
from polyfleet.gateway.config import Key, Routes
from polyfleet.gateway.errors import GatewayError
from polyfleet.gateway.ledger import Ledger, LedgerWriter, today
from polyfleet.gateway.limits import BreakerState
from polyfleet.gateway.metrics import Metrics
from polyfleet.gateway.relay import Outcome, Request, relay_body, relay_stream
from polyfleet.gateway.shared import SharedState
from polyfleet.gateway.tokens import max_input_tokens
from polyfleet.gateway.transport import Transport
from polyfleet.gateway.types import Receive, Scope, Send

log = logging.getLogger("polyfleet.gateway")

# client path -> (api the backend must speak, path appended to the backend's base URL)
ENDPOINTS = {
    "/v1/chat/completions": ("openai", "/chat/completions"),
    "/v1/completions": ("openai", "/completions"),
    "/v1/embeddings": ("openai", "/embeddings"),
    "/v1/messages": ("anthropic", "/messages"),
}


# scope key set by ``server.GuardedHttpTools``: the request puts (its task, its Outcome) there,
# and the protocol cancels the task when the client's connection is lost (no watcher task per request)
DISCONNECT_HOOK = "polyfleet.on_disconnect"
# scope key set by ``server.GuardedHttpTools``: drops the client's connection (a client that
# takes no bytes past ``total_s``: nothing can be said to it any more)
ABORT_HOOK = "polyfleet.abort"


def client_gone(scope: Scope) -> None:
    """The connection of the request in ``scope`` was lost: cancel its handler (called by the protocol)."""
    hook = scope.get(DISCONNECT_HOOK)
    if hook:
        task, out = hook
        if not out.finished and task is not None:
            out.client_gone = True
            task.cancel()


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def _error(message: str, status: int, code: str, param: str | None = None) -> GatewayError:
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return GatewayError(message, status=status, type=kind, code=code, param=param)


class Gateway:
    """OpenAI- and Anthropic-compatible gateway over the backends of a routes file."""

    def __init__(
        self,
        routes: Routes,
        *,
        environ: Mapping[str, str] | None = None,
        ledger_url: str | None = None,
        transport: Transport | None = None,
    ):
        environ = os.environ if environ is None else environ
        self.routes = routes
        self.pools = {m.name: Pool(m, routes, environ) for m in routes.models}
        self.keys = Keys(routes.keys)
        self.metrics = Metrics()
        self.transport = transport or Transport(routes.timeouts.connect_s, routes.timeouts.first_byte_s)
        self.ledger = LedgerWriter(ledger_url or routes.ledger)
        self.shared = SharedState(routes.state, self.pools.values()) if routes.state != "memory" else None
        self.accounts = Accountant(self.keys, self.ledger, self.metrics)
        self._prober: asyncio.Task[None] | None = None
        self._stopped = False

    # --- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        try:
            if path in ENDPOINTS:
                if method != "POST":
                    raise _error(f"{path} takes POST", 405, "method_not_allowed")
                await self._proxy(scope, receive, send, *ENDPOINTS[path])
            elif path == "/v1/models" and method == "GET":
                await admin.models(self.keys, self.pools, scope, send, None)
            elif path.startswith("/v1/models/") and method == "GET":
                await admin.models(self.keys, self.pools, scope, send, path[len("/v1/models/") :])
            elif path == "/healthz":
                await admin.health(self.routes, self.pools, scope, send)
            elif path == "/metrics":
                await admin.metrics(self.routes, self.pools, self.metrics, scope, send)
            else:
                raise _error(f"no route for {method} {path}", 404, "unknown_url")
        except GatewayError as exc:
            body = exc.anthropic_body() if path == "/v1/messages" else exc.body()
            await admin.respond(send, exc.status, body, headers=exc.headers)
        except _ClientGone:
            return

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:  # reported to uvicorn, which exits non-zero
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Open the upstream pool and the ledger; resume today's spend per key."""
        await self.transport.start()
        try:
            await self.ledger.start()
            if self.shared is not None:
                await self.shared.start()
        except BaseException:
            await self.transport.close()
            raise
        if self.keys.enabled:
            day = today()
            reader = Ledger(self.ledger.url).open()
            try:
                for name, usd in reader.spend_on(day).items():
                    self.keys.spent[(name, day)] = usd
            finally:
                reader.close()
            if self.shared is not None and self.routes.keys:
                budgets = SharedBudgets(self.keys, self.shared.redis, self.shared.prefix)
                await budgets.seed(list(self.routes.keys), day)
                self.accounts.budgets = budgets
        self._prober = asyncio.create_task(self._probe_forever(), name="polyfleet-probe")
        gc.collect()
        gc.freeze()  # what startup built lives as long as we do: keep it out of every collection

    async def shutdown(self) -> None:
        """Flush the ledger and close upstream connections (after uvicorn drained requests).

        Safe to call twice (a second Ctrl-C makes ``polyfleet serve`` call it itself).
        """
        if self._stopped:
            return
        self._stopped = True
        if self._prober is not None:
            self._prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._prober
        await self.accounts.drain()  # rows waiting for a token count, budgets being settled
        if self.shared is not None:
            await self.shared.stop()
        await self.ledger.stop()
        await self.transport.close()

    async def _probe_forever(self) -> None:
        """Every ``probe.interval_s``, send the health probe to each backend whose breaker is open.

        A probe answered 2xx closes the breaker at once, so a backend back from a failure
        takes traffic again without waiting out ``breaker.cooldown_s``.
        """
        probe = self.routes.probe
        backends = [b for pool in self.pools.values() for b in pool.backends]
        while True:
            await asyncio.sleep(probe.interval_s)
            down = [b for b in backends if b.breaker.state is not BreakerState.CLOSED]
            if not down:
                continue
            answers = await asyncio.gather(
                *(self.transport.probe(probe.method, b.probe_url, b.headers, probe.timeout_s) for b in down)
            )
            for backend, status in zip(down, answers, strict=True):
                if (
                    status is not None
                    and 200 <= status < 300
                    and backend.breaker.state is not BreakerState.CLOSED
                ):
                    backend.breaker.on_success()
                    log.warning(
                        "polyfleet: backend %s answered its health probe: back in service", backend.name
                    )

    # --- the proxy ------------------------------------------------------------------------

    async def _read_request(self, scope: Scope, receive: Receive) -> tuple[Key, dict[str, str], bytes, dict]:
        """Authenticate, read the body (bounded) and parse it: key, headers to forward, body, payload."""
        authorization = x_api_key = length = None
        extra: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-api-key":
                x_api_key = value
            elif name == b"content-length":
                length = value
            elif name.startswith(b"anthropic-"):
                extra[name.decode("latin-1")] = value.decode("latin-1")
        key = self.keys.authenticate(authorization, x_api_key)
        body = await self._read_body(receive, length)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise _error(f"request body is not valid JSON: {exc}", 400, "invalid_json") from None
        if not isinstance(payload, dict):
            raise _error("request body must be a JSON object", 400, "invalid_json")
        if not isinstance(payload.get("model"), str):
            raise _error("'model' is required and must be a string", 400, "missing_model", "model")
        return key, extra, body, payload

    async def _proxy(self, scope: Scope, receive: Receive, send: Send, api: str, path: str) -> None:
        started = time.perf_counter()
        key, extra, body, payload = await self._read_request(scope, receive)
        model = payload["model"]
        pool = self.pools.get(model)
        apis = pool.apis if pool is not None and api == "anthropic" else {api}  # Messages: any backend
        if pool is None or not apis & pool.apis:
            what = "does not exist" if pool is None else f"has no backend speaking the {api} API"
            raise _error(f"the model {model!r} {what}", 404, "model_not_found", "model")
        day = today()
        self.keys.admit(key, model, day)
        stream = payload.get("stream") is True
        hide_usage = False
        if stream and api == "openai":
            options = payload.get("stream_options")
            # we always ask upstream for usage (to bill); the client sees the usage-only chunk
            # (choices: []) only when it asked for it, as the OpenAI API does
            if not (isinstance(options, dict) and options.get("include_usage") is True):
                hide_usage = True
                payload["stream_options"] = {
                    **(options if isinstance(options, dict) else {}),
                    "include_usage": True,
                }
                body = orjson.dumps(payload)
        limit = payload.get("max_tokens") or payload.get("max_completion_tokens") or 0
        limit = limit if isinstance(limit, int) and limit > 0 else 0
        tokens = len(body) // 4 + limit  # tokens/min estimate, corrected from usage
        reserved = 0.0
        if key.budget_usd_per_day is not None:
            worst = pool.max_cost_usd(max_input_tokens(payload), limit or self.routes.budget_max_tokens)
            budgets = self.accounts.budgets
            if budgets is not None:
                reserved = await budgets.reserve(key, day, worst)
            else:
                reserved = self.keys.reserve(key, day, worst)
        req = Request(key, day, model, path.lstrip("/"), stream, started, reserved, payload, api)
        out = Outcome(abort=scope.get(ABORT_HOOK))
        task = asyncio.current_task()
        watcher = None
        if scope.get(DISCONNECT_HOOK) is not None:  # our protocol cancels us on a disconnect
            scope[DISCONNECT_HOOK] = (task, out)
        elif task is not None:  # another ASGI server: watch receive() for http.disconnect
            watcher = asyncio.create_task(self._watch(receive, task, out))
        try:
            await self._forward(send, req, out, pool, apis, body, extra, tokens, hide_usage)
        except GatewayError as exc:
            out.status = exc.status
            raise
        except asyncio.CancelledError:
            if not out.client_gone or task is None:
                if not out.answered:  # cut by a forced shutdown (not while draining after the end)
                    out.status, out.partial = 503, out.responded
                raise
            task.uncancel()  # the client went away: the upstream request is dropped, the slot freed
            out.status = 499
            out.partial = out.responded
            self.metrics.disconnects.labels(model).inc()
        finally:
            out.finished = True
            if watcher is not None:
                watcher.cancel()
            if out.backend is not None:
                out.backend.release(tokens, sum(out.usage) if out.usage else None)
            self.accounts.finish(req, out)

    @staticmethod
    async def _watch(receive: Receive, task: asyncio.Task[Any], out: Outcome) -> None:
        """Cancel the request's task as soon as its client disconnects (mid-stream or before a byte)."""
        while not out.finished:
            message = await receive()
            if message["type"] == "http.disconnect":
                if not out.finished:
                    out.client_gone = True
                    task.cancel()
                return

    async def _forward(
        self,
        send: Send,
        req: Request,
        out: Outcome,
        pool: Pool,
        apis: set[str],
        body: bytes,
        extra: dict[str, str],
        tokens: int,
        hide_usage: bool,
    ) -> None:
        """Open an upstream (with failover) and pass its answer on; fill ``out`` as it goes."""
        api, payload, model, stream = req.api, req.payload, req.model, req.stream
        path = "/" + req.endpoint

        def body_for(backend: BackendState) -> tuple[str, bytes]:
            rename = backend.config.model
            if backend.config.api == api:
                return path, body if rename is None else orjson.dumps({**payload, "model": rename})
            return "/chat/completions", orjson.dumps(messages_to_chat(payload, rename or model))

        def on_failover(name: str, reason: str) -> None:
            self.metrics.failovers.labels(model, name, reason).inc()
            if reason.startswith("auth-"):
                self.metrics.auth_failures.labels(model, name).inc()

        opened = await open_upstream(
            pool,
            self.transport,
            apis=apis,
            body_for=body_for,
            extra_headers=extra,
            stream=stream,
            tokens=tokens,
            routes=self.routes,
            on_failover=on_failover,
        )
        backend, response = opened.backend, opened.response
        out.backend, out.attempts = backend, opened.attempts
        translate = backend.config.api != api  # an Anthropic client answered by an OpenAI backend
        status = out.status = response.status
        content_type = response.headers.get("content-type")
        if translate and status >= 300:  # an error, translated: JSON in Anthropic's shape
            content_type = "application/json"
        elif status < 300 and (
            translate or ("event-stream" if stream else "json") not in (content_type or "")
        ):
            # the protocol check passed: say what it is, whatever the upstream's header said
            content_type = "text/event-stream" if stream else "application/json"
        headers = [
            (b"content-type", (content_type or "application/json").encode("latin-1")),
            (b"x-polyfleet-backend", backend.name.encode()),
        ]
        if stream and status < 300:
            await relay_stream(
                send, req, out, response, opened.body, headers, translate, hide_usage, self.metrics
            )
        else:
            await relay_body(send, req, out, status, opened.body, opened.parsed, headers, translate)

    async def _read_body(self, receive: Receive, length: bytes | None) -> bytes:
        limit = self.routes.max_body_bytes
        if length is not None and length.isdigit() and int(length) > limit:
            raise _error(f"request body over {limit} bytes", 413, "request_too_large")
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _error(f"request body over {limit} bytes", 413, "request_too_large")
            parts.append(chunk)
            if not message.get("more_body"):
                return parts[0] if len(parts) == 1 else b"".join(parts)
