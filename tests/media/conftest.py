from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from media.ice import IceSettings, install_host_addresses, installed_host_addresses
from media.plane import MediaPlane

LOOPBACK = IceSettings(host_addresses=("127.0.0.1",))


@pytest.fixture
def loopback_ice() -> Iterator[IceSettings]:
    """Peers of this process gather on 127.0.0.1 only (aioice skips loopback otherwise)."""
    before = installed_host_addresses()
    install_host_addresses(LOOPBACK.host_addresses)
    yield LOOPBACK
    install_host_addresses(before)


@pytest.fixture
async def plane(loopback_ice: IceSettings) -> AsyncIterator[MediaPlane]:
    p = MediaPlane(loopback_ice)
    yield p
    await p.close()
