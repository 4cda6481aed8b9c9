from tests.support.world import Api


async def test_health_answers_ok(api: Api) -> None:
    status, body = await api.call("GET", "/healthz")
    assert (status, body) == (200, {"status": "ok"})
