"""Daily key budgets shared by gateway replicas through Redis (``state: redis://…``).

A replica alone reserves and settles budgets in memory (``auth.Keys``).  Replicas on one
Redis would each see only their own requests, so N of them could spend N budgets.  With
``state: redis://…`` a key's spend and the reservations in flight for a UTC day live in
one Redis hash, ``{prefix}:budget:{key}:{day}`` (fields ``spent`` and ``held``, expiring
three days after its last change), and two Lua scripts change it atomically:

- ``reserve``: refuse when ``spent + held + the request's maximum cost`` passes the
  budget, else add the maximum cost to ``held`` (before the request is sent);
- ``settle``: take the reservation out of ``held`` and add the actual cost to ``spent``
  (after it ended; off the request path).

So the replicas together never commit more than the budget.  A reservation costs one
Redis round trip on the request path, for keys with a budget only.  When Redis cannot be
reached, a request of a key with a budget gets ``503 budget_store_unavailable`` (the
budget cannot be checked, so nothing is spent); keys without a budget are unaffected.
At start each replica raises the shared ``spent`` to at least what its own ledger holds
for today (one shared PostgreSQL ledger gives the exact total).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from polyfleet.gateway.auth import Keys, budget_refusal
from polyfleet.gateway.config import Key
from polyfleet.gateway.errors import GatewayError

log = logging.getLogger("polyfleet.gateway")

TTL_S = 3 * 86400

_RESERVE = """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
if spent + held + tonumber(ARGV[1]) > tonumber(ARGV[2]) + 1e-12 then
  return {0, tostring(spent), tostring(held)}
end
redis.call('HINCRBYFLOAT', KEYS[1], 'held', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {1, tostring(spent), tostring(held)}
"""

_SETTLE = """
local held = tonumber(redis.call('HINCRBYFLOAT', KEYS[1], 'held', ARGV[1]))
if held < 1e-12 then redis.call('HSET', KEYS[1], 'held', '0') end
local spent = redis.call('HINCRBYFLOAT', KEYS[1], 'spent', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return spent
"""

_SEED = """
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
if tonumber(ARGV[1]) > spent then
  redis.call('HSET', KEYS[1], 'spent', ARGV[1])
  spent = tonumber(ARGV[1])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return tostring(spent)
"""


class SharedBudgets:
    """Reserve-and-settle of key budgets in Redis, atomic across replicas.

    ``keys.spent`` is kept as this replica's view of the shared spend (refreshed by every
    reservation and settlement), so ``Keys.admit`` refuses a spent key without a round trip.
    """

    def __init__(self, keys: Keys, redis: Any, prefix: str = "polyfleet"):
        self.keys = keys
        self.prefix = prefix
        self._redis = redis
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._seed = redis.register_script(_SEED)
        self._settling: set[asyncio.Task[None]] = set()

    def _key(self, key: Key, day: str) -> str:
        return f"{self.prefix}:budget:{key.name}:{day}"

    async def seed(self, keys: list[Key], day: str) -> None:
        """Raise the shared spend of today to at least what this replica's ledger holds."""
        for key in keys:
            if key.budget_usd_per_day is None:
                continue
            slot = (key.name, day)
            spent = await self._seed(keys=[self._key(key, day)], args=[self.keys.spent.get(slot, 0.0), TTL_S])
            self.keys.spent[slot] = float(spent)

    async def reserve(self, key: Key, day: str, usd: float) -> float:
        """Hold ``usd`` of the key's budget in Redis; 429 naming the budget when it does not fit."""
        import redis

        budget = key.budget_usd_per_day
        if budget is None:
            return 0.0
        try:
            ok, spent, held = await self._reserve(keys=[self._key(key, day)], args=[usd, budget, TTL_S])
        except (redis.RedisError, OSError) as exc:
            log.warning("polyfleet: budget store unavailable, refusing key %s: %s", key.name, exc)
            raise GatewayError(
                f"key {key.name!r}: budget_usd_per_day cannot be checked (the shared state store is "
                "unavailable); retry shortly",
                status=503,
                type="server_error",
                code="budget_store_unavailable",
            ) from None
        self.keys.spent[(key.name, day)] = float(spent)
        if not ok:
            raise budget_refusal(key, day, float(spent), float(held), usd)
        return usd

    def settle(self, key: Key, day: str, reserved: float, usd: float) -> None:
        """Release the reservation and charge the actual cost, in Redis, off the request path."""
        if not reserved and not usd:
            return
        task = asyncio.create_task(self._settle_now(key, day, reserved, usd))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle_now(self, key: Key, day: str, reserved: float, usd: float) -> None:
        import redis

        try:
            spent = await self._settle(keys=[self._key(key, day)], args=[-reserved, usd, TTL_S])
        except (redis.RedisError, OSError) as exc:  # the reservation stays held until the day's key expires
            log.warning("polyfleet: could not settle key %s's budget in the shared store: %s", key.name, exc)
            self.keys.charge(key, day, usd)
            return
        self.keys.spent[(key.name, day)] = float(spent)

    async def drain(self) -> None:
        """Wait for settlements still going to Redis (at shutdown)."""
        if self._settling:
            await asyncio.wait(set(self._settling), timeout=10)
