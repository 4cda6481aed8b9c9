"""Relay-only aiortc peers connect through a real coturn with the credentials the API hands out.

aiortc reports no error when TURN refuses the credentials: the SDP simply has no candidates and ICE
stays `new`. So every test asserts on ` typ relay` in the SDP and waits with a bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnection
from aiortc.rtcdatachannel import RTCDataChannel

from tests.conftest import MakeApi
from tests.support.api_tools import claimant_token
from tests.support.coturn import Coturn, coturn_server
from tests.support.world import Api

GATHER_TIMEOUT_S = 20.0
CONNECT_TIMEOUT_S = 15.0
REFUSED_WAIT_S = 5.0  # a relay that works opens the channel in well under 1 s


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with coturn_server(tmp_path_factory.mktemp("coturn")) as server:
        yield server


@pytest.fixture
async def peers() -> AsyncIterator[list[RTCPeerConnection]]:
    """Every peer connection a test makes; all are closed afterwards, or aiortc leaves tasks running."""
    made: list[RTCPeerConnection] = []
    yield made
    for pc in made:
        await pc.close()


def relay_only(peers: list[RTCPeerConnection], ice_servers: list[dict[str, Any]]) -> RTCPeerConnection:
    config = RTCConfiguration(
        iceServers=[RTCIceServer(urls=s["urls"], username=s["username"], credential=s["credential"])
                    for s in ice_servers],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    pc = RTCPeerConnection(config)
    peers.append(pc)
    return pc


async def staff_ice_servers(api: Api, user: str = "inspector") -> list[dict[str, Any]]:
    status, body = await api.call("GET", "/api/v1/ice-servers", user=user)
    assert status == 200, body
    servers: list[dict[str, Any]] = body["ice_servers"]
    assert servers, "TURN is configured, so the API must hand out a server"
    return servers


async def claimant_ice_servers(api: Api) -> list[dict[str, Any]]:
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    status, body = await api.call("GET", f"/api/v1/join/{token}/ice-servers")
    assert status == 200, body
    servers: list[dict[str, Any]] = body["ice_servers"]
    return servers


def relay_ports(sdp: str) -> list[int]:
    """Ports of the SDP's relay candidates (`... <address> <port> typ relay ...`)."""
    ports = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " typ relay" in line:
            bits = line.split()
            ports.append(int(bits[bits.index("typ") - 1]))
    return ports


