"""A client that stops reading its socket must not hold the room up, and is let go."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from urllib.parse import urlsplit

from signalling import events as ev
from tests.signalling.conftest import StartCall


class RawSocketIo:
    """Speaks just enough Engine.IO/Socket.IO over a raw websocket to join, then can stop reading."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> RawSocketIo:
        parts = urlsplit(url)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few messages
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        raw = cls(reader, writer)
        assert (await raw.read()).startswith("0")  # Engine.IO open
        return raw

    def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([0x81]) + (bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack("!H", size))
        self.writer.write(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    async def read(self) -> str:
        _, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await self.reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
        return (await self.reader.readexactly(size)).decode()

    async def read_until(self, prefix: str) -> str:
        while True:
            text = await self.read()
            if text == "2":  # Engine.IO ping, while we still read
                self.send("3")
            elif text.startswith(prefix):
                return text

    def close(self) -> None:
        self.writer.close()


async def test_a_client_that_stops_reading_neither_stalls_the_room_nor_stays(start_call: StartCall) -> None:
    call = await start_call(socket_ping_interval_s=1.0, socket_ping_timeout_s=1.0)
    claimant = await call.claimant()
    inspector = await call.inspector()
    slow = await RawSocketIo.open(call.url)
    try:
        auth = json.dumps({"jwt": call.api.token("handler"), "invite_id": call.invite_id})
        slow.send(f"40{ev.CALL_NAMESPACE},{auth}")
        await slow.read_until(f"40{ev.CALL_NAMESPACE},")
        slow.send(f'42{ev.CALL_NAMESPACE},1["join"]')
        assert '"ok":true' in (await slow.read_until(f"43{ev.CALL_NAMESPACE},1")).replace(" ", "")
        await inspector.wait_for(ev.PRESENCE, lambda p: len(p.get("participants", [])) == 3)
        # From here the slow client reads nothing (no pongs either) while the call goes on at full rate.
        started = time.monotonic()
        for i in range(90):  # 3 s of cursor moves at 30 Hz, and a chat message every 0.5 s
            assert (await claimant.call(ev.CURSOR, {"action": "move", "x": (i % 100) / 100, "y": 0.5}))["ok"]
            if i % 15 == 0:
                assert (await claimant.call(ev.CHAT, {"text": f"message {i}"}))["ok"]
            await asyncio.sleep(1 / 30)
        assert time.monotonic() - started < 6, "the claimant's own events were held up"
        await inspector.wait_for(ev.CHAT, lambda m: m.get("text") == "message 75")
        assert len(inspector.received[ev.CURSOR]) >= 80  # the healthy inspector got the moves as they came
        # Unanswered pings: the server lets the slow client go and tells the room.
        await inspector.wait_for(ev.PRESENCE, lambda p: len(p.get("participants", [])) == 2, within_s=10)
        assert (await claimant.call(ev.CHAT, {"text": "still here"}))["ok"]
        await inspector.wait_for(ev.CHAT, lambda m: m.get("text") == "still here")
    finally:
        slow.close()
