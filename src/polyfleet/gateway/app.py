"""The gateway as an ASGI app: auth, parse, route with failover, stream, account.

``Gateway(routes)`` is the app factory's product; uvicorn runs it (see
``polyfleet.cli.serve``).  Requests never wait on the ledger or on metrics export: a
finished request appends a record to a queue and bumps in-memory counters.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from polyfleet.gateway.anthropic import ChatToMessagesStream, chat_to_message, messages_to_chat
from polyfleet.gateway.auth import Keys
from polyfleet.gateway.backends import BackendState, Pool, open_upstream
from polyfleet.gateway.config import Key, Routes
from polyfleet.gateway.errors import GatewayError, UpstreamError
from polyfleet.gateway.ledger import Ledger, LedgerWriter, Record, today
from polyfleet.gateway.metrics import Metrics
from polyfleet.gateway.shared import SharedState
from polyfleet.gateway.transport import Transport
from polyfleet.gateway.types import Receive, Scope, Send
from polyfleet.gateway.usage import StreamUsage, Usage, usage_from_body

# client path -> (api the backend must speak, path appended to the backend's base URL)
ENDPOINTS = {
    "/v1/chat/completions": ("openai", "/chat/completions"),
    "/v1/completions": ("openai", "/completions"),
    "/v1/embeddings": ("openai", "/embeddings"),
    "/v1/messages": ("anthropic", "/messages"),
}
_JSON = b"application/json"


@dataclass(slots=True)
class _Request:
    """What the ledger needs to know about a request, gathered before it is routed."""

    key: Key
    day: str
    model: str
    endpoint: str
    stream: bool
    started: float


class _ClientGone(Exception):
    """The client disconnected before its request body was complete."""


def _error(message: str, status: int, code: str, param: str | None = None) -> GatewayError:
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    return GatewayError(message, status=status, type=kind, code=code, param=param)


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = _JSON, headers: tuple = ()
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
        self._series: dict[tuple[str, str, int], Any] = {}

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
                await self._models(scope, send)
            elif path == "/healthz":
                await self._health(send)
            elif path == "/metrics":
                self._gauge_backends()
                await _respond(send, 200, self.metrics.render(), b"text/plain; version=0.0.4; charset=utf-8")
            else:
                raise _error(f"no route for {method} {path}", 404, "unknown_url")
        except GatewayError as exc:
            await _respond(send, exc.status, exc.body(), headers=exc.headers)
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
        gc.collect()
        gc.freeze()  # what startup built lives as long as we do: keep it out of every collection

    async def shutdown(self) -> None:
        """Flush the ledger and close upstream connections (after uvicorn drained requests)."""
        if self.shared is not None:
            await self.shared.stop()
        await self.ledger.stop()
        await self.transport.close()

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
        if stream and api == "openai":
            options = payload.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
            body = orjson.dumps(payload)
        limit = payload.get("max_tokens") or payload.get("max_completion_tokens") or 0
        tokens = len(body) // 4 + (limit if isinstance(limit, int) else 0)
        req = _Request(key, day, model, path.lstrip("/"), stream, started)

        def body_for(backend: BackendState) -> tuple[str, bytes]:
            rename = backend.config.model
            if backend.config.api == api:
                return path, body if rename is None else orjson.dumps({**payload, "model": rename})
            return "/chat/completions", orjson.dumps(messages_to_chat(payload, rename or model))

        try:
            opened = await open_upstream(
                pool,
                self.transport,
                apis=apis,
                body_for=body_for,
                extra_headers=extra,
                stream=stream,
                tokens=tokens,
                routes=self.routes,
                on_failover=lambda name, reason: self.metrics.failovers.labels(model, name, reason).inc(),
            )
        except GatewayError as exc:
            self._account(req, None, exc.status, None, 0)
            raise
        backend, response = opened.backend, opened.response
        translate = backend.config.api != api  # an Anthropic client answered by an OpenAI backend
        status = response.status
        content_type = (
            "application/json" if translate and not stream else response.headers.get("content-type")
        )
        headers = [
            (b"content-type", (content_type or "application/json").encode("latin-1")),
            (b"x-polyfleet-backend", backend.name.encode()),
        ]
        usage = None
        try:
            if stream and status < 300:
                meter = StreamUsage()
                recode = ChatToMessagesStream(model) if translate else None
                status = await self._stream(send, response, opened.body, headers, meter, recode)
                usage = (meter.tokens_in, meter.tokens_out) if meter.seen else None
            else:
                answer = opened.body
                if status < 300:
                    usage = usage_from_body(answer)
                    answer = chat_to_message(answer, model) if translate else answer
                headers.append((b"content-length", str(len(answer)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": answer})
        finally:
            backend.release(tokens, sum(usage) if usage else None)
            self._account(req, backend, status, usage, opened.attempts)

    async def _stream(
        self,
        send: Send,
        response: Any,
        first: bytes,
        headers: list,
        meter: StreamUsage,
        recode: ChatToMessagesStream | None,
    ) -> int:
        """Pass SSE chunks through as they arrive; the status to record (502 if the stream broke).

        ``recode`` turns OpenAI chunks into Anthropic events, event by event, when the
        client speaks the Messages API and the backend does not.
        """
        headers.append((b"cache-control", b"no-cache"))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        meter.feed(first)
        await send(
            {"type": "http.response.body", "body": recode.feed(first) if recode else first, "more_body": True}
        )
        status = response.status
        try:
            async for chunk in response.rest():
                meter.feed(chunk)
                await send(
                    {
                        "type": "http.response.body",
                        "body": recode.feed(chunk) if recode else chunk,
                        "more_body": True,
                    }
                )
        except UpstreamError:
            status = 502  # bytes already reached the client: never retried, only recorded
        finally:
            response.close()
        await send({"type": "http.response.body", "body": recode.finish() if recode else b""})
        return status

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

    def _account(
        self, req: _Request, backend: BackendState | None, status: int, usage: Usage | None, attempts: int
    ) -> None:
        tokens_in, tokens_out = usage or (0, 0)
        model = req.model
        if backend is None:
            name, provider, cost = "", "", 0.0
        else:
            name, provider = backend.name, backend.config.provider
            cost = backend.config.cost_usd(tokens_in, tokens_out)
        elapsed = time.perf_counter() - req.started
        self.keys.charge(req.key, req.day, cost)
        self.ledger.add(
            Record(
                time.time(),
                req.day,
                req.key.name,
                model,
                name,
                provider,
                req.endpoint,
                status,
                round(elapsed * 1000, 3),
                tokens_in,
                tokens_out,
                cost,
                attempts,
                req.stream,
            )
        )
        series = self._series.get((model, name, status))
        if series is None:
            m = self.metrics
            series = self._series[(model, name, status)] = (
                m.requests.labels(model, name, str(status)),
                m.tokens.labels(model, name, "in"),
                m.tokens.labels(model, name, "out"),
                m.cost.labels(model, name, provider),
                m.latency.labels(model, name),
            )
        requests, t_in, t_out, usd, latency = series
        requests.inc()
        latency.observe(elapsed)
        if usage:
            t_in.inc(tokens_in)
            t_out.inc(tokens_out)
            usd.inc(cost)

    # --- small endpoints --------------------------------------------------------------------

    async def _models(self, scope: Scope, send: Send) -> None:
        headers = dict(scope["headers"])
        key = self.keys.authenticate(headers.get(b"authorization"), headers.get(b"x-api-key"))
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "polyfleet"}
            for name in self.pools
            if key.models is None or name in key.models
        ]
        await _respond(send, 200, orjson.dumps({"object": "list", "data": data}))

    async def _health(self, send: Send) -> None:
        now = time.monotonic()
        models = {name: {b.name: b.state(now) for b in pool.backends} for name, pool in self.pools.items()}
        await _respond(send, 200, orjson.dumps({"status": "ok", "models": models}))

    def _gauge_backends(self) -> None:
        now = time.monotonic()
        for pool in self.pools.values():
            for b in pool.backends:
                self.metrics.inflight.labels(b.name).set(b.inflight)
                self.metrics.breaker_open.labels(pool.name, b.name).set(0 if b.state(now) == "up" else 1)
