"""A running server with the seeded world, an invite to call about, and connected peers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from rooms.calls import Participant
from rooms.changes import MEDIA_ADDED, Change, ChangeFeed
from signalling import events as ev
from signalling.media_port import Capture
from tests.conftest import MakeApi
from tests.support.api_tools import claimant_token
from tests.support.sio_peer import Peer
from tests.support.world import Api
from web.keys import feed_key


@dataclass
class FakeMedia:
    """Speaks the media port like the real media plane will, and announces captures the same way."""

    feed: ChangeFeed | None = None
    case_id: str = "case-std"
    recording: set[str] = field(default_factory=set)
    shots: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)  # sids whose peers were let go

    async def negotiate(self, invite_id: str, by: Participant, offer_sdp: object) -> str:
        return "v=0 fake answer"

    async def drop(self, invite_id: str, sid: str) -> None:
        self.dropped.append(sid)

    async def screenshot(self, invite_id: str, by: Participant) -> Capture:
        self.shots.append((invite_id, by.name))
        media = {"id": f"shot-{len(self.shots)}", "kind": "picture"}
        assert self.feed is not None
        await self.feed.publish(Change(MEDIA_ADDED, invite_id, self.case_id, {"media": media}))
        return Capture(media)

    async def start_recording(self, invite_id: str, by: Participant) -> None:
        self.recording.add(invite_id)

    async def stop_recording(self, invite_id: str, by: Participant) -> Capture | None:
        self.recording.discard(invite_id)
        return Capture({"id": "video-1", "kind": "video"})

    async def is_recording(self, invite_id: str) -> bool:
        return invite_id in self.recording


@dataclass
class Call:
    api: Api
    invite_id: str
    token: str
    media: FakeMedia
    url: str
    peers: list[Peer] = field(default_factory=list)

    async def peer(self, auth: Any, namespace: str = ev.CALL_NAMESPACE) -> Peer:
        peer = Peer(namespace)
        self.peers.append(peer)
        await peer.connect(self.url, auth)
        return peer

    async def claimant(self, join: bool = True) -> Peer:
        peer = await self.peer({"token": self.token})
        if join:
            assert (await peer.call("join"))["ok"]
        return peer

    async def inspector(self, user: str = "inspector", join: bool = True) -> Peer:
        peer = await self.peer({"jwt": self.api.token(user), "invite_id": self.invite_id})
        if join:
            assert (await peer.call("join"))["ok"]
        return peer

    async def staff(self, user: str = "viewer") -> Peer:
        return await self.peer({"jwt": self.api.token(user)}, ev.STAFF_NAMESPACE)

    async def status(self) -> str:
        _, body = await self.api.call("GET", f"/api/v1/invites/{self.invite_id}", user="inspector")
        return str(body["status"])

    async def event_kinds(self) -> list[str]:
        _, body = await self.api.call("GET", f"/api/v1/invites/{self.invite_id}/events", user="inspector")
        assert body["integrity"]["ok"]
        return [e["kind"] for e in body["events"]]

    async def events(self, kind: str) -> list[dict[str, Any]]:
        _, body = await self.api.call("GET", f"/api/v1/invites/{self.invite_id}/events", user="inspector")
        return [e for e in body["events"] if e["kind"] == kind]


token_of = claimant_token  # the link's token, as the delivered message carries it


StartCall = Callable[..., Awaitable[Call]]


@pytest.fixture
async def start_call(make_api: MakeApi) -> AsyncIterator[StartCall]:
    calls: list[Call] = []

    async def start(**overrides: Any) -> Call:
        media = FakeMedia()
        api = await make_api(media=media, **overrides)
        media.feed = api.client.app[feed_key]
        invite = await api.invite()
        call = Call(api, invite["id"], await token_of(api, invite["id"]), media, str(api.client.make_url("/")))
        calls.append(call)
        return call

    yield start
    for call in calls:
        for peer in call.peers:
            await peer.close()


@pytest.fixture
async def call(start_call: StartCall) -> Call:
    return await start_call()
