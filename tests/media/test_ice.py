"""media.ice: TURN REST credentials, ICE server lists, the announced public address, host addresses."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections.abc import Iterator

import aioice.ice
import pytest
from aiortc import RTCPeerConnection

from media.ice import (
    IceSettings,
    announce_public_address,
    browser_ice_servers,
    install_host_addresses,
    installed_host_addresses,
    server_rtc_configuration,
    turn_credentials,
)

AIOICE_DEFAULT = aioice.ice.get_host_addresses
TURN = IceSettings(
    turn_urls=("turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349?transport=tcp"),
    turn_secret="the-static-auth-secret",
    turn_ttl_s=600,
)
PUBLIC = "203.0.113.7"  # TEST-NET-3: documentation addresses only

# An offer as aiortc writes it (shortened), with a host, a server-reflexive and a relay candidate.
SDP = "\r\n".join([
    "v=0",
    "o=- 3913791234 3913791234 IN IP4 0.0.0.0",
    "s=-",
    "t=0 0",
    "a=group:BUNDLE 0",
    "m=application 40001 DTLS/SCTP 5000",
    "c=IN IP4 10.0.0.5",
    "a=mid:0",
    "a=sctpmap:5000 webrtc-datachannel 65535",
    "a=candidate:1a2b 1 udp 2130706431 10.0.0.5 40001 typ host",
    "a=candidate:3c4d 1 udp 2130706431 fd00::5 40002 typ host",
    "a=candidate:5e6f 1 udp 1694498815 198.51.100.9 40001 typ srflx raddr 10.0.0.5 rport 40001",
    "a=candidate:7a8b 1 udp 16777215 198.51.100.20 50000 typ relay raddr 10.0.0.5 rport 40003",
    "a=end-of-candidates",
    "a=ice-ufrag:abcd",
    "",
])


@pytest.fixture
def restore_host_addresses() -> Iterator[None]:
    yield
    install_host_addresses(())
    assert aioice.ice.get_host_addresses is AIOICE_DEFAULT


async def local_offer_sdp(settings: IceSettings) -> str:
    """The SDP of an offer of a server-configured peer, after gathering; the peer is closed again."""
    pc = RTCPeerConnection(server_rtc_configuration(settings))
    try:
        pc.createDataChannel("probe")
        await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), 10)
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def candidates(sdp: str) -> list[str]:
    return [line for line in sdp.splitlines() if line.startswith("a=candidate:")]


# ---- TURN credentials ----


def test_turn_credentials_follow_the_turn_rest_api_scheme() -> None:
    username, password = turn_credentials("s3cret", "alice", 600, 1_700_000_000.9)
    assert username == "1700000600:alice"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700000600:alice", hashlib.sha1).digest()).decode()
    assert password == expected


def test_turn_credentials_differ_per_secret_user_and_expiry() -> None:
    base = turn_credentials("s3cret", "alice", 600, 1_700_000_000)
    assert turn_credentials("other", "alice", 600, 1_700_000_000)[1] != base[1]
    assert turn_credentials("s3cret", "bob", 600, 1_700_000_000)[1] != base[1]
    assert turn_credentials("s3cret", "alice", 601, 1_700_000_000)[1] != base[1]


def test_browsers_get_no_ice_servers_without_turn() -> None:
    assert browser_ice_servers(IceSettings(), "inspector", 1_700_000_000) == []


def test_browsers_get_every_turn_url_with_credentials_of_their_user() -> None:
    servers = browser_ice_servers(TURN, "inspector", 1_700_000_000)
    username, password = turn_credentials(TURN.turn_secret, "inspector", 600, 1_700_000_000)
    assert servers == [{"urls": list(TURN.turn_urls), "username": username, "credential": password}]


# ---- the server peers' configuration ----


def test_server_configuration_has_no_ice_servers_by_default() -> None:
    config = server_rtc_configuration(IceSettings())
    # An explicit empty list: left as None, aiortc would fall back to a public STUN server.
    assert config.iceServers == []
    assert "stun:" not in repr(config)


def test_server_configuration_uses_the_turn_servers_as_user_server() -> None:
    config = server_rtc_configuration(TURN)
    assert config.iceServers is not None and len(config.iceServers) == 1
    server = config.iceServers[0]
    assert server.urls == list(TURN.turn_urls)
    assert isinstance(server.username, str)
    expiry, user = server.username.split(":", 1)
    assert user == "server" and int(expiry) > 1_700_000_000
    expected = base64.b64encode(hmac.new(TURN.turn_secret.encode(), server.username.encode(), hashlib.sha1).digest())
    assert server.credential == expected.decode()
    assert "stun:" not in repr(config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"turn_urls": ("turn:127.0.0.1:3478",)}, "secret"),
        ({"turn_urls": ("stun:127.0.0.1:3478",), "turn_secret": "s"}, "turn: or turns:"),
        ({"host_addresses": ("not-an-ip",)}, "not an IP address"),
        ({"public_address": "example.com"}, "not an IP address"),
        ({"turn_ttl_s": 0}, "at least 1"),
    ],
)
def test_inconsistent_ice_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IceSettings(**kwargs)  # type: ignore[arg-type]


# ---- the announced public address ----


def test_public_address_replaces_host_candidates_and_their_connection_line() -> None:
    out = announce_public_address(SDP, IceSettings(public_address=PUBLIC))
    lines = out.split("\r\n")
    assert f"a=candidate:1a2b 1 udp 2130706431 {PUBLIC} 40001 typ host" in lines
    assert f"c=IN IP4 {PUBLIC}" in lines
    assert "10.0.0.5 40001 typ host" not in out and "c=IN IP4 10.0.0.5" not in out
    # Only the host address changed: the line count and every other line are as they were.
    assert len(lines) == len(SDP.split("\r\n"))
    assert out.replace(PUBLIC, "10.0.0.5") == SDP


def test_public_address_leaves_relay_srflx_and_other_family_candidates_alone() -> None:
    out = announce_public_address(SDP, IceSettings(public_address=PUBLIC))
    for kept in (
        "a=candidate:3c4d 1 udp 2130706431 fd00::5 40002 typ host",
        "a=candidate:5e6f 1 udp 1694498815 198.51.100.9 40001 typ srflx raddr 10.0.0.5 rport 40001",
        "a=candidate:7a8b 1 udp 16777215 198.51.100.20 50000 typ relay raddr 10.0.0.5 rport 40003",
    ):
        assert kept in out.split("\r\n")


def test_sdp_is_unchanged_without_a_public_address() -> None:
    assert announce_public_address(SDP, IceSettings()) is SDP


async def test_public_address_is_announced_in_a_real_aiortc_offer(restore_host_addresses: None) -> None:
    install_host_addresses(("127.0.0.1",))
    sdp = await local_offer_sdp(IceSettings())
    out = announce_public_address(sdp, IceSettings(public_address=PUBLIC))
    host = [c for c in candidates(out) if " typ host" in c]
    assert host and all(f" {PUBLIC} " in c for c in host), out
    assert "127.0.0.1" not in out


# ---- host addresses ----


async def test_installed_loopback_address_gives_a_loopback_host_candidate(restore_host_addresses: None) -> None:
    install_host_addresses(("127.0.0.1",))
    sdp = await local_offer_sdp(IceSettings())
    assert any(" 127.0.0.1 " in c and " typ host" in c for c in candidates(sdp)), sdp


async def test_restoring_the_default_skips_loopback_again(restore_host_addresses: None) -> None:
    install_host_addresses(("127.0.0.1",))
    install_host_addresses(())
    assert aioice.ice.get_host_addresses is AIOICE_DEFAULT
    assert installed_host_addresses() == ()
    sdp = await local_offer_sdp(IceSettings())
    assert not any(" 127.0.0.1 " in c for c in candidates(sdp)), sdp


def test_installing_host_addresses_twice_is_the_same_as_once(restore_host_addresses: None) -> None:
    install_host_addresses(("127.0.0.1",))
    first = aioice.ice.get_host_addresses
    install_host_addresses(("127.0.0.1",))
    assert aioice.ice.get_host_addresses == first
    assert installed_host_addresses() == ("127.0.0.1",)
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]


def test_installed_addresses_follow_the_wanted_ip_families(restore_host_addresses: None) -> None:
    install_host_addresses(("127.0.0.1", "::1"))
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=False) == ["127.0.0.1"]
    assert aioice.ice.get_host_addresses(use_ipv4=False, use_ipv6=True) == ["::1"]


def test_installing_a_non_address_is_refused_and_changes_nothing(restore_host_addresses: None) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        install_host_addresses(("localhost",))
    assert aioice.ice.get_host_addresses is AIOICE_DEFAULT
