"""Per-backend admission: requests/min and tokens/min buckets, and the circuit breaker.

Time is passed in (``now``, monotonic seconds), so every rule is tested without sleeping.
"""

from __future__ import annotations

from enum import StrEnum


class TokenBucket:
    """A budget of ``per_minute`` units refilled continuously; may go negative after a correction."""

    def __init__(self, per_minute: float, now: float):
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.level = per_minute
        self.stamp = now
        self.spent = 0.0  # this process's use so far, net of corrections (shared between replicas)

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def allows(self, now: float, amount: float) -> bool:
        """Whether ``amount`` fits now (a request larger than the whole budget needs a full one)."""
        self._refill(now)
        return self.level >= min(amount, self.capacity)

    def take(self, amount: float) -> None:
        """Spend ``amount`` (after ``allows``)."""
        self.level -= amount
        self.spent += amount

    def correct(self, delta: float) -> None:
        """Give back (positive) or charge (negative) the difference from an estimate."""
        self.level = min(self.capacity, self.level + delta)
        self.spent -= delta

    def charge_others(self, now: float, amount: float) -> None:
        """Spend what other replicas used (not counted in ``spent``)."""
        self._refill(now)
        self.level -= amount


class BreakerState(StrEnum):
    """Circuit breaker states, as in the usual pattern."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Open after ``threshold`` failures in a row; after ``cooldown_s`` let one probe through.

    A successful probe closes the breaker; a failed one opens it for another cooldown.
    """

    def __init__(self, threshold: int, cooldown_s: float):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probing = False

    def allows(self, now: float) -> bool:
        """Whether a request may be sent now (does not consume the half-open probe)."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < self.cooldown_s:
                return False
            self.state = BreakerState.HALF_OPEN
            self.probing = False
        return not self.probing

    def on_send(self) -> None:
        """A request was sent: in half-open state it is the one probe."""
        if self.state is BreakerState.HALF_OPEN:
            self.probing = True

    def open_for(self, now: float, seconds: float) -> None:
        """Open now for ``seconds`` (another replica saw this backend fail)."""
        self.state = BreakerState.OPEN
        self.opened_at = now - self.cooldown_s + seconds
        self.probing = False

    def on_success(self) -> None:
        """The backend answered: close."""
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.probing = False

    def on_failure(self, now: float) -> None:
        """The backend failed: count, and open at the threshold or when a probe fails."""
        self.failures += 1
        if self.state is BreakerState.HALF_OPEN or self.failures >= self.threshold:
            self.state = BreakerState.OPEN
            self.opened_at = now
            self.probing = False


class RateMeter:
    """Requests per second over the last ``window_s``, from two fixed windows blended by overlap.

    The usual sliding-window-counter approximation: O(1) per event, no timestamps kept.
    """

    def __init__(self, window_s: float = 1.0):
        self.window_s = window_s
        self.start = 0.0
        self.current = 0
        self.previous = 0

    def _roll(self, now: float) -> None:
        if now - self.start >= self.window_s:
            windows = int((now - self.start) // self.window_s)
            self.previous = self.current if windows == 1 else 0
            self.current = 0
            self.start += windows * self.window_s

    def add(self, now: float) -> None:
        """Count one event at ``now``."""
        self._roll(now)
        self.current += 1

    def rate(self, now: float) -> float:
        """Events per second over the window that ends at ``now``."""
        self._roll(now)
        overlap = 1.0 - (now - self.start) / self.window_s
        return (self.previous * overlap + self.current) / self.window_s