async def wait_for_log(server: Coturn, text: str, within_s: float = 5.0) -> None:
    """coturn writes its log from its own threads: wait (bounded) until `text` shows up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while text not in server.log():
        assert loop.time() < deadline, f"{text!r} not in the turnserver log:\n{server.log()[-3000:]}"
        await asyncio.sleep(0.05)


async def gathered_sdp(pc: RTCPeerConnection, offer: bool = True) -> str:
    description = await pc.createOffer() if offer else await pc.createAnswer()
    await asyncio.wait_for(pc.setLocalDescription(description), GATHER_TIMEOUT_S)
    return str(pc.localDescription.sdp)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_relay_only_peers_exchange_data_through_turnserver_with_api_credentials(
    make_api: MakeApi, coturn: Coturn, peers: list[RTCPeerConnection], transport: str
) -> None:
    api = await make_api(turn_urls=coturn.url(transport), turn_secret=coturn.secret)
    inspector = relay_only(peers, await staff_ice_servers(api))
    claimant = relay_only(peers, await claimant_ice_servers(api))
    loop = asyncio.get_running_loop()
    opened = asyncio.Event()
    reply: asyncio.Future[str] = loop.create_future()

    channel = inspector.createDataChannel("chat")
    channel.on("open", opened.set)

    @channel.on("message")
    def on_reply(message: str) -> None:
        if not reply.done():
            reply.set_result(message)

    @claimant.on("datachannel")
    def on_channel(incoming: RTCDataChannel) -> None:
        incoming.on("message", lambda message: incoming.send(f"pong:{message}"))

    offer = await gathered_sdp(inspector)
    await claimant.setRemoteDescription(inspector.localDescription)
    answer = await gathered_sdp(claimant, offer=False)
    await inspector.setRemoteDescription(claimant.localDescription)

    for sdp in (offer, answer):
        assert " typ relay" in sdp, f"no relay candidate: {sdp}\n{coturn.log()[-2000:]}"
        assert " typ host" not in sdp and " typ srflx" not in sdp
        low, high = coturn.relay_ports
        assert all(low <= port <= high for port in relay_ports(sdp)), "relayed by another server"
    await asyncio.wait_for(opened.wait(), CONNECT_TIMEOUT_S)
    channel.send("ping")
    assert await asyncio.wait_for(reply, CONNECT_TIMEOUT_S) == "pong:ping"
    assert inspector.iceConnectionState == "completed" and claimant.iceConnectionState == "completed"


async def test_credentials_made_with_a_wrong_secret_give_no_relay_candidate(
    make_api: MakeApi, coturn: Coturn, peers: list[RTCPeerConnection]
) -> None:
    api = await make_api(seed=False, turn_urls=coturn.url(), turn_secret="not-the-servers-secret")
    servers = await staff_ice_servers(api)
    pc = relay_only(peers, servers)
    pc.createDataChannel("chat")
    sdp = await gathered_sdp(pc)
    assert " typ relay" not in sdp and "a=candidate:" not in sdp
    await wait_for_log(coturn, f"Cannot find credentials of user <{servers[0]['username']}>")


async def test_expired_credentials_give_no_relay_candidate(
    make_api: MakeApi, coturn: Coturn, peers: list[RTCPeerConnection]
) -> None:
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    api = await make_api(
        seed=False, clock=lambda: two_hours_ago, turn_urls=coturn.url(), turn_secret=coturn.secret, turn_ttl_s=3600
    )
    servers = await staff_ice_servers(api)
    assert int(servers[0]["username"].split(":")[0]) < datetime.now(UTC).timestamp()
    pc = relay_only(peers, servers)
    pc.createDataChannel("chat")
    sdp = await gathered_sdp(pc)
    assert " typ relay" not in sdp and "a=candidate:" not in sdp
    await wait_for_log(coturn, f"Cannot find credentials of user <{servers[0]['username']}>")


async def test_the_same_credentials_fresh_do_give_a_relay_candidate(
    make_api: MakeApi, coturn: Coturn, peers: list[RTCPeerConnection]
) -> None:
    # The control of the two negative tests: same server, same path, only the credentials are right.
    api = await make_api(seed=False, turn_urls=coturn.url(), turn_secret=coturn.secret)
    pc = relay_only(peers, await staff_ice_servers(api))
    pc.createDataChannel("chat")
    assert relay_ports(await gathered_sdp(pc))


DEPLOYMENT_CONF = Path(__file__).parents[2] / "coturn.conf"


@pytest.fixture(scope="module")
def deployed_coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """coturn with the repository's coturn.conf, moved onto loopback and free ports."""
    with coturn_server(tmp_path_factory.mktemp("coturn-deployed"), deployment=DEPLOYMENT_CONF) as server:
        yield server


async def test_the_deployment_config_authenticates_but_refuses_to_relay_to_loopback_peers(
    make_api: MakeApi, deployed_coturn: Coturn, peers: list[RTCPeerConnection]
) -> None:
    api = await make_api(turn_urls=deployed_coturn.url(), turn_secret=deployed_coturn.secret)
    inspector = relay_only(peers, await staff_ice_servers(api))
    claimant = relay_only(peers, await claimant_ice_servers(api))
    channel = inspector.createDataChannel("chat")
    opened = asyncio.Event()
    channel.on("open", opened.set)
    offer = await gathered_sdp(inspector)
    await claimant.setRemoteDescription(inspector.localDescription)
    answer = await gathered_sdp(claimant, offer=False)
    await inspector.setRemoteDescription(claimant.localDescription)
    # The credentials work (relay candidates), but both relays are on 127.0.0.1, a denied peer range.
    assert " typ relay" in offer and " typ relay" in answer, deployed_coturn.log()[-2000:]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(opened.wait(), REFUSED_WAIT_S)
    assert inspector.iceConnectionState != "completed"
    await wait_for_log(deployed_coturn, "CHANNEL_BIND processed, error 403: Forbidden IP")
