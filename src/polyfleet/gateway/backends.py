"""Backends at run time, and failover: try the policy's pick, move on when an attempt fails.

A backend is available when its breaker allows, no ``Retry-After`` holds it and it is
below its concurrency, requests/min and tokens/min limits.  An attempt that fails before
the client got a byte (connection error, timeout before the first byte, 429, 5xx, a 3xx,
a 401/403, a 2xx that is not the protocol) moves to the next available backend, up to
``max_attempts``.  Client errors (other 4xx) are answers, passed through untouched.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from polyfleet.gateway.config import Backend, ModelRoute, Routes
from polyfleet.gateway.errors import (
    GatewayError,
    UpstreamAuth,
    UpstreamError,
    UpstreamMalformed,
    UpstreamStatus,
    UpstreamTimeout,
)
from polyfleet.gateway.limits import BreakerState, CircuitBreaker, RateMeter, TokenBucket
from polyfleet.gateway.routing import Policy, make_policy
from polyfleet.gateway.transport import Timeouts, Transport, UpstreamResponse

log = logging.getLogger("polyfleet.gateway")

ANTHROPIC_VERSION = "2023-06-01"  # the Messages API's version, sent when the client sent none


class BackendState:
    """One backend's live state: in-flight count, limits, breaker and Retry-After hold."""

    def __init__(self, index: int, config: Backend, routes: Routes, environ: Mapping[str, str], now: float):
        self.index = index
        self.config = config
        self.name = config.name
        self.base_url = config.url.rstrip("/")
        self.inflight = 0
        self.hold_until = 0.0
        self.breaker = CircuitBreaker(routes.breaker.failures, routes.breaker.cooldown_s)
        self.rpm = (
            TokenBucket(config.max_requests_per_minute, now) if config.max_requests_per_minute else None
        )
        self.tpm = TokenBucket(config.max_tokens_per_minute, now) if config.max_tokens_per_minute else None
        self.headers = _auth_headers(config, environ)
        self.notify: Callable[[BackendState, str, float], None] | None = None  # set by SharedState
        own, default = config.timeouts, routes.timeouts
        self.inter_chunk_s = (own and own.inter_chunk_s) or default.inter_chunk_s
        self.timeout = Timeouts(
            connect_s=(own and own.connect_s) or default.connect_s,
            first_byte_s=(own and own.first_byte_s) or default.first_byte_s,
            total_s=(own and own.total_s) or default.total_s,
        )
        self.probe_url = self.base_url + (config.probe_path or routes.probe.path)
        self.meter = RateMeter()
        self.auth_failures = 0

    @property
    def role(self) -> str | None:
        return self.config.role

    @property
    def planned_rps(self) -> float | None:
        return self.config.planned_requests_per_s

    @property
    def rate_rps(self) -> float:
        return self.meter.rate(time.monotonic())

    def on_failure(self, exc: UpstreamError, now: float) -> None:
        """Hold for a Retry-After; count towards the breaker (not a 429); tell other replicas.

        A 401/403 opens the breaker at once: the backend will refuse every request until
        someone fixes its key, and only the health probe may close it again.
        """
        if isinstance(exc, UpstreamAuth):
            self.auth_failures += 1
            log.warning(
                "polyfleet: backend %s refused the gateway's credentials (%s): marked unhealthy",
                self.name,
                exc.upstream_status,
            )
            before = self.breaker.state
            self.breaker.open_for(now, self.breaker.cooldown_s)
            if self.notify is not None and before is not BreakerState.OPEN:
                self.notify(self, "open", self.breaker.cooldown_s)
            return
        if isinstance(exc, UpstreamStatus) and exc.retry_after is not None:
            self.hold_until = max(self.hold_until, now + exc.retry_after)
            if self.notify is not None:
                self.notify(self, "hold", exc.retry_after)
        if isinstance(exc, UpstreamStatus) and exc.status == 429:
            return
        before = self.breaker.state
        self.breaker.on_failure(now)
        if (
            self.notify is not None
            and self.breaker.state is BreakerState.OPEN
            and before is not BreakerState.OPEN
        ):
            self.notify(self, "open", self.breaker.cooldown_s)

    def apply_remote(self, kind: str, seconds: float, now: float) -> None:
        """What another replica saw: a Retry-After hold or an opened breaker, for ``seconds`` from now."""
        if kind == "hold":
            self.hold_until = max(self.hold_until, now + seconds)
        elif kind == "open" and self.breaker.state is not BreakerState.OPEN:
            self.breaker.open_for(now, seconds)

    @property
    def weight(self) -> float:
        return self.config.weight

    @property
    def price(self) -> float:
        return self.config.usd_per_mtok_in + self.config.usd_per_mtok_out

    @property
    def load(self) -> float:
        return self.inflight / (self.config.max_concurrency or 1_000_000)

    def available(self, now: float, tokens: int) -> bool:
        """Whether this backend may take a request of ``tokens`` estimated tokens now."""
        if now < self.hold_until or not self.breaker.allows(now):
            return False
        if self.config.max_concurrency is not None and self.inflight >= self.config.max_concurrency:
            return False
        if self.rpm is not None and not self.rpm.allows(now, 1):
            return False
        return self.tpm is None or self.tpm.allows(now, tokens)

    def acquire(self, tokens: int) -> None:
        """Count a request against the limits as it is sent."""
        self.inflight += 1
        self.meter.add(time.monotonic())
        self.breaker.on_send()
        if self.rpm is not None:
            self.rpm.take(1)
        if self.tpm is not None:
            self.tpm.take(tokens)

    def release(self, estimated: int, actual: int | None) -> None:
        """The request is over; correct the tokens/min bucket from the reported usage."""
        self.inflight -= 1
        if self.tpm is not None and actual is not None:
            self.tpm.correct(estimated - actual)

    def wait_s(self, now: float, probe_s: float) -> float:
        """Seconds until this backend may take requests again, as far as we know: the end of a
        Retry-After hold, or of an open breaker's cooldown or its next probe (0: now)."""
        wait = self.hold_until - now
        if self.breaker.state is BreakerState.OPEN:
            cooldown = self.breaker.opened_at + self.breaker.cooldown_s - now
            wait = max(wait, min(cooldown, probe_s))
        return max(wait, 0.0)

    def state(self, now: float) -> str:
        """``up``, ``held`` (Retry-After) or the breaker state, for /healthz."""
        if now < self.hold_until:
            return "held"
        return "up" if self.breaker.state == "closed" else str(self.breaker.state)


