"""The keyframe-request limiter on its own, with a fake clock and the real event loop's timers."""

from __future__ import annotations

import asyncio

from media.fanout import KeyframeRequester


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


async def test_requests_inside_the_interval_become_one_trailing_request() -> None:
    clock = Clock()
    sent: list[float] = []
    keyframes = KeyframeRequester(lambda: sent.append(clock.t), min_interval_s=0.05, now=clock)
    assert keyframes.request() is True  # the first goes out at once
    clock.t += 0.01
    assert [keyframes.request() for _ in range(5)] == [False] * 5
    assert sent == [100.0]
    clock.t += 0.04
    await asyncio.sleep(0.08)  # the loop's timer: the interval has ended
    assert len(sent) == 2 and keyframes.sent == 2  # one trailing request for the five
    await asyncio.sleep(0.08)
    assert len(sent) == 2  # and nothing more without new requests


async def test_closing_cancels_a_waiting_request() -> None:
    sent: list[int] = []
    keyframes = KeyframeRequester(lambda: sent.append(1), min_interval_s=0.05)
    keyframes.request()
    keyframes.request()
    keyframes.close()
    await asyncio.sleep(0.08)
    assert sent == [1]
