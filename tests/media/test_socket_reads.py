"""A host candidate's socket hands every datagram it holds to ICE at one wake-up (media/aiortc_internals.py)."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace

from aioice.ice import StunProtocol

from media import aiortc_internals

DATAGRAMS = 40  # fewer than DRAIN_DATAGRAMS: one wake-up takes them all


class Receiver:
    """What an aioice Connection is to its protocols: where non-STUN datagrams go."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, int]] = []

    def data_received(self, data: bytes, component: int) -> None:
        self.got.append((data, component))

    def protocol_lost(self, protocol: object) -> None:
        pass


async def turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def host_protocol(receiver: Receiver) -> tuple[asyncio.DatagramTransport, StunProtocol]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: StunProtocol(receiver), local_addr=("127.0.0.1", 0)  # type: ignore[arg-type]
    )
    protocol.local_candidate = SimpleNamespace(component=1)  # type: ignore[assignment]
    return transport, protocol


def send_burst(address: tuple[str, int], tag: int) -> list[bytes]:
    sent = [bytes([0x80, tag, i]) + b"rtp" * 100 for i in range(DATAGRAMS)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out:
        for data in sent:
            out.sendto(data, address)  # loopback: queued at the receiver before sendto returns
    return sent


async def test_asyncio_alone_reads_one_datagram_per_turn_of_the_loop() -> None:
    receiver = Receiver()
    transport, _ = await host_protocol(receiver)
    try:
        send_burst(transport.get_extra_info("sockname"), 1)
        await turns(2)
        assert 1 <= len(receiver.got) <= 2  # what the drained reads below are measured against
    finally:
        transport.close()


async def test_one_wake_up_reads_every_waiting_datagram_in_order() -> None:
    receiver = Receiver()
    transport, protocol = await host_protocol(receiver)
    try:
        aiortc_internals._read_every_datagram(protocol)
        sent = send_burst(transport.get_extra_info("sockname"), 2)
        await turns(2)
        assert [data for data, _ in receiver.got] == sent
        assert {component for _, component in receiver.got} == {1}
    finally:
        transport.close()


async def test_a_closed_transport_reads_nothing_more_and_fails_nothing() -> None:
    receiver = Receiver()
    transport, protocol = await host_protocol(receiver)
    aiortc_internals._read_every_datagram(protocol)
    address = transport.get_extra_info("sockname")
    send_burst(address, 1)
    transport.close()
    await turns(3)
    assert receiver.got == []
    assert transport.is_closing()
