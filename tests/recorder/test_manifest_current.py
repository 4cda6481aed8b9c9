"""manifest.json follows every change of its invite, not only captures."""

from __future__ import annotations

import json
from typing import Any

from recorder.layout import manifest_key
from tests.support.api_tools import add_media
from tests.support.world import Api
from web.keys import object_store_key


async def manifest(api: Api, invite: dict[str, Any]) -> dict[str, Any]:
    raw = await api.client.app[object_store_key].get(manifest_key(invite["case_id"], invite["id"]))
    return dict(json.loads(raw))


async def test_new_invite_has_a_manifest(api: Api) -> None:
    invite = await api.invite()
    assert (await manifest(api, invite))["invite"]["status"] == "INVITED"


async def test_closing_rewrites_the_manifest(api: Api) -> None:
    invite = await api.invite()
    await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    written = await manifest(api, invite)
    assert written["invite"]["status"] == "CLOSED"
    assert written["events"][-1]["kind"] in {"closed", "sent"}
    assert "closed" in [e["kind"] for e in written["events"]]


async def test_moving_a_media_item_rewrites_the_manifest(api: Api) -> None:
    invite = await api.invite()
    item = await add_media(api, invite)
    status, _ = await api.call(
        "PATCH", f"/api/v1/media/{item.id}", user="inspector", json={"filing": "task_multimedia_extra"}
    )
    assert status == 200
    [listed] = (await manifest(api, invite))["media"]
    assert listed["filing"] == "task_multimedia_extra"
