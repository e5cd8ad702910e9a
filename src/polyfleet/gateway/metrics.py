"""Prometheus metrics, in a registry of the app's own (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


def _counter(registry: CollectorRegistry, name: str, doc: str, *labels: str) -> Counter:
    """A counter ``polyfleet_<name>`` with ``labels``, in ``registry``."""
    return Counter(f"polyfleet_{name}", doc, labels, registry=registry)


def _gauge(registry: CollectorRegistry, name: str, doc: str, *labels: str) -> Gauge:
    """A gauge ``polyfleet_<name>`` with ``labels``, in ``registry``."""
    return Gauge(f"polyfleet_{name}", doc, labels, registry=registry)


class Metrics:
    """Requests, tokens, cost, latency, failovers, in-flight and breaker state per backend."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        m = ("model",)
        mb = ("model", "backend")
        self.requests = _counter(
            r, "requests", "Requests answered, by model, backend and status", *mb, "status"
        )
        self.tokens = _counter(r, "tokens", "Tokens reported by upstreams", *mb, "direction")
        self.cost = _counter(r, "cost_usd", "USD spent, tokens x backend prices", *mb, "provider")
        self.latency = Histogram(
            "polyfleet_request_seconds", "Time to the full answer", mb, buckets=_LATENCY_BUCKETS, registry=r
        )
        self.failovers = _counter(
            r, "failovers", "Attempts that failed and moved on, by reason", *mb, "reason"
        )
        self.inflight = _gauge(r, "inflight", "Requests in flight per backend", "backend")
        self.breaker_open = _gauge(
            r, "backend_unavailable", "1 when a backend's breaker is open or Retry-After holds it", *mb
        )
        self.auth_failures = _counter(
            r,
            "upstream_auth_failures",
            "401/403 answers from a backend: its key is wrong or revoked (alert on this)",
            *mb,
        )
        self.stream_cuts = _counter(
            r, "stream_cuts", "Streams the upstream broke off, stalled or ran past total_s", *mb
        )
        self.disconnects = _counter(
            r, "client_disconnects", "Requests whose client went away before the end", *m
        )
        self.rate = _gauge(
            r, "backend_rate_rps", "Requests/s sent to a backend over the last second", *mb, "role"
        )
        self.planned_rate = _gauge(
            r, "backend_planned_rps", "The plan's requests/s for a backend", *mb, "role"
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
