"""Prometheus metrics, in a registry of the app's own (no module-level state)."""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BUCKET_NAMES = [floatToGoString(b) for b in _LATENCY_BUCKETS] + ["+Inf"]
_REQUESTS, _TOKENS_IN, _TOKENS_OUT, _COST, _SECONDS, _BUCKETS = range(6)


class Answered:
    """Requests, tokens, cost and latency of finished requests, as plain numbers per series.

    Every request adds to these (five Prometheus series: requests, tokens in and out, cost,
    latency); kept as one list of floats per (model, backend, status, provider), they cost
    one dict lookup and a few additions per request instead of five locked Prometheus
    updates, and become Prometheus families only when ``/metrics`` is read (in the event
    loop's thread, like every update).  The exposition is the one ``Counter`` and
    ``Histogram`` give: same names, help, labels, ``_created`` series.
    """

    def __init__(self) -> None:
        self.series: dict[tuple[str, str, int, str], list[float]] = {}
        self.created: dict[tuple[str, ...], float] = {}  # first seen, per exported label set

    def add(
        self,
        model: str,
        backend: str,
        status: int,
        provider: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
        seconds: float,
    ) -> None:
        """Count one finished request."""
        key = (model, backend, status, provider)
        row = self.series.get(key)
        if row is None:
            row = self.series[key] = [0.0] * (_BUCKETS + len(_BUCKET_NAMES))
            self._first_seen(model, backend, str(status), provider)
        row[_REQUESTS] += 1
        row[_TOKENS_IN] += tokens_in
        row[_TOKENS_OUT] += tokens_out
        row[_COST] += cost_usd
        row[_SECONDS] += seconds
        row[_BUCKETS + bisect_left(_LATENCY_BUCKETS, seconds)] += 1  # first bucket with bound >= seconds

    def _first_seen(self, model: str, backend: str, status: str, provider: str) -> None:
        now = time.time()
        for labels in (
            ("requests", model, backend, status),
            ("tokens", model, backend, "in"),
            ("tokens", model, backend, "out"),
            ("cost", model, backend, provider),
            ("latency", model, backend),
        ):
            self.created.setdefault(labels, now)

    def collect(self) -> Iterator[Metric]:
        """The five families, summed per exported label set (a prometheus_client collector)."""
        requests: dict[tuple[str, ...], float] = {}
        tokens: dict[tuple[str, ...], float] = {}
        cost: dict[tuple[str, ...], float] = {}
        latency: dict[tuple[str, ...], list[float]] = {}
        for (model, backend, status, provider), row in self.series.items():
            for into, labels, value in (
                (requests, (model, backend, str(status)), row[_REQUESTS]),
                (tokens, (model, backend, "in"), row[_TOKENS_IN]),
                (tokens, (model, backend, "out"), row[_TOKENS_OUT]),
                (cost, (model, backend, provider), row[_COST]),
            ):
                into[labels] = into.get(labels, 0.0) + value
            summed = latency.setdefault((model, backend), [0.0] * (len(_BUCKET_NAMES) + 1))
            for i, value in enumerate(row[_SECONDS:]):
                summed[i] += value
        for name, doc, names, values in (
            (
                "requests",
                "Requests answered, by model, backend and status",
                ("model", "backend", "status"),
                requests,
            ),
            ("tokens", "Tokens reported by upstreams", ("model", "backend", "direction"), tokens),
            ("cost", "USD spent, tokens x backend prices", ("model", "backend", "provider"), cost),
        ):
            family = CounterMetricFamily(
                f"polyfleet_{name}_usd" if name == "cost" else f"polyfleet_{name}", doc, labels=names
            )
            for labels, value in values.items():
                family.add_metric(labels, value, created=self.created.get((name, *labels)))
            yield family
        family = HistogramMetricFamily(
            "polyfleet_request_seconds", "Time to the full answer", labels=("model", "backend")
        )
        for labels, (seconds, *counts) in latency.items():
            cumulative, buckets = 0.0, []
            for bound, count in zip(_BUCKET_NAMES, counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, seconds)
            created = self.created.get(("latency", *labels))
            if created is not None:
                family.samples.append(
                    Sample(
                        "polyfleet_request_seconds_created",
                        {"model": labels[0], "backend": labels[1]},
                        created,
                    )
                )
        yield family


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
        self.answered = Answered()  # requests, tokens, cost, latency
        r.register(self.answered)
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
