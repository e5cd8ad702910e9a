"""The gateway as an ASGI app: auth, parse, route with failover, stream, account.

``Gateway(routes)`` is the app factory's product; uvicorn runs it (see
``polyfleet.cli.serve``).  Requests never wait on the ledger or on metrics export: a
finished request appends a record to a queue and bumps in-memory counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
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
from polyfleet.gateway.limits import BreakerState
from polyfleet.gateway.metrics import Metrics
from polyfleet.gateway.shared import SharedState
from polyfleet.gateway.tokens import Counter, answer_texts, max_input_tokens, request_texts, stream_texts
from polyfleet.gateway.transport import Transport
from polyfleet.gateway.types import Receive, Scope, Send
from polyfleet.gateway.usage import StreamUsage, Usage, usage_from_body

log = logging.getLogger("polyfleet.gateway")

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
    reserved: float  # USD of the key's budget held for this request
    payload: dict[str, Any]
    api: str  # the protocol the client speaks


@dataclass(slots=True)
class _Outcome:
    """What became of a request, filled in as it goes (read by the ledger at the end)."""

    backend: BackendState | None = None
    status: int = 502
    usage: Usage | None = None
    attempts: int = 0
    responded: bool = False  # the status line went to the client
    partial: bool = False
    estimated: bool = False
    client_gone: bool = False
    finished: bool = False
    error: str = ""
    chunks: list[bytes] | None = None  # the answer as received, to count tokens when usage is missing


def _stream_error(api: str, message: str) -> bytes:
    """The last event of a stream that broke off, in the client's protocol: the SDKs raise on it."""
    if api == "anthropic":
        error = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    error = {
        "error": {"message": message, "type": "server_error", "param": None, "code": "upstream_stream_broken"}
    }
    return b"data: " + orjson.dumps(error) + b"\n\n"


