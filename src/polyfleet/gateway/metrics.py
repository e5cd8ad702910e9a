"""Prometheus metrics, in a registry of the app's own (no module-level state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    """Requests, tokens, cost, latency, failovers, in-flight and breaker state per backend."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "polyfleet_requests",
            "Requests answered, by model, backend and status",
            ["model", "backend", "status"],
            registry=r,
        )
        self.tokens = Counter(
            "polyfleet_tokens", "Tokens reported by upstreams", ["model", "backend", "direction"], registry=r
        )
        self.cost = Counter(
            "polyfleet_cost_usd",
            "USD spent, tokens x backend prices",
            ["model", "backend", "provider"],
            registry=r,
        )
        self.latency = Histogram(
            "polyfleet_request_seconds",
            "Time to the full answer",
            ["model", "backend"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "polyfleet_failovers",
            "Attempts that failed and moved on, by reason",
            ["model", "backend", "reason"],
            registry=r,
        )
        self.inflight = Gauge("polyfleet_inflight", "Requests in flight per backend", ["backend"], registry=r)
        self.breaker_open = Gauge(
            "polyfleet_backend_unavailable",
            "1 when a backend's breaker is open or Retry-After holds it",
            ["model", "backend"],
            registry=r,
        )

        self.auth_failures = Counter(
            "polyfleet_upstream_auth_failures",
            "401/403 answers from a backend: its key is wrong or revoked (alert on this)",
            ["model", "backend"],
            registry=r,
        )
        self.stream_cuts = Counter(
            "polyfleet_stream_cuts",
            "Streams the upstream broke off, stalled or ran past total_s",
            ["model", "backend"],
            registry=r,
        )
        self.disconnects = Counter(
            "polyfleet_client_disconnects",
            "Requests whose client went away before the end",
            ["model"],
            registry=r,
        )
        self.rate = Gauge(
            "polyfleet_backend_rate_rps",
            "Requests/s sent to a backend over the last second",
            ["model", "backend", "role"],
            registry=r,
        )
        self.planned_rate = Gauge(
            "polyfleet_backend_planned_rps",
            "The plan's requests/s for a backend",
            ["model", "backend", "role"],
            registry=r,
        )

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
