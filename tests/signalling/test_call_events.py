"""Chat, cursor, mute, camera switch with consent, end call and the media commands."""

from __future__ import annotations

import asyncio

import pytest

from signalling.payloads import MAX_CHAT_CHARS
from tests.conftest import MakeApi
from tests.signalling.conftest import Call, StartCall
from tests.support.sio_peer import Peer


async def test_chat_is_relayed_persisted_and_replayed_on_rejoin(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    ack = await inspector.call("chat", {"text": "  Please show the floor  "})
    assert ack["ok"] and ack["message"]["text"] == "Please show the floor"
    got = await claimant.wait_for("chat")
    assert (got["text"], got["from"]["role"], got["from"]["name"]) == ("Please show the floor", "inspector",
                                                                         "Ines Inspector")
    await asyncio.sleep(0.1)
    assert "chat" not in inspector.received  # the sender has the ack, not an echo
    [logged] = await call.events("chat")
    assert logged["data"] == {"text": "Please show the floor"}
    await claimant.close()
    again = await call.claimant(join=False)
    history = (await again.call("join"))["chat"]
    assert [m["text"] for m in history] == ["Please show the floor"]


@pytest.mark.parametrize("text", ["", "   ", "x" * (MAX_CHAT_CHARS + 1)])
async def test_chat_text_must_be_visible_and_short(call: Call, text: str) -> None:
    peer = await call.claimant()
    ack = await peer.call("chat", {"text": text})
    assert (ack["ok"], ack["error"]["code"]) == (False, "invalid_payload")
    assert await call.events("chat") == []


async def test_chat_flood_is_rate_limited(call: Call) -> None:
    peer = await call.claimant()
    acks = [await peer.call("chat", {"text": f"message {i}"}) for i in range(8)]
    assert [a["ok"] for a in acks[:5]] == [True] * 5
    assert any(not a["ok"] and a["error"]["code"] == "rate_limited" for a in acks[5:])
    assert len(await call.events("chat")) == sum(a["ok"] for a in acks)


async def test_cursor_show_move_hide_reach_the_other_side(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await inspector.call("cursor", {"action": "show"}))["ok"]
    await asyncio.sleep(0.04)
    assert (await inspector.call("cursor", {"action": "move", "x": 0.25, "y": 1}))["relayed"]
    assert (await inspector.call("cursor", {"action": "hide"}))["ok"]
    move = await claimant.wait_for("cursor", lambda d: d["action"] == "move")
    assert (move["x"], move["y"], move["name"]) == (0.25, 1.0, "Ines Inspector")
    await claimant.wait_for("cursor", lambda d: d["action"] == "hide")
    kinds = await call.event_kinds()
    assert "cursor_shown" in kinds and "cursor_hidden" in kinds and "cursor_move" not in kinds


async def test_cursor_moves_beyond_30_hz_are_dropped_not_queued(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    sent = 60
    acks = await asyncio.gather(
        *(inspector.call("cursor", {"action": "move", "x": i / sent, "y": 0.5}) for i in range(sent))
    )
    relayed = sum(a["relayed"] for a in acks)
    assert 1 <= relayed < sent
    await asyncio.sleep(0.2)
    assert len(claimant.received["cursor"]) == relayed


@pytest.mark.parametrize(
    "payload",
    [{"action": "move", "x": 1.5, "y": 0}, {"action": "move", "x": -0.1, "y": 0}, {"action": "move", "x": 0.5},
     {"action": "jump"}, {"action": "move", "x": "0.5", "y": 0.5}, {"action": "move", "x": None, "y": 0.2}],
)
async def test_bad_cursor_payloads_are_refused(call: Call, payload: object) -> None:
    peer = await call.inspector()
    ack = await peer.call("cursor", payload)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_payload"


async def test_mute_updates_presence_and_the_log(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await inspector.call("mute", {"muted": True}))["muted"] is True
    presence = await claimant.wait_for(
        "presence", lambda d: any(p["role"] == "inspector" and p["muted"] for p in d["participants"])
    )
    assert len(presence["participants"]) == 2
    await inspector.call("mute", {"muted": False})
    kinds = await call.event_kinds()
    assert kinds.index("muted") < kinds.index("unmuted")


async def test_camera_switch_accepted_by_the_claimant(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    ask = await inspector.call("camera_switch_request", {})
    assert ask["ok"] and ask["state"] == "pending"
    request = await claimant.wait_for("camera_switch_requested")
    assert (request["request_id"], request["by"]) == (ask["request_id"], "Ines Inspector")
    answer = await claimant.call("camera_switch_answer", {"request_id": ask["request_id"], "allow": True})
    assert answer["result"] == "accepted"
    result = await inspector.wait_for("camera_switch_result")
    assert result == {"request_id": ask["request_id"], "result": "accepted"}
    await claimant.call("camera_facing", {"facing": "user"})
    presence = await inspector.wait_for(
        "presence", lambda d: any(p["facing"] == "user" for p in d["participants"])
    )
    assert presence
    kinds = [k for k in await call.event_kinds() if k in ("camera_switch_requested", "camera_switch_accepted",
                                                          "camera_switched")]
    assert kinds == ["camera_switch_requested", "camera_switch_accepted", "camera_switched"]


async def test_camera_switch_declined_and_a_second_answer_refused(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    ask = await inspector.call("camera_switch_request")
    await claimant.call("camera_switch_answer", {"request_id": ask["request_id"], "allow": False})
    assert (await inspector.wait_for("camera_switch_result"))["result"] == "declined"
    late = await claimant.call("camera_switch_answer", {"request_id": ask["request_id"], "allow": True})
    assert late["error"]["code"] == "request_not_pending"
    assert "camera_switch_accepted" not in await call.event_kinds()


async def test_unanswered_camera_switch_expires_and_the_asker_is_told(start_call: StartCall) -> None:
    call = await start_call(camera_switch_timeout_s=0.3)
    claimant = await call.claimant()
    inspector = await call.inspector()
    ask = await inspector.call("camera_switch_request")
    result = await inspector.wait_for("camera_switch_result", within_s=3)
    assert result == {"request_id": ask["request_id"], "result": "expired"}
    late = await claimant.call("camera_switch_answer", {"request_id": ask["request_id"], "allow": True})
    assert late["error"]["code"] == "request_not_pending"
    assert "camera_switch_expired" in await call.event_kinds()


async def test_camera_switch_roles_are_enforced(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await claimant.call("camera_switch_request"))["error"]["code"] == "forbidden"
    ask = await inspector.call("camera_switch_request")
    steal = await inspector.call("camera_switch_answer", {"request_id": ask["request_id"], "allow": True})
    assert steal["error"]["code"] == "forbidden"
    assert (await inspector.call("camera_facing", {"facing": "user"}))["error"]["code"] == "forbidden"


async def test_camera_switch_needs_a_claimant_in_the_call(call: Call) -> None:
    inspector = await call.inspector()
    assert (await inspector.call("camera_switch_request"))["error"]["code"] == "no_claimant"


@pytest.mark.parametrize("ender", ["claimant", "inspector"])
async def test_either_side_ends_the_call_for_everyone(call: Call, ender: str) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    peers = {"claimant": claimant, "inspector": inspector}
    assert (await peers[ender].call("end_call"))["ok"]
    for peer in peers.values():
        ended = await peer.wait_for("call_ended")
        assert ended["by"]["role"] == ender and ended["reason"] == "ended"
        await asyncio.wait_for(peer.disconnected.wait(), 5)
    for _ in range(100):
        if await call.status() == "ACTIVE":
            break
        await asyncio.sleep(0.02)
    assert await call.status() == "ACTIVE"
    assert "end_call" in await call.event_kinds()


async def test_screenshot_ack_carries_the_capture_and_the_room_sees_it(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    ack = await inspector.call("screenshot")
    assert ack == {"ok": True, "media": {"id": "shot-1", "kind": "picture"}}
    assert (await claimant.wait_for("capture"))["media"]["id"] == "shot-1"
    assert call.media.shots == [(call.invite_id, "Ines Inspector")]


async def test_recording_start_stop_is_broadcast_and_shown_on_join(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    assert (await inspector.call("record_start"))["recording"] is True
    assert (await claimant.wait_for("recording"))["active"] is True
    late = await call.inspector(user="handler", join=False)
    assert (await late.call("join"))["recording"] is True
    stop = await inspector.call("record_stop")
    assert stop["media"] == {"id": "video-1", "kind": "video"}
    await claimant.wait_for("recording", lambda d: d["active"] is False)


async def test_recording_stops_when_the_call_ends(call: Call) -> None:
    claimant = await call.claimant()
    inspector = await call.inspector()
    await inspector.call("record_start")
    await claimant.close()
    await inspector.wait_for("recording", lambda d: d["active"] is False)
    assert call.media.recording == set()


@pytest.mark.parametrize("command", ["screenshot", "record_start", "record_stop"])
async def test_claimant_may_not_capture(call: Call, command: str) -> None:
    claimant = await call.claimant()
    assert (await claimant.call(command))["error"]["code"] == "forbidden"
    assert call.media.shots == [] and call.media.recording == set()


async def test_captures_without_the_claimant_camera_are_refused_clearly(make_api: MakeApi) -> None:
    api = await make_api()  # the real media plane, but nobody has sent any video
    invite = await api.invite()
    peer = Peer("/call")
    await peer.connect(str(api.client.make_url("/")), {"jwt": api.token("inspector"), "invite_id": invite["id"]})
    try:
        assert (await peer.call("join"))["ok"]
        for command in ("screenshot", "record_start"):
            ack = await peer.call(command)
            assert ack["error"]["code"] == "media_unavailable"
        assert (await peer.call("record_stop"))["error"]["code"] == "not_recording"
    finally:
        await peer.close()
