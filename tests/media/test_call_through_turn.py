"""A call whose claimant can only reach the server through a real coturn, with credentials from the API."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCIceTransportPolicy

from tests.conftest import MakeApi
from tests.signalling.conftest import token_of
from tests.support.coturn import Coturn, coturn_server
from tests.support.rtc_bots import claimant_bot, inspector_bot
from tests.support.sio_peer import Peer


@pytest.fixture(scope="module")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    with coturn_server(tmp_path_factory.mktemp("coturn-call")) as server:
        yield server


async def test_claimant_media_relayed_through_turn_reaches_the_inspector(make_api: MakeApi, coturn: Coturn) -> None:
    api = await make_api(ice_host_addresses="127.0.0.1", turn_urls=coturn.url(), turn_secret=coturn.secret)
    invite = await api.invite()
    token = await token_of(api, invite["id"])
    status, body = await api.call("GET", f"/api/v1/join/{token}/ice-servers")
    assert status == 200 and body["ice_servers"]
    relay_only = RTCConfiguration(
        iceServers=[RTCIceServer(urls=s["urls"], username=s["username"], credential=s["credential"])
                    for s in body["ice_servers"]],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    url = str(api.client.make_url("/"))
    claimant, inspector = Peer("/call"), Peer("/call")
    c_bot, i_bot = claimant_bot(relay_only), inspector_bot()
    try:
        await claimant.connect(url, {"token": token})
        await inspector.connect(url, {"jwt": api.token("inspector"), "invite_id": invite["id"]})
        for peer in (claimant, inspector):
            assert (await peer.call("join"))["ok"]

        async def offer_over(peer: Peer, sdp: str) -> str:
            ack = await peer.call("rtc_offer", {"type": "offer", "sdp": sdp})
            assert ack["ok"], ack
            return str(ack["answer"]["sdp"])

        await c_bot.connect(lambda sdp: offer_over(claimant, sdp))
        offer = c_bot.pc.localDescription.sdp
        candidate_types = set(re.findall(r" typ (\w+)", offer))
        assert candidate_types == {"relay"}, offer  # the claimant can reach nobody but the TURN server
        low, high = coturn.relay_ports
        assert all(low <= int(p) <= high for p in re.findall(r"a=candidate:\S+ \d \w+ \d+ \S+ (\d+) typ relay", offer))
        await i_bot.connect(lambda sdp: offer_over(inspector, sdp))
        await i_bot.wait_for("video", 30)
        await i_bot.wait_for("audio", 25)
    finally:
        for bot in (c_bot, i_bot):
            await bot.close()
        for peer in (claimant, inspector):
            await peer.close()
