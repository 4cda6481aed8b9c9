"""OpenAPI document, health, readiness, metrics and the demo-only routes."""

from __future__ import annotations

from typing import Any

from tests.conftest import MakeApi
from tests.support.world import Api
from web.api.views import API as API_PREFIX
from web.app import endpoints


async def test_openapi_lists_every_endpoint_with_its_schemas(api: Api) -> None:
    status, doc = await api.call("GET", "/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    for ep in endpoints(api.settings):
        op = doc["paths"][API_PREFIX + ep.path][ep.method.lower()]
        if ep.body is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    assert "InviteCreate" in doc["components"]["schemas"]


async def test_every_schema_reference_resolves(api: Api) -> None:
    _, doc = await api.call("GET", "/api/v1/openapi.json")
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            refs.extend(v for k, v in node.items() if k == "$ref")
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    targets = {f"#/components/schemas/{name}" for name in doc["components"]["schemas"]}
    # The whole reference: a query parameter once pointed at `#/$defs/MediaKind`, nowhere in the document.
    assert refs and set(refs) <= targets, set(refs) - targets


async def test_ready_checks_database_and_storage(api: Api) -> None:
    status, body = await api.call("GET", "/readyz")
    assert (status, body["checks"]) == (200, {"database": True, "object_store": True, "signalling": True})


async def test_metrics_count_requests_by_route(api: Api) -> None:
    await api.call("GET", "/api/v1/cases/case-std/invites", user="viewer")
    status, text = await api.call("GET", "/metrics")
    assert status == 200
    assert b'route="/api/v1/cases/{case_id}/invites",status="200"' in text


async def test_dev_routes_exist_only_in_demo_mode(make_api: MakeApi) -> None:
    plain = await make_api(seed=False)
    assert (await plain.call("GET", "/dev/demo"))[0] == 404
    assert (await plain.call("GET", "/api/v1/dev/outbox"))[0] == 404
    demo = await make_api(seed=False, demo=True)
    status, body = await demo.call("GET", "/dev/demo")
    assert status == 200 and body["case_id"] == "demo-case"
    status, page = await demo.call("GET", "/dev/outbox")
    assert status == 200 and b"Outbox" in page


async def test_demo_user_tokens_work_against_the_api(make_api: MakeApi) -> None:
    demo = await make_api(seed=False, demo=True)
    _, info = await demo.call("GET", "/dev/demo")
    by_access = {u["access"]: u["token"] for u in info["users"]}
    status, listing = await demo.call("GET", "/api/v1/cases/demo-case/invites", token=by_access["read"])
    assert (status, listing["access"], listing["can_invite"]) == (200, "read", False)
    status, listing = await demo.call("GET", "/api/v1/cases/demo-case/invites", token=by_access["full"])
    assert (status, listing["can_invite"]) == (200, True)


async def test_metrics_show_what_a_soak_watches(api: Api) -> None:
    _, text = await api.call("GET", "/metrics")
    values = {line.split()[0]: float(line.split()[1]) for line in text.decode().splitlines()
              if line.startswith("claimcam_") and " " in line and not line.startswith("#")}
    assert values["claimcam_peer_connections"] == 0 and values["claimcam_calls_with_media"] == 0
    assert values["claimcam_asyncio_tasks"] >= 1 and values["claimcam_open_fds"] > 3
    assert values["claimcam_rss_bytes"] > 10 * 2**20 and values["claimcam_threads"] >= 1
