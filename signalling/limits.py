"""Rate limits per socket: token buckets, which pass a steady rate and absorb arrival jitter."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, now: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._now = now
        self._tokens = burst
        self._at = now()

    def available(self) -> float:
        """Tokens there now (refilled up to the burst)."""
        t = self._now()
        self._tokens = min(self._burst, self._tokens + (t - self._at) * self._rate)
        self._at = t
        return self._tokens

    def take(self) -> bool:
        if self.available() >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FailureLimiter:
    """Per-client budget of failures (e.g. unknown link tokens): each failure spends a token, and a
    client without tokens is refused until they refill. Successes cost nothing, so a claimant who
    mistypes nothing never notices it. Clients are forgotten oldest first beyond `max_clients`,
    which bounds the memory an attacker with many addresses can make it use."""

    def __init__(
        self, per_minute: float = 10.0, burst: float = 20.0, max_clients: int = 10_000,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = per_minute / 60.0
        self._burst = burst
        self._max = max_clients
        self._now = now
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, client: str) -> TokenBucket:
        bucket = self._buckets.get(client)
        if bucket is None:
            bucket = self._buckets[client] = TokenBucket(self._rate, self._burst, self._now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        self._buckets.move_to_end(client)
        return bucket

    def blocked(self, client: str) -> bool:
        bucket = self._buckets.get(client)
        return bucket is not None and bucket.available() < 1.0

    def failed(self, client: str) -> None:
        self._bucket(client).take()

    def retry_after_s(self, client: str) -> int:
        bucket = self._buckets.get(client)
        if bucket is None:
            return 0
        return max(1, math.ceil((1.0 - bucket.available()) / self._rate))
