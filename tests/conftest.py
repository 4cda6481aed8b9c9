"""Fixtures: real PostgreSQL, SMTP and HTTP servers on free loopback ports, and the app itself."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from media.ice import IceSettings, install_host_addresses, installed_host_addresses
from rooms.clock import Clock, utc_now
from rooms.database import open_engine
from rooms.migrations import migrate
from signalling.media_port import MediaPort
from tests.support.ports import free_port
from tests.support.postgres import create_database, postgres_server
from tests.support.s3_servers import MotoServer, NanioServer, S3Server, running
from tests.support.sms_gateway import GatewayState, start_gateway
from tests.support.smtp import SmtpServer
from tests.support.world import Api
from web.app import create_app
from web.settings import Settings


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A moto S3 server for the session (broad S3 semantics; it checks no signature)."""
    with running(MotoServer(tmp_path_factory.mktemp("moto"))) as server:
        yield server


@pytest.fixture(scope="session")
def nanio_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A nanio S3 server for the session: it verifies SigV4 signatures and presigned URLs."""
    with running(NanioServer(tmp_path_factory.mktemp("nanio"))) as server:
        yield server


async def database_url(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'claimcam.db'}"
    server = request.getfixturevalue("pg_server")
    return await create_database(server, f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A migrated, empty database on SQLite and on PostgreSQL: store tests run on both."""
    eng = open_engine(await database_url(request.param, tmp_path, request))
    await migrate(eng)
    yield eng
    await eng.dispose()


def test_settings(tmp_path: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": str(tmp_path / "var"),
        "secret": "test-instance-secret",
        "delivery_first_retry_s": 0.05,
        "expiry_sweep_s": 3600.0,
        # A claimant's lost connection ends the call at once, unless a test is about reconnecting.
        "reconnect_grace_s": 0.0,
    }
    base.update(overrides)
    return Settings(**base).resolved()


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[MakeApi]:
    """Start the real app on a free port of `bind`; `seed=True` puts the test world in through the platform API."""
    clients: list[TestClient[Any, Any]] = []

    async def start(
        *, seed: bool = True, clock: Clock = utc_now, media: MediaPort | None = None, bind: str = "127.0.0.1",
        shutdown_timeout: float = 60.0, **overrides: Any,
    ) -> Api:
        settings = test_settings(tmp_path / f"app{len(clients)}", **overrides)
        app = create_app(settings, clock=clock, media=media)
        server = TestServer(app, host=bind)
        # How long a stop waits for requests still running (websockets included) before cancelling them.
        await server.start_server(shutdown_timeout=shutdown_timeout)
        client: TestClient[Any, Any] = TestClient(server)
        await client.start_server()
        clients.append(client)
        api = Api(client, settings)
        if seed:
            await api.seed()
        return api

    yield start
    for client in reversed(clients):
        await client.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def sms_gateway() -> AsyncIterator[tuple[str, GatewayState]]:
    state = GatewayState()
    server = await start_gateway(state)
    yield str(server.make_url("/messages")), state
    await server.close()


@pytest.fixture
def loopback_ice() -> Iterator[IceSettings]:
    """Peers of this process gather on 127.0.0.1 only (aioice skips loopback otherwise)."""
    before = installed_host_addresses()
    loopback = IceSettings(host_addresses=("127.0.0.1",))
    install_host_addresses(loopback.host_addresses)
    yield loopback
    install_host_addresses(before)
