"""Guessing link tokens: unknown links cost the client, over REST and /call alike, until it is refused."""

from __future__ import annotations

import pytest

from tests.conftest import MakeApi
from tests.support.api_tools import claimant_token
from tests.support.sio_peer import Peer, Refused
from tests.support.world import Api

BURST = 20  # FailureLimiter's default


async def test_unknown_links_exhaust_the_budget_then_every_link_request_waits(api: Api) -> None:
    invite = await api.invite()
    good = await claimant_token(api, invite["id"])
    assert (await api.request("GET", f"/api/v1/join/{good}")).status == 200  # successes cost nothing
    for i in range(BURST):
        assert (await api.request("GET", f"/api/v1/join/guess-{i:04d}-{'x' * 20}")).status == 404
    refused = await api.request("GET", "/api/v1/join/guess-next-xxxxxxxxxxxxxxxxxxxx")
    assert refused.status == 429 and refused.body["error"]["code"] == "too_many_attempts"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # The address is refused as a whole while it waits, its good link included; other pages are not.
    assert (await api.request("GET", f"/api/v1/join/{good}")).status == 429
    assert (await api.request("GET", "/api/v1/cases/case-std/invites", user="inspector")).status == 200


async def test_the_call_namespace_spends_the_same_budget(make_api: MakeApi) -> None:
    api = await make_api()
    url = str(api.client.make_url("/"))
    codes = []
    for i in range(BURST + 1):
        peer = Peer("/call")
        with pytest.raises(Refused) as refused:
            await peer.connect(url, {"token": f"guess-{i:04d}-{'y' * 20}"})
        codes.append(refused.value.code)
        await peer.close()
    assert codes[:BURST] == ["not_found"] * BURST and codes[BURST] == "too_many_attempts"
    assert (await api.request("GET", "/api/v1/join/anything-xxxxxxxxxxxxxxxxxxxxxxxx")).status == 429