def _auth_headers(config: Backend, environ: Mapping[str, str]) -> dict[str, str]:
    """The headers every request to this backend carries: its key, and for ``anthropic`` an
    ``anthropic-version`` (the API refuses requests without one, the health probe included;
    a client's own ``anthropic-version`` replaces it)."""
    headers = {"content-type": "application/json"}
    if config.api == "anthropic":
        headers["anthropic-version"] = ANTHROPIC_VERSION
    secret = environ.get(config.api_key_env, "") if config.api_key_env else ""
    if secret and config.api == "anthropic":
        headers["x-api-key"] = secret
    elif secret:
        headers["authorization"] = f"Bearer {secret}"
    return headers


class Pool:
    """A model's backends and its routing policy."""

    def __init__(self, route: ModelRoute, routes: Routes, environ: Mapping[str, str]):
        now = time.monotonic()
        self.route = route
        self.name = route.name
        self.backends = [BackendState(i, b, routes, environ, now) for i, b in enumerate(route.backends)]
        self.policy: Policy = make_policy(route.policy, len(self.backends))
        self.apis = {b.api for b in route.backends}

    def max_cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """The most a request of these tokens may cost here: at the dearest backend."""
        return max(b.config.cost_usd(tokens_in, tokens_out) for b in self.backends)

    def pick(self, apis: Container[str], tokens: int, tried: set[int]) -> BackendState | None:
        """The policy's choice among available backends speaking one of ``apis``, not yet tried."""
        now = time.monotonic()
        eligible = [
            b
            for b in self.backends
            if b.index not in tried and b.config.api in apis and b.available(now, tokens)
        ]
        if not eligible:
            return None
        choice = self.policy.pick(eligible)
        assert isinstance(choice, BackendState)
        return choice


