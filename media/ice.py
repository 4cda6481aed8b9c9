"""ICE for the server-side peers and the browsers: host addresses, the announced public address, TURN.

Nothing here ever names a public STUN server. aiortc falls back to a public STUN server when a
configuration leaves `iceServers` unset, so `server_rtc_configuration` always sets it: empty, or the
configured TURN servers. TURN credentials follow the TURN REST API scheme that coturn checks with
`use-auth-secret`: the username is `<expiry unix time>:<user>` and the password is
base64(HMAC-SHA1(secret, username)), so no per-user state is stored anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import time
from dataclasses import dataclass

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer

SERVER_USER = "server"
TURN_SCHEMES = ("turn:", "turns:")

# What aioice does when nothing is installed: every interface's address except loopback.
_AIOICE_HOST_ADDRESSES = aioice.ice.get_host_addresses

# `a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ host ...`
_HOST_CANDIDATE = re.compile(
    r"^(?P<head>a=candidate:\S+ \d+ \S+ \d+ )(?P<address>[^ \r\n]+)(?P<tail> \d+ typ host(?=[ \r\n]|$))",
    re.MULTILINE,
)
_CONNECTION = re.compile(r"^c=IN (?P<family>IP4|IP6) (?P<address>[^ \r\n/]+)(?=[\r\n]|$)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class IceSettings:
    host_addresses: tuple[str, ...] = ()  # addresses server peers gather host candidates on; () = aioice's default
    public_address: str = ""  # announced instead of the host address (1:1 NAT / cloud public IP)
    turn_urls: tuple[str, ...] = ()  # e.g. ("turn:turn.example.com:3478?transport=udp", "turns:...:5349?transport=tcp")
    turn_secret: str = ""  # coturn static-auth-secret (use-auth-secret)
    turn_ttl_s: int = 3600

    def __post_init__(self) -> None:
        for address in (*self.host_addresses, *([self.public_address] if self.public_address else [])):
            _ip(address)
        for url in self.turn_urls:
            if not url.startswith(TURN_SCHEMES):
                raise ValueError(f"TURN URL {url!r} must start with turn: or turns:")
        if self.turn_urls and not self.turn_secret:
            raise ValueError("TURN URLs need the TURN secret (coturn's static-auth-secret)")
        if self.turn_ttl_s < 1:
            raise ValueError("the TURN credential lifetime must be at least 1 s")


def _ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"{address!r} is not an IP address") from None


@dataclass(frozen=True, slots=True)
class _FixedHostAddresses:
    """Stands in for `aioice.ice.get_host_addresses`: the configured addresses of the wanted families."""

    addresses: tuple[str, ...]

    def __call__(self, use_ipv4: bool, use_ipv6: bool) -> list[str]:
        wanted = {4: use_ipv4, 6: use_ipv6}
        return [a for a in self.addresses if wanted[_ip(a).version]]


def install_host_addresses(addresses: tuple[str, ...]) -> None:
    """Make every aioice connection in this process gather host candidates on exactly `addresses`.

    aioice skips 127.0.0.1, so loopback-only set-ups (tests, a single-host lab) need this; a server
    with several interfaces can use it to keep ICE off internal ones. Process-wide, like aioice's
    own function it replaces. Installing the same addresses again changes nothing; `()` restores
    aioice's default.
    """
    if not addresses:
        aioice.ice.get_host_addresses = _AIOICE_HOST_ADDRESSES
        return
    aioice.ice.get_host_addresses = _FixedHostAddresses(tuple(str(_ip(a)) for a in addresses))


def installed_host_addresses() -> tuple[str, ...]:
    """What `install_host_addresses` last installed; `()` while aioice's default is in place."""
    current = aioice.ice.get_host_addresses
    return current.addresses if isinstance(current, _FixedHostAddresses) else ()


def turn_credentials(secret: str, user: str, ttl_s: int, now: float) -> tuple[str, str]:
    """TURN REST API credentials valid until `now + ttl_s`: (username, password)."""
    username = f"{int(now) + ttl_s}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def server_rtc_configuration(ice: IceSettings) -> RTCConfiguration:
    """The configuration of a server-side peer: never a public STUN default.

    Without TURN the list of ICE servers is explicitly empty (aiortc would otherwise add a public
    STUN server); with TURN it holds the TURN servers with fresh credentials for the user "server".
    aiortc uses the first usable TURN URL.
    """
    if not ice.turn_urls:
        return RTCConfiguration(iceServers=[])
    username, password = turn_credentials(ice.turn_secret, SERVER_USER, ice.turn_ttl_s, time.time())
    return RTCConfiguration(iceServers=[RTCIceServer(urls=list(ice.turn_urls), username=username, credential=password)])


def browser_ice_servers(ice: IceSettings, user: str, now: float) -> list[dict[str, object]]:
    """`RTCPeerConnection({iceServers})` for a browser: the TURN servers with credentials of `user`, or []."""
    if not ice.turn_urls:
        return []
    username, password = turn_credentials(ice.turn_secret, user, ice.turn_ttl_s, now)
    return [{"urls": list(ice.turn_urls), "username": username, "credential": password}]


def announce_public_address(sdp: str, ice: IceSettings) -> str:
    """Put `public_address` in place of the host candidates' addresses (and of the `c=` lines naming them).

    For a server behind 1:1 NAT (a cloud VM's public IP): the ports map unchanged, so the browser
    can reach the host candidate at the public address. Only candidates of the public address's
    IP family are rewritten; server-reflexive and relay candidates are left alone. Without a public
    address the SDP is returned unchanged.
    """
    if not ice.public_address:
        return sdp
    public = _ip(ice.public_address)
    replaced: set[str] = set()

    def host(m: re.Match[str]) -> str:
        address = m["address"]
        try:
            if _ip(address).version != public.version:
                return m[0]
        except ValueError:  # an mDNS name or other non-address: nothing to rewrite
            return m[0]
        replaced.add(address)
        return f"{m['head']}{public}{m['tail']}"

    def connection(m: re.Match[str]) -> str:
        if m["address"] not in replaced:
            return m[0]
        return f"c=IN IP{public.version} {public}"

    rewritten = _HOST_CANDIDATE.sub(host, sdp)
    return _CONNECTION.sub(connection, rewritten)
