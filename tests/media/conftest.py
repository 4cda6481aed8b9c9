from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from media.ice import IceSettings
from media.plane import MediaPlane
from tests.support.rtc_bots import Bot


@pytest.fixture
async def plane(loopback_ice: IceSettings) -> AsyncIterator[MediaPlane]:
    p = MediaPlane(loopback_ice)
    yield p
    await p.close()


@pytest.fixture
async def bots() -> AsyncIterator[Callable[[Bot], Bot]]:
    """`keep(bot)`: the bot is closed after the test."""
    made: list[Bot] = []

    def keep(bot: Bot) -> Bot:
        made.append(bot)
        return bot

    yield keep
    for bot in made:
        await bot.close()
