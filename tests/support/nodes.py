"""Talking to running `claimcam serve` nodes from tests: invites, sockets, offers, stopping them."""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import aiohttp

from signalling import events as ev
from tests.support.sio_peer import Peer
from web import demo

SECRET = "two-nodes-shared-secret"
CASE = demo.CASE.id


@dataclass(frozen=True, slots=True)
class Invite:
    id: str
    link_token: str


def timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)


async def get_json(http: aiohttp.ClientSession, url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.get(url, headers=headers, timeout=timeout(5)) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def create_invite(http: aiohttp.ClientSession, base_url: str, inspector_token: str) -> Invite:
    """An SMS invite to the demo policyholder; its link comes out of the dev outbox once delivered."""
    async with http.post(
        f"{base_url}/api/v1/cases/{CASE}/invites",
        json={"contact_id": "c-holder", "method": "sms"},
        headers={"Authorization": f"Bearer {inspector_token}"},
        timeout=timeout(5),
    ) as r:
        assert r.status == 201, await r.text()
        invite_id = str((await r.json())["id"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        outbox = await get_json(http, f"{base_url}/api/v1/dev/outbox")
        for message in outbox["messages"]:
            if message["invite_id"] == invite_id and message["link"]:
                link = str(message["link"])
                assert "/join/" in link, link
                return Invite(invite_id, link.rsplit("/join/", 1)[1])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no outbox message for invite {invite_id} within 10 s")


async def invite_status(http: aiohttp.ClientSession, base_url: str, invite_id: str, token: str) -> str:
    return str((await get_json(http, f"{base_url}/api/v1/invites/{invite_id}", token))["status"])


async def connect(peers: list[Peer], base_url: str, auth: dict[str, str], namespace: str = ev.CALL_NAMESPACE) -> Peer:
    peer = Peer(namespace)
    peers.append(peer)
    await peer.connect(base_url, auth)
    return peer


async def join(peer: Peer) -> Peer:
    ack = await peer.call("join")
    assert ack["ok"], ack
    return peer


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


async def offer_over(peer: Peer, sdp: str) -> str:
    ack = await peer.call(ev.RTC_OFFER, {"type": "offer", "sdp": sdp})
    assert ack["ok"], ack
    return str(ack["answer"]["sdp"])