def _count(counter: Counter, model: str, payload: dict[str, Any], chunks: list[bytes], stream: bool) -> Usage:
    """Tokens of a request and its answer (chunks as received), for an upstream that sent no usage."""
    texts: list[str] = []
    if stream:
        for line in b"".join(chunks).split(b"\n"):
            if line.startswith(b"data:"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    texts += stream_texts(orjson.loads(line[5:]))
    else:
        with contextlib.suppress(orjson.JSONDecodeError):
            texts = answer_texts(orjson.loads(b"".join(chunks)))
    return counter.usage(model, request_texts(payload), texts)


# scope key set by ``server.GuardedHttpTools``: the request puts (its task, its _Outcome) there,
# and the protocol cancels the task when the client's connection is lost (no watcher task per request)
DISCONNECT_HOOK = "polyfleet.on_disconnect"


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
        self.counter = Counter()
        self._counting: set[asyncio.Task[None]] = set()
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
                await self._models(scope, send)
            elif path == "/healthz":
                await self._health(scope, send)
            elif path == "/metrics":
                if not self._may_see(scope):
                    raise GatewayError(
                        "/metrics needs the metrics key",
                        status=401,
                        type="invalid_request_error",
                        code="invalid_api_key",
                    )
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
        if self._counting:  # rows waiting for a token count
            await asyncio.wait(set(self._counting), timeout=30)
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
            reserved = self.keys.reserve(key, day, worst)
        req = _Request(key, day, model, path.lstrip("/"), stream, started, reserved, payload, api)
        out = _Outcome()
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
                out.status, out.partial = 503, out.responded  # cut by a forced shutdown
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
            self._finish(req, out)

    @staticmethod
    async def _watch(receive: Receive, task: asyncio.Task[Any], out: _Outcome) -> None:
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
        req: _Request,
        out: _Outcome,
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
        content_type = (
            "application/json" if translate and not stream else response.headers.get("content-type")
        )
        headers = [
            (b"content-type", (content_type or "application/json").encode("latin-1")),
            (b"x-polyfleet-backend", backend.name.encode()),
        ]
        if stream and status < 300:
            await self._stream(send, req, out, response, opened.body, headers, translate, hide_usage)
            return
        answer = opened.body
        if status < 300:
            out.usage = usage_from_body(answer)
            if out.usage is None:
                out.chunks = [answer]
            answer = chat_to_message(answer, model) if translate else answer
        headers.append((b"content-length", str(len(answer)).encode()))
        out.responded = True
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    async def _stream(
        self,
        send: Send,
        req: _Request,
        out: _Outcome,
        response: Any,
        first: bytes,
        headers: list,
        translate: bool,
        hide_usage: bool,
    ) -> None:
        """Pass SSE chunks through as they arrive; a stream that breaks off is an error the client sees.

        When translating for an Anthropic client, OpenAI chunks become Anthropic events,
        event by event.  The stream is complete only at its protocol's end (``[DONE]``, or
        ``message_stop`` from an Anthropic backend); if the upstream stops short, breaks,
        stalls past ``inter_chunk_s`` or runs past ``total_s``, the client gets an error event
        in its protocol (never a made-up normal finish) and the ledger row says partial.
        """
        headers.append((b"cache-control", b"no-cache"))
        recode = ChatToMessagesStream(req.model) if translate else None
        meter = StreamUsage(hide_usage_chunk=hide_usage)
        end = (
            b"message_stop"
            if out.backend is not None and out.backend.config.api == "anthropic"
            else b"[DONE]"
        )
        chunks: list[bytes] = []
        out.chunks = chunks
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        out.responded = True
        complete = False
        tail = b""
        chunk = first
        try:
            iterator = response.rest()
            while True:
                chunks.append(chunk)
                if not complete and (end in chunk or end in tail + chunk[:16]):
                    complete = True
                tail = chunk[-16:]
                passed = meter.feed(chunk)
                if recode is not None:
                    passed = recode.feed(chunk)
                if passed:
                    await send({"type": "http.response.body", "body": passed, "more_body": True})
                try:
                    chunk = await anext(iterator)
                except StopAsyncIteration:
                    break
        except UpstreamError as exc:
            out.error = str(exc)
        finally:
            response.close()
            if meter.seen:
                out.usage = (meter.tokens_in, meter.tokens_out)
        if complete:
            last = meter.rest() + (recode.finish() if recode is not None else b"")
        else:
            out.status, out.partial = 502, True
            self.metrics.stream_cuts.labels(req.model, out.backend.name if out.backend else "").inc()
            last = _stream_error(req.api, out.error or "the upstream ended the stream before its end")
        await send({"type": "http.response.body", "body": last})

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

    def _finish(self, req: _Request, out: _Outcome) -> None:
        """Account for the request now, or once its tokens are counted when upstream sent no usage."""
        if out.usage is None and out.backend is not None and out.chunks:
            task = asyncio.create_task(self._account_counted(req, out))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)
            return
        self._account(req, out)

    async def _account_counted(self, req: _Request, out: _Outcome) -> None:
        """Count the tokens of a request and its answer in a worker thread, then account."""
        assert out.backend is not None
        name = out.backend.config.model or req.model
        try:
            out.usage = await asyncio.to_thread(
                _count, self.counter, name, req.payload, out.chunks, req.stream
            )
            out.estimated = True
        except Exception as exc:  # never lose the ledger row over a tokenizer
            log.warning("polyfleet: could not count tokens for %s: %s", req.model, exc)
        self._account(req, out)

    def _account(self, req: _Request, out: _Outcome) -> None:
        tokens_in, tokens_out = out.usage or (0, 0)
        model, backend, status = req.model, out.backend, out.status
        if backend is None:
            name, provider, cost = "", "", 0.0
        else:
            name, provider = backend.name, backend.config.provider
            cost = backend.config.cost_usd(tokens_in, tokens_out)
        elapsed = time.perf_counter() - req.started
        self.keys.settle(req.key, req.day, req.reserved, cost)
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
                out.attempts,
                req.stream,
                out.partial,
                out.estimated,
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
        if out.usage:
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

    def _may_see(self, scope: Scope) -> bool:
        """Whether the request may see /metrics and /healthz detail (all may without a metrics key)."""
        wanted = self.routes.metrics_key_sha256
        if wanted is None:
            return True
        headers = dict(scope["headers"])
        secret = headers.get(b"x-api-key")
        authorization = headers.get(b"authorization")
        if authorization is not None and authorization[:7].lower() == b"bearer ":
            secret = authorization[7:].strip()
        return secret is not None and hashlib.sha256(secret).hexdigest() == wanted.lower()

    async def _health(self, scope: Scope, send: Send) -> None:
        """``ok``, or ``degraded`` when some model has no backend that may take a request now."""
        now = time.monotonic()
        models = {name: {b.name: b.state(now) for b in pool.backends} for name, pool in self.pools.items()}
        degraded = sorted(
            name
            for name, states in models.items()
            if not any(s in ("up", "half-open") for s in states.values())
        )
        status = "degraded" if degraded else "ok"
        if not self._may_see(scope):
            await _respond(send, 200, orjson.dumps({"status": status}))
            return
        plan = {
            name: {
                b.name: {"role": b.role, "planned_rps": b.planned_rps, "rate_rps": round(b.rate_rps, 3)}
                for b in pool.backends
            }
            for name, pool in self.pools.items()
            if any(b.role for b in pool.backends)
        }
        body = {"status": status, "models": models, "degraded": degraded, "plan": plan}
        await _respond(send, 200, orjson.dumps(body))

    def _gauge_backends(self) -> None:
        now = time.monotonic()
        for pool in self.pools.values():
            for b in pool.backends:
                self.metrics.inflight.labels(b.name).set(b.inflight)
                self.metrics.breaker_open.labels(pool.name, b.name).set(0 if b.state(now) == "up" else 1)
                if b.role is not None:
                    self.metrics.rate.labels(pool.name, b.name, b.role).set(b.rate_rps)
                    if b.planned_rps is not None:
                        self.metrics.planned_rate.labels(pool.name, b.name, b.role).set(b.planned_rps)
