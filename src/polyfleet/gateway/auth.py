"""Gateway keys and daily budgets.

Keys are looked up by the SHA-256 of the presented secret, so the routes file and memory
hold hashes only.  Spend per key and UTC day is kept here, seeded from the ledger at
start so a restart does not reset a budget.

Budgets hold under concurrency: before a request is sent, its maximum cost (input tokens
x input price + max_tokens x output price, at the dearest backend that may serve it) is
reserved; a request whose reservation does not fit in what is left of the budget (spent
plus reserved by requests in flight) is refused; when it ends, the reservation is
released and the actual cost charged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from polyfleet.gateway.config import Key
from polyfleet.gateway.errors import GatewayError

OPEN = Key(name="open", key_sha256="0" * 64)


def hash_key(secret: str) -> str:
    """The hex SHA-256 the routes file stores for ``secret``."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def budget_refusal(key: Key, day: str, spent: float, held: float, usd: float) -> GatewayError:
    """The 429 for a request whose maximum cost does not fit in what is left of the key's budget."""
    return GatewayError(
        f"key {key.name!r}: budget_usd_per_day ${key.budget_usd_per_day:g} for {day} (UTC) has "
        f"${spent:.6g} spent and ${held:.6g} held by requests in flight; this request may cost up to "
        f"${usd:.6g}",
        status=429,
        type="insufficient_quota",
        code="budget_exceeded",
        headers=((b"x-should-retry", b"false"),),
    )


class Keys:
    """Authenticates requests and enforces per-key models and daily budgets."""

    def __init__(self, keys: Iterable[Key] | None):
        self.enabled = keys is not None
        self._by_hash = {k.key_sha256.lower(): k for k in keys or ()}
        self.spent: dict[tuple[str, str], float] = {}
        self.reserved: dict[tuple[str, str], float] = {}

    def authenticate(self, authorization: bytes | None, x_api_key: bytes | None) -> Key:
        """The key behind ``Authorization: Bearer …`` or ``x-api-key``; 401 when none matches."""
        if not self.enabled:
            return OPEN
        secret = x_api_key
        if authorization is not None and authorization[:7].lower() == b"bearer ":
            secret = authorization[7:].strip()
        # hashed on every request (about 1 us): the gateway keeps no client secret in memory
        key = self._by_hash.get(hashlib.sha256(secret).hexdigest()) if secret else None
        if key is None:
            raise GatewayError(
                "invalid or missing API key", status=401, type="invalid_request_error", code="invalid_api_key"
            )
        return key

    def admit(self, key: Key, model: str, day: str) -> None:
        """403 for a model the key may not use; 429 once today's spend reached the budget."""
        if key.models is not None and model not in key.models:
            raise GatewayError(
                f"key {key.name!r} may not use model {model!r}",
                status=403,
                type="invalid_request_error",
                code="model_not_allowed",
                param="model",
            )
        budget = key.budget_usd_per_day
        if budget is not None and self.spent.get((key.name, day), 0.0) >= budget:
            raise GatewayError(
                f"key {key.name!r} has spent its budget of ${budget:g} for {day} (UTC)",
                status=429,
                type="insufficient_quota",
                code="budget_exceeded",
                headers=((b"x-should-retry", b"false"),),
            )

    def reserve(self, key: Key, day: str, usd: float) -> float:
        """Hold ``usd`` of the key's budget for a request about to be sent; 429 when it does not fit.

        Returns what was reserved (0 for a key without a budget), to give to ``settle``.
        """
        budget = key.budget_usd_per_day
        if budget is None:
            return 0.0
        slot = (key.name, day)
        spent, held = self.spent.get(slot, 0.0), self.reserved.get(slot, 0.0)
        if spent + held + usd > budget + 1e-12:
            raise budget_refusal(key, day, spent, held, usd)
        self.reserved[slot] = held + usd
        return usd

    def settle(self, key: Key, day: str, reserved: float, usd: float) -> None:
        """Release a reservation and charge the request's actual cost."""
        slot = (key.name, day)
        if reserved:
            left = self.reserved.get(slot, 0.0) - reserved
            if left > 1e-12:
                self.reserved[slot] = left
            else:
                self.reserved.pop(slot, None)
        self.charge(key, day, usd)

    def charge(self, key: Key, day: str, usd: float) -> None:
        """Add a request's cost to the key's spend for ``day``."""
        if usd:
            self.spent[(key.name, day)] = self.spent.get((key.name, day), 0.0) + usd
