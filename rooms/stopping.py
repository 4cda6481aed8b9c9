"""Stopping background loops between steps, never in the middle of one.

Cancelling a task while it waits on the database can leave the connection's transaction open
(SQLite keeps its write lock until that connection is gone), and every later writer then waits out
its busy timeout. Loops watch a StopSignal instead and exit after the step in progress.
"""

from __future__ import annotations

import asyncio
import contextlib


class StopSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    @property
    def stopped(self) -> bool:
        return self._event.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Wait `seconds`, or less when stopped; True when the loop should end."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)
        return self._event.is_set()


async def finish(tasks: list[asyncio.Task[None]], timeout_s: float = 10.0) -> None:
    """Let signalled tasks end on their own; cancel only those still running after the timeout."""
    if not tasks:
        return
    _, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
