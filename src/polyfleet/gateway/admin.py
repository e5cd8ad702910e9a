"""The gateway's own endpoints: ``/v1/models``, ``/healthz`` and ``/metrics``.

With ``metrics_key_sha256`` (or ``metrics_key``) set, ``/metrics`` and the detail of ``/healthz`` need that
key; ``/healthz`` says ``degraded`` (still 200) when some model has no backend that may
take a request.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

import orjson

from polyfleet.gateway.auth import Keys
from polyfleet.gateway.backends import Pool
from polyfleet.gateway.config import Routes
from polyfleet.gateway.errors import GatewayError
from polyfleet.gateway.metrics import Metrics
from polyfleet.gateway.types import Scope, Send

JSON = b"application/json"


async def respond(
    send: Send, status: int, body: bytes, content_type: bytes = JSON, headers: tuple = ()
) -> None:
    """A whole response: status, content type and length, body."""
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


def _model(name: str) -> dict[str, object]:
    """A model as both SDKs read it: OpenAI's fields and Anthropic's (``type``, ``display_name``)."""
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": "polyfleet",
        "type": "model",
        "display_name": name,
        "created_at": "1970-01-01T00:00:00Z",
    }


async def models(keys: Keys, pools: Mapping[str, Pool], scope: Scope, send: Send, name: str | None) -> None:
    """``/v1/models``: the models the request's key may use; ``/v1/models/NAME``: one of them (404 else)."""
    headers = dict(scope["headers"])
    key = keys.authenticate(headers.get(b"authorization"), headers.get(b"x-api-key"))
    names = [n for n in pools if key.models is None or n in key.models]
    if name is not None:
        if name not in names:
            raise GatewayError(
                f"the model {name!r} does not exist",
                status=404,
                type="not_found_error",
                code="model_not_found",
                param="model",
            )
        await respond(send, 200, orjson.dumps(_model(name)))
        return
    data = [_model(n) for n in names]
    listing = {
        "object": "list",
        "data": data,
        "has_more": False,  # Anthropic's paging fields: one page holds them all
        "first_id": names[0] if names else None,
        "last_id": names[-1] if names else None,
    }
    await respond(send, 200, orjson.dumps(listing))


def may_see(routes: Routes, scope: Scope) -> bool:
    """Whether the request may see /metrics and /healthz detail (all may without a metrics key)."""
    wanted = routes.metrics_key_hash
    if wanted is None:
        return True
    headers = dict(scope["headers"])
    secret = headers.get(b"x-api-key")
    authorization = headers.get(b"authorization")
    if authorization is not None and authorization[:7].lower() == b"bearer ":
        secret = authorization[7:].strip()
    return secret is not None and hashlib.sha256(secret).hexdigest() == wanted


async def health(routes: Routes, pools: Mapping[str, Pool], scope: Scope, send: Send) -> None:
    """``ok``, or ``degraded`` when some model has no backend that may take a request now."""
    now = time.monotonic()
    states = {name: {b.name: b.state(now) for b in pool.backends} for name, pool in pools.items()}
    degraded = sorted(
        name for name, of in states.items() if not any(s in ("up", "half-open") for s in of.values())
    )
    status = "degraded" if degraded else "ok"
    if not may_see(routes, scope):
        await respond(send, 200, orjson.dumps({"status": status}))
        return
    plan = {
        name: {
            b.name: {"role": b.role, "planned_rps": b.planned_rps, "rate_rps": round(b.rate_rps, 3)}
            for b in pool.backends
        }
        for name, pool in pools.items()
        if any(b.role for b in pool.backends)
    }
    body = {"status": status, "models": states, "degraded": degraded, "plan": plan}
    await respond(send, 200, orjson.dumps(body))


async def metrics(
    routes: Routes, pools: Mapping[str, Pool], registry: Metrics, scope: Scope, send: Send
) -> None:
    """``/metrics`` in the Prometheus text format, backend gauges refreshed first."""
    if not may_see(routes, scope):
        raise GatewayError(
            "/metrics needs the metrics key", status=401, type="invalid_request_error", code="invalid_api_key"
        )
    now = time.monotonic()
    for pool in pools.values():
        for b in pool.backends:
            registry.inflight.labels(b.name).set(b.inflight)
            registry.breaker_open.labels(pool.name, b.name).set(0 if b.state(now) == "up" else 1)
            if b.role is not None:
                registry.rate.labels(pool.name, b.name, b.role).set(b.rate_rps)
                if b.planned_rps is not None:
                    registry.planned_rate.labels(pool.name, b.name, b.role).set(b.planned_rps)
    await respond(send, 200, registry.render(), b"text/plain; version=0.0.4; charset=utf-8")
