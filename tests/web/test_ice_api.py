"""GET /api/v1/ice-servers (staff) and /api/v1/join/{token}/ice-servers (claimant), and the ICE settings."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import aioice.ice
import pytest

from media.ice import IceSettings, installed_host_addresses, server_rtc_configuration
from tests.conftest import MakeApi
from tests.support.api_tools import assert_error, claimant_token
from tests.support.world import Api
from web.settings import SettingsError, load_settings

SECRET = "the-static-auth-secret"
URLS = ["turn:127.0.0.1:3478?transport=udp", "turns:127.0.0.1:5349?transport=tcp"]
NOW = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)  # a fixed clock, so the expiry is exact


def password_for(username: str, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


async def turn_api(make_api: MakeApi, ttl_s: int = 3600) -> Api:
    return await make_api(clock=lambda: NOW, turn_urls=", ".join(URLS), turn_secret=SECRET, turn_ttl_s=ttl_s)


# ---- staff ----


async def test_staff_ice_servers_need_a_bearer_token(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/ice-servers")
    assert_error(status, body, 401, "missing_token")


async def test_staff_ice_servers_refuse_a_forged_token(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/ice-servers", token=api.token("inspector") + "x")
    assert_error(status, body, 401)


async def test_staff_get_no_ice_servers_when_no_turn_is_configured(api: Api) -> None:
    status, body = await api.call("GET", "/api/v1/ice-servers", user="inspector")
    assert (status, body) == (200, {"ice_servers": [], "ttl_s": 3600})


async def test_staff_get_turn_credentials_of_their_user_id_that_verify_against_the_secret(
    make_api: MakeApi,
) -> None:
    api = await turn_api(make_api)
    status, body = await api.call("GET", "/api/v1/ice-servers", user="viewer")
    assert status == 200, body
    username = f"{int(NOW.timestamp()) + 3600}:viewer"
    assert body == {
        "ice_servers": [{"urls": URLS, "username": username, "credential": password_for(username)}],
        "ttl_s": 3600,
    }
    assert body["ice_servers"][0]["credential"] != password_for(username, "another-secret")


async def test_any_authenticated_staff_user_gets_credentials_even_without_cases(make_api: MakeApi) -> None:
    api = await turn_api(make_api)
    status, body = await api.call("GET", "/api/v1/ice-servers", token=api.token("nobody-known"))
    assert status == 200, body
    assert body["ice_servers"][0]["username"].endswith(":nobody-known")


async def test_the_configured_ttl_sets_the_credentials_expiry(make_api: MakeApi) -> None:
    api = await turn_api(make_api, ttl_s=120)
    _, body = await api.call("GET", "/api/v1/ice-servers", user="inspector")
    username = body["ice_servers"][0]["username"]
    assert body["ttl_s"] == 120
    assert username == f"{int(NOW.timestamp()) + 120}:inspector"
    assert body["ice_servers"][0]["credential"] == password_for(username)


# ---- claimant ----


async def test_claimant_gets_credentials_of_his_invite_with_a_valid_link(make_api: MakeApi) -> None:
    api = await turn_api(make_api)
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    status, body = await api.call("GET", f"/api/v1/join/{token}/ice-servers")
    assert status == 200, body
    username = f"{int(NOW.timestamp()) + 3600}:claimant-{invite['id']}"
    assert body == {
        "ice_servers": [{"urls": URLS, "username": username, "credential": password_for(username)}],
        "ttl_s": 3600,
    }


async def test_claimant_gets_no_ice_servers_when_no_turn_is_configured(api: Api) -> None:
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    status, body = await api.call("GET", f"/api/v1/join/{token}/ice-servers")
    assert (status, body) == (200, {"ice_servers": [], "ttl_s": 3600})


async def test_a_closed_link_gets_410_and_no_credentials(make_api: MakeApi) -> None:
    api = await turn_api(make_api)
    invite = await api.invite()
    token = await claimant_token(api, invite["id"])
    status, out = await api.call("POST", f"/api/v1/invites/{invite['id']}/close", user="inspector")
    assert status == 200, out
    status, body = await api.call("GET", f"/api/v1/join/{token}/ice-servers")
    assert_error(status, body, 410, "invite_closed")


@pytest.mark.parametrize("token", ["garbage", "A" * 32, "x" * 2000])
async def test_an_unknown_link_gets_404(make_api: MakeApi, token: str) -> None:
    api = await turn_api(make_api)
    status, body = await api.call("GET", f"/api/v1/join/{token}/ice-servers")
    assert_error(status, body, 404, "not_found")


# ---- OpenAPI ----


async def test_both_ice_server_endpoints_are_in_the_openapi_document(api: Api) -> None:
    status, doc = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200
    ref = "#/components/schemas/IceServers"
    staff = doc["paths"]["/api/v1/ice-servers"]["get"]
    claimant = doc["paths"]["/api/v1/join/{token}/ice-servers"]["get"]
    for op in (staff, claimant):
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] == ref
    assert staff["security"] == [{"bearer": []}] and "401" in staff["responses"]
    assert "security" not in claimant and {"404", "410"} <= set(claimant["responses"])
    assert set(doc["components"]["schemas"]["IceServers"]["properties"]) == {"ice_servers", "ttl_s"}


# ---- settings and start-up ----


def test_ice_settings_default_to_no_turn_and_no_stun(tmp_path: Path) -> None:
    ice = load_settings({}, data_dir=str(tmp_path)).ice()
    assert ice == IceSettings()
    assert server_rtc_configuration(ice).iceServers == []


def test_ice_settings_are_read_from_comma_separated_variables() -> None:
    env = {
        "CLAIMCAM_ICE_HOST_ADDRESSES": "127.0.0.1, ::1",
        "CLAIMCAM_ICE_PUBLIC_ADDRESS": "203.0.113.7",
        "CLAIMCAM_TURN_URLS": " , ".join(URLS),
        "CLAIMCAM_TURN_SECRET": SECRET,
        "CLAIMCAM_TURN_TTL_S": "300",
    }
    assert load_settings(env).ice() == IceSettings(("127.0.0.1", "::1"), "203.0.113.7", tuple(URLS), SECRET, 300)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLAIMCAM_TURN_URLS": URLS[0]}, "secret"),
        ({"CLAIMCAM_TURN_URLS": "stun:127.0.0.1:3478", "CLAIMCAM_TURN_SECRET": SECRET}, "turn: or turns:"),
        ({"CLAIMCAM_TURN_URLS": "127.0.0.1:3478", "CLAIMCAM_TURN_SECRET": SECRET}, "turn: or turns:"),
        ({"CLAIMCAM_ICE_HOST_ADDRESSES": "eth0"}, "not an IP address"),
        ({"CLAIMCAM_ICE_PUBLIC_ADDRESS": "203.0.113"}, "not an IP address"),
        ({"CLAIMCAM_TURN_TTL_S": "0"}, "at least 1"),
    ],
)
def test_bad_ice_settings_stop_start_up_with_a_clear_error(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


async def test_the_app_installs_its_host_addresses_while_it_runs(make_api: MakeApi) -> None:
    default = aioice.ice.get_host_addresses
    api = await make_api(seed=False, ice_host_addresses="127.0.0.1")
    assert installed_host_addresses() == ("127.0.0.1",)
    assert aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True) == ["127.0.0.1"]
    await api.client.close()
    assert aioice.ice.get_host_addresses is default


async def test_openapi_does_not_promise_case_errors_for_staff_ice_servers(api: Api) -> None:
    _, doc = await api.call("GET", "/api/v1/openapi.json")
    responses = doc["paths"]["/api/v1/ice-servers"]["get"]["responses"]
    assert "401" in responses and "403" not in responses and "404" not in responses