@dataclass(slots=True)
class Opened:
    """A backend that answered: the response (headers in), and for streams the first chunk."""

    backend: BackendState
    response: UpstreamResponse
    body: bytes  # whole body, or the first chunk of a stream
    attempts: int
    parsed: dict[str, Any] | None = None  # the whole body, parsed (2xx, not streamed)


def retry_after_s(headers: Mapping[str, str], cap: float, now_epoch: float | None = None) -> float | None:
    """``Retry-After`` in seconds from now, capped: delta-seconds or an HTTP date (RFC 9110)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
        if not math.isfinite(seconds):  # "nan", "inf": not delta-seconds (a NaN hold broke the 429)
            return None
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:  # an HTTP date is GMT by definition
            return None
        seconds = when.timestamp() - (time.time() if now_epoch is None else now_epoch)
    return min(max(seconds, 0.0), cap)


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


_SSE_STARTS = (b"data:", b"event:", b":", b"id:", b"retry:", b"\n", b"\r")
_SSE_EVENT = (b"data:", b"event:")  # what only an event stream starts with

# what a 2xx answer of each endpoint must hold: the list the SDKs read
_ANSWER_LIST = {
    "/chat/completions": "choices",
    "/completions": "choices",
    "/embeddings": "data",
    "/messages": "content",
}


def _first_event_is_error(first: bytes) -> bool:
    """Whether a stream opens with an error event (``data: {"error": ...}``, or Anthropic's
    ``event: error``) instead of its first answer event: parsed only when it says "error"."""
    if b'"error"' not in first:
        return False
    for line in first.split(b"\n"):
        line = line.strip()
        if line.startswith(b"data:"):
            event = _json_object(line[5:])
            # an error object, not a chunk with "error": null (some servers send one on every chunk)
            return event is not None and bool(event.get("error")) and event.get("type", "error") == "error"
    return False


def _check_protocol(
    response: UpstreamResponse, stream: bool, first: bytes, path: str
) -> dict[str, Any] | None:
    """A 2xx must be the protocol: the endpoint's JSON object (returned, parsed), or for a
    stream an event stream that does not open with an error event."""
    if stream:
        kind = response.headers.get("content-type", "")
        start = first.lstrip(b" ")
        # an event stream, said by its content type or (a server that labels it wrongly) by its first field
        if not start.startswith(_SSE_EVENT if "text/event-stream" not in kind else _SSE_STARTS):
            raise UpstreamMalformed(
                f"upstream answered 2xx with {kind or 'no content type'}, not an event stream"
            )
        if _first_event_is_error(first):
            raise UpstreamMalformed("upstream answered 2xx with a stream that opens with an error event")
        return None
    parsed = _json_object(first)
    if parsed is None:
        raise UpstreamMalformed("upstream answered 2xx with a body that is not a JSON object")
    field = _ANSWER_LIST.get(path)
    if field is not None and not isinstance(parsed.get(field), list):
        raise UpstreamMalformed(f"upstream answered 2xx with a JSON object without its {field!r} list")
    return parsed


async def open_upstream(
    pool: Pool,
    transport: Transport,
    *,
    apis: Container[str],
    body_for: Callable[[BackendState], tuple[str, bytes]],
    extra_headers: Mapping[str, str],
    stream: bool,
    tokens: int,
    routes: Routes,
    on_failover: Callable[[str, str], None],
) -> Opened:
    """Send to backends in policy order until one answers; raise ``GatewayError`` when none does.

    ``body_for(backend)`` gives the path (after the backend's base URL) and the body to send
    it; ``on_failover(backend, reason)`` hears of every failed attempt.
    """
    tried: set[int] = set()
    last: UpstreamError | None = None
    for attempt in range(1, routes.max_attempts + 1):
        backend = pool.pick(apis, tokens, tried)
        if backend is None:
            break
        tried.add(backend.index)
        path, body = body_for(backend)
        backend.acquire(tokens)
        headers = {**backend.headers, **extra_headers} if extra_headers else backend.headers
        try:
            response = await transport.post(backend.base_url + path, body, headers, backend.timeout)
            # 3xx too: the gateway follows no redirect, so one is a backend's misconfigured URL
            if response.status == 429 or response.status >= 500 or 300 <= response.status < 400:
                wait = retry_after_s(response.headers, routes.max_retry_after_s)
                raise UpstreamStatus(response.status, await response.read(), wait)
            if response.status in (401, 403):
                await response.read()  # dropped: an upstream's error body may echo its key
                raise UpstreamAuth(response.status)
            if stream and response.status < 300:
                first = await response.first_chunk(backend.inter_chunk_s)
            else:
                first = await response.read()
            parsed = None
            if response.status < 300:
                try:
                    parsed = _check_protocol(response, stream, first, path)
                except UpstreamMalformed:
                    response.close()
                    raise
        except asyncio.CancelledError:  # the client left (or a forced shutdown): free the slot
            backend.release(tokens, None)
            raise
        except UpstreamError as exc:
            backend.release(tokens, None)
            backend.on_failure(exc, time.monotonic())
            if isinstance(exc, UpstreamStatus):
                reason = str(exc.status)
            elif isinstance(exc, UpstreamAuth):
                reason = f"auth-{exc.upstream_status}"
            else:
                reason = type(exc).__name__
            on_failover(backend.name, reason)
            last = exc
            continue
        backend.breaker.on_success()
        return Opened(backend, response, first, attempt, parsed)
    raise _exhausted(pool, last, tried, routes.probe.interval_s)


def _exhausted(pool: Pool, last: UpstreamError | None, tried: set[int], probe_s: float) -> GatewayError:
    """The client's answer when no backend answered: 503 (none available, with the wait until
    one may be, as Retry-After), 429 (all rate limited), 502, or 504 after a timeout."""
    if last is None:
        now = time.monotonic()
        waits = [b.wait_s(now, probe_s) for b in pool.backends]
        waits = [w for w in waits if w > 0]
        headers = ((b"retry-after", str(max(1, round(min(waits)))).encode()),) if waits else ()
        return GatewayError(
            f"no backend of model {pool.name!r} is available (all at capacity, cooling down or failing)",
            status=503,
            type="server_error",
            code="no_backend_available",
            headers=headers,
        )
    if isinstance(last, UpstreamStatus) and last.status == 429:
        headers = ((b"retry-after", str(max(1, round(last.retry_after or 1))).encode()),)
        return GatewayError(
            f"every backend of model {pool.name!r} tried ({len(tried)}) is rate limited",
            status=429,
            type="rate_limit_exceeded",
            code="rate_limit_exceeded",
            headers=headers,
        )
    headers = ()
    if isinstance(last, UpstreamAuth):
        last = UpstreamError("a backend refused the gateway's credentials (see the gateway's log)")
        now = time.monotonic()
        if not any(b.available(now, 0) for b in pool.backends):  # a retry would only get a 503
            headers = ((b"x-should-retry", b"false"),)
    return GatewayError(
        f"every backend of model {pool.name!r} tried ({len(tried)}) failed; last: {last}",
        status=504 if isinstance(last, UpstreamTimeout) else 502,
        type="server_error",
        code="upstream_error",
        headers=headers,
    )
