"""Rate limits per socket: token buckets, which pass a steady rate and absorb arrival jitter."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate_per_s: float, burst: float, now: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate_per_s
        self._burst = burst
        self._now = now
        self._tokens = burst
        self._at = now()

    def take(self) -> bool:
        t = self._now()
        self._tokens = min(self._burst, self._tokens + (t - self._at) * self._rate)
        self._at = t
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
