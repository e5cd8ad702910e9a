"""State shared between gateway replicas through Redis (``state: redis://…``).

The request path never waits on Redis.  Each replica keeps deciding from its own
in-memory state and, every ``interval_s``:

- publishes what it saw (a Retry-After hold, a breaker that opened) on a channel, and
  stores it as a key that expires when the hold or cooldown ends, so a replica that starts
  later finds it; the others apply it to their own copy of that backend;
- adds what it spent of each backend's requests/min and tokens/min to a counter in Redis
  and takes what the other replicas spent since the last sync out of its own bucket.

So replicas together stay within a backend's limits up to one interval's worth of
traffic, and a backend that fails for one replica is avoided by all within an interval.
Concurrency limits stay per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterable
from typing import Any

import orjson

from polyfleet.gateway.backends import BackendState, Pool

log = logging.getLogger("polyfleet.gateway")


class SharedState:
    """Syncs holds, breaker opens and rate-limit use of every backend with other replicas."""

    def __init__(
        self, url: str, pools: Iterable[Pool], *, interval_s: float = 0.1, prefix: str = "polyfleet"
    ):
        self.url = url
        self.interval_s = interval_s
        self.prefix = prefix
        self.channel = f"{prefix}:events"
        self.origin = uuid.uuid4().hex
        self.backends = {(pool.name, b.name): b for pool in pools for b in pool.backends}
        self._pool_of = {id(b): pool.name for pool in pools for b in pool.backends}
        self._events: list[tuple[str, str, str, float]] = []
        self._synced: dict[str, float] = {}  # counter key -> our spent at the last sync
        self._seen: dict[str, float] = {}  # counter key -> the shared total at the last sync
        self._redis: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Connect, load holds and opens still in force, subscribe, start syncing."""
        try:
            import redis.asyncio as aioredis
        except ImportError as exc:
            raise RuntimeError(
                "state: redis://… needs the redis package: pip install 'polyfleet[redis]'"
            ) from exc
        self._redis = aioredis.from_url(self.url)
        await self._redis.ping()
        now = time.monotonic()
        for (model, name), backend in self.backends.items():
            for kind, bucket in (("rpm", backend.rpm), ("tpm", backend.tpm)):
                if bucket is not None:  # what was spent before we started is not ours to charge
                    key = self._key(f"use-{kind}", model, name)
                    self._seen[key] = float(await self._redis.get(key) or 0)
            for kind in ("hold", "open"):
                ttl_ms = await self._redis.pttl(self._key(kind, model, name))
                if ttl_ms and ttl_ms > 0:
                    backend.apply_remote(kind, ttl_ms / 1000, now)
            backend.notify = self._tell
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self.channel)
        self._tasks = [
            asyncio.create_task(self._listen(pubsub), name="polyfleet-shared-listen"),
            asyncio.create_task(self._sync_forever(), name="polyfleet-shared-sync"),
        ]

    async def stop(self) -> None:
        """Send what is left and disconnect."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._redis is not None:
            import redis

            with contextlib.suppress(redis.RedisError, OSError):
                await self.sync()
            await self._redis.aclose()
            self._redis = None

    @property
    def redis(self) -> Any:
        """The Redis client (after ``start``), for other shared state such as key budgets."""
        return self._redis

    def _key(self, kind: str, model: str, backend: str) -> str:
        return f"{self.prefix}:{kind}:{model}:{backend}"

    def _tell(self, backend: BackendState, kind: str, seconds: float) -> None:
        self._events.append((self._pool_of[id(backend)], backend.name, kind, seconds))

    async def _sync_forever(self) -> None:
        import redis

        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.sync()
            except (redis.RedisError, OSError) as exc:  # keep serving on local state; retry next interval
                log.warning("polyfleet: shared state unavailable: %s", exc)

    async def sync(self) -> None:
        """Publish our events and exchange rate-limit use once."""
        events, self._events = self._events, []
        pipe = self._redis.pipeline(transaction=False)
        for model, name, kind, seconds in events:
            pipe.set(self._key(kind, model, name), b"1", px=max(1, int(seconds * 1000)))
            message = {
                "origin": self.origin,
                "model": model,
                "backend": name,
                "kind": kind,
                "seconds": seconds,
            }
            pipe.publish(self.channel, orjson.dumps(message))
        buckets = []
        for (model, name), backend in self.backends.items():
            for kind, bucket in (("rpm", backend.rpm), ("tpm", backend.tpm)):
                if bucket is None:
                    continue
                key = self._key(f"use-{kind}", model, name)
                delta = bucket.spent - self._synced.get(key, 0.0)
                self._synced[key] = bucket.spent
                pipe.incrbyfloat(key, delta)
                buckets.append((key, bucket, delta))
        if not events and not buckets:
            return
        results = await pipe.execute()
        now = time.monotonic()
        for (key, bucket, delta), total in zip(buckets, results[2 * len(events) :], strict=True):
            others = float(total) - self._seen.get(key, 0.0) - delta
            if others > 0:
                bucket.charge_others(now, others)
            self._seen[key] = float(total)

    async def _listen(self, pubsub: Any) -> None:
        import redis

        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except (redis.RedisError, OSError) as exc:
                log.warning("polyfleet: shared state unavailable: %s", exc)
                await asyncio.sleep(1.0)
                continue
            if message is None or message.get("type") != "message":
                continue
            event = orjson.loads(message["data"])
            backend = self.backends.get((event.get("model"), event.get("backend")))
            if event.get("origin") != self.origin and backend is not None:
                backend.apply_remote(event["kind"], float(event["seconds"]), time.monotonic())
