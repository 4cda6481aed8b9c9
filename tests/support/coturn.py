"""A real coturn `turnserver` on a free loopback port, in the foreground, stopped by its own PID.

The configuration is the test one of the research notes: loopback only, TURN REST API credentials
(`use-auth-secret`) with a secret made per run, and `allow-loopback-peers`, without which coturn
refuses to relay to 127.0.0.1 peers (CHANNEL_BIND 403) and ICE hangs in `checking`. The deployment
configuration, coturn.conf at the repository root, does the opposite.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from aioice import stun

from tests.support import process
from tests.support.binaries import find_binary
from tests.support.ports import free_port

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0
RELAY_PORTS = 40
REALM = "claimcam.test"


@dataclass(frozen=True, slots=True)
class Coturn:
    port: int
    secret: str
    relay_ports: tuple[int, int]
    log_path: Path

    def url(self, transport: str = "udp") -> str:
        return f"turn:127.0.0.1:{self.port}?transport={transport}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _bindable(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _ports() -> tuple[int, int]:
    """A free listening port and, right above it, a free range of relay ports."""
    for _ in range(100):
        port = free_port()
        first, last = port + 1, port + RELAY_PORTS
        if last < 65536 and all(_bindable(p) for p in range(port, last + 1)):
            return port, first
    raise RuntimeError("found no free port range for turnserver")


def stun_binding_answers(port: int, timeout_s: float = 0.2) -> bool:
    """Send one STUN Binding request over UDP; True when the matching success response comes back."""
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout_s)
        try:
            s.sendto(bytes(request), ("127.0.0.1", port))
            data, _ = s.recvfrom(2048)
            response = stun.parse_message(data)
        except (OSError, ValueError):
            return False
    return (
        response.transaction_id == request.transaction_id
        and response.message_method == stun.Method.BINDING
        and response.message_class == stun.Class.RESPONSE
    )


def _local(base: Path, port: int, first_relay: int, secret: str) -> list[str]:
    """What every test server needs: loopback only, its own ports, secret and files, no TLS."""
    return [
        "listening-ip=127.0.0.1",
        "relay-ip=127.0.0.1",
        f"listening-port={port}",
        f"min-port={first_relay}",
        f"max-port={first_relay + RELAY_PORTS - 1}",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        "no-tls",
        "no-dtls",
        "no-cli",
        f"userdb={base / 'turndb'}",
        f"pidfile={base / 'turnserver.pid'}",
        "log-file=stdout",
        "simple-log",
        "verbose",  # session errors (401, 403 Forbidden IP) are only logged with it
    ]


def _test_config(local: list[str]) -> str:
    return "\n".join([
        *local,
        f"realm={REALM}",
        "fingerprint",
        "allow-loopback-peers",  # the peers are on 127.0.0.1 here; never in a deployment
        "no-multicast-peers",
        "no-software-attribute",
        "",
    ])


def _deployment_config(deployment: Path, local: list[str]) -> str:
    """The deployment file with only the settings of `local` (and its syslog) replaced."""
    replaced = {line.split("=", 1)[0] for line in local} | {"tls-listening-port", "syslog"}
    kept = [
        line for line in deployment.read_text().splitlines()
        if line.strip().split("=", 1)[0] not in replaced
    ]
    return "\n".join([*kept, *local, ""])


@contextmanager
def coturn_server(base: Path, deployment: Path | None = None) -> Iterator[Coturn]:
    """Start turnserver and yield once it answers STUN; stop it by its own PID afterwards.

    By default with the test configuration; with `deployment`, with that configuration file, only
    moved onto loopback, free ports, a fresh secret and temp files.
    """
    binary = find_binary("turnserver")
    base.mkdir(parents=True, exist_ok=True)
    port, first_relay = _ports()
    secret = secrets.token_urlsafe(24)
    local = _local(base, port, first_relay, secret)
    conf = base / "turnserver.conf"
    conf.write_text(_deployment_config(deployment, local) if deployment else _test_config(local))
    server = Coturn(port, secret, (first_relay, first_relay + RELAY_PORTS - 1), base / "turnserver.log")
    log: IO[bytes] = open(server.log_path, "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, server)
        yield server
    finally:
        process.stop(proc, STOP_TIMEOUT_S)
        log.close()


def _wait_ready(proc: subprocess.Popen[bytes], server: Coturn) -> None:
    process.wait_until_ready(
        proc, lambda: stun_binding_answers(server.port), "turnserver", START_TIMEOUT_S,
        lambda: f"(STUN):\n{server.log()[-2000:]}",
    )
