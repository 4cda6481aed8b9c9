"""The per-socket rate limits, on a fake clock."""

from __future__ import annotations

import random

from signalling.limits import FailureLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def passed(rate_hz: float, send_hz: float, jitter_s: float, seconds: float = 10.0) -> tuple[int, int]:
    clock = Clock()
    bucket = TokenBucket(rate_hz, 2.0, now=clock)
    rng = random.Random(7)
    sent = int(seconds * send_hz)
    arrivals = sorted(i / send_hz + rng.uniform(-jitter_s, jitter_s) for i in range(sent))
    ok = 0
    for at in arrivals:
        clock.t = max(clock.t, at)
        ok += bucket.take()
    return ok, sent


def test_cursor_moves_sent_at_30_hz_pass_despite_arrival_jitter() -> None:
    ok, sent = passed(30.0, 30.0, jitter_s=0.010)
    assert ok >= sent - 2, (ok, sent)  # a strict 33 ms interval let about two thirds through


def test_faster_senders_are_held_to_the_rate() -> None:
    ok, sent = passed(30.0, 120.0, jitter_s=0.002)
    assert sent == 1200 and 295 <= ok <= 305, ok


def test_a_burst_passes_two_then_waits_for_tokens() -> None:
    clock = Clock()
    bucket = TokenBucket(30.0, 2.0, now=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, False, False]
    clock.t += 1 / 30
    assert bucket.take() and not bucket.take()


def test_failures_spend_a_budget_that_refills_and_successes_cost_nothing() -> None:
    clock = Clock()
    guard = FailureLimiter(per_minute=10, burst=3, now=clock)
    assert not guard.blocked("1.2.3.4")
    for _ in range(3):
        guard.failed("1.2.3.4")
    assert guard.blocked("1.2.3.4") and not guard.blocked("5.6.7.8")
    assert guard.retry_after_s("1.2.3.4") == 6  # one token back at 10 a minute
    clock.t += 6.0
    assert not guard.blocked("1.2.3.4")


def test_the_guard_forgets_the_oldest_clients_beyond_its_bound() -> None:
    guard = FailureLimiter(per_minute=1, burst=1, max_clients=100, now=Clock())
    for i in range(1000):
        guard.failed(f"10.0.{i // 256}.{i % 256}")
    assert guard.blocked("10.0.3.231") and not guard.blocked("10.0.0.0")  # the newest kept, the oldest gone
    assert len(guard._buckets) == 100
