"""A client network for fault tests: a second network namespace joined to the test's by a veth pair.

The test process (the server) keeps the host end, `10.77.0.1`; whatever runs through `ClientNetwork.wrap`
(a browser) lives behind the other end, `10.77.0.2`. Faults are real: nftables drops every packet
crossing the veth (a network blackout), or the client's address changes (a phone moving from Wi-Fi
to mobile data). Only inside the loopback-only namespace of scripts/run-tests, so nothing on the
host network is touched; elsewhere the tests are skipped, and fail under CI=true.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.binaries import find_binary

HOST_IF, CLIENT_IF = "cc-host", "cc-client"
HOST_ADDRESS = "10.77.0.1"
CLIENT_ADDRESS = "10.77.0.2"
PREFIX = 24
TABLE = "claimcam_fault"


@dataclass
class ClientNetwork:
    holder: subprocess.Popen[bytes]  # its namespace is the client's
    ip: str
    nft: str
    nsenter: str
    host_address: str = HOST_ADDRESS
    client_address: str = CLIENT_ADDRESS

    def inside(self, *argv: str) -> list[str]:
        """A command line that runs `argv` in the client's namespace."""
        return [self.nsenter, "-t", str(self.holder.pid), "-n", "--", *argv]

    def wrap(self, executable: str, path: Path) -> Path:
        """A script that runs `executable` in the client's namespace with the arguments it is given."""
        path.write_text(f'#!/bin/sh\nexec {" ".join(self.inside(executable))} "$@"\n')
        path.chmod(0o755)
        return path

    def blackout(self) -> None:
        """Drop everything crossing the veth, both ways, until `restore`."""
        rules = (
            f"add table inet {TABLE}\n"
            f"add chain inet {TABLE} in {{ type filter hook input priority -10 ; }}\n"
            f"add chain inet {TABLE} out {{ type filter hook output priority -10 ; }}\n"
            f'add rule inet {TABLE} in iifname "{HOST_IF}" drop\n'
            f'add rule inet {TABLE} out oifname "{HOST_IF}" drop\n'
        )
        subprocess.run([self.nft, "-f", "-"], input=rules.encode(), check=True)

    def restore(self) -> None:
        subprocess.run([self.nft, "delete", "table", "inet", TABLE], check=True)

    def move_client(self, address: str) -> None:
        """The client's address changes at once, as when a phone leaves Wi-Fi for mobile data."""
        subprocess.run(
            self.inside(self.ip, "addr", "del", f"{self.client_address}/{PREFIX}", "dev", CLIENT_IF), check=True
        )
        subprocess.run(self.inside(self.ip, "addr", "add", f"{address}/{PREFIX}", "dev", CLIENT_IF), check=True)
        self.client_address = address


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def _interfaces() -> list[str]:
    # /proc/net is this namespace's (a /sys mounted outside it would list the host's interfaces).
    lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def _wait_for_own_namespace(holder: subprocess.Popen[bytes]) -> None:
    mine = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 5
    while holder.poll() is None and os.readlink(f"/proc/{holder.pid}/ns/net") == mine:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if holder.poll() is not None or os.readlink(f"/proc/{holder.pid}/ns/net") == mine:
        _unavailable("unshare -n could not give the client a network namespace of its own")


@contextlib.contextmanager
def client_network() -> Iterator[ClientNetwork]:
    ip, nft, nsenter, unshare = (find_binary(n) for n in ("ip", "nft", "nsenter", "unshare"))
    interfaces = _interfaces()
    if interfaces != ["lo"]:
        _unavailable(f"network fault tests need the loopback-only namespace of scripts/run-tests; here: {interfaces}")
    holder = subprocess.Popen([unshare, "-n", "sleep", "infinity"])
    net = ClientNetwork(holder, ip, nft, nsenter)
    try:
        steps = [
            [ip, "link", "add", HOST_IF, "type", "veth", "peer", "name", CLIENT_IF, "netns", str(holder.pid)],
            [ip, "addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", HOST_IF],
            [ip, "link", "set", HOST_IF, "up"],
            net.inside(ip, "link", "set", "lo", "up"),
            net.inside(ip, "addr", "add", f"{CLIENT_ADDRESS}/{PREFIX}", "dev", CLIENT_IF),
            net.inside(ip, "link", "set", CLIENT_IF, "up"),
        ]
        _wait_for_own_namespace(holder)
        for step in steps:
            done = subprocess.run(step, capture_output=True)
            if done.returncode != 0:
                _unavailable(f"cannot build the client network: {' '.join(step)}: {done.stderr.decode().strip()}")
        yield net
    finally:
        subprocess.run([nft, "delete", "table", "inet", TABLE], capture_output=True)
        subprocess.run([ip, "link", "del", HOST_IF], capture_output=True)
        holder.kill()
        holder.wait()
