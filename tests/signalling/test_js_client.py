"""The hub speaks the browser protocol: the official socket.io-client (npm), run by node."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.signalling.conftest import Call
from tests.support.binaries import find_binary

ROOT = Path(__file__).parents[2]
CLIENT = ROOT / "web" / "node_modules" / "socket.io-client"
SCRIPT = Path(__file__).parent / "js" / "claimant.cjs"


async def run_node(
    url: str, auth: dict[str, Any], until: asyncio.Event | None = None
) -> tuple[int, list[dict[str, Any]]]:
    node = find_binary("node")
    if not CLIENT.is_dir():
        pytest.fail(f"{CLIENT} is missing: run `make setup` (npm ci in web/)")
    proc = await asyncio.create_subprocess_exec(
        node, str(SCRIPT), str(CLIENT), url, json.dumps(auth),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    lines: list[dict[str, Any]] = []
    assert proc.stdout is not None
    async for raw in proc.stdout:
        lines.append(json.loads(raw))
        if until is not None and lines[-1]["step"] == "bad_ack":
            until.set()
    _, err = await proc.communicate()
    sys.stderr.write(err.decode())
    return await proc.wait(), lines


def steps(lines: list[dict[str, Any]], name: str) -> list[Any]:
    return [line["data"] for line in lines if line["step"] == name]


async def test_js_client_joins_chats_and_gets_error_acks(call: Call) -> None:
    inspector = await call.inspector()
    scenario_done = asyncio.Event()
    runner = asyncio.create_task(run_node(call.url, {"token": call.token}, scenario_done))
    got = await inspector.wait_for("chat", within_s=10)
    assert (got["text"], got["from"]["role"]) == ("Hello from the phone", "claimant")
    await asyncio.wait_for(scenario_done.wait(), 10)
    assert (await inspector.call("chat", {"text": "bye"}))["ok"]
    code, lines = await asyncio.wait_for(runner, 15)
    assert code == 0, lines
    [joined] = steps(lines, "joined")
    assert joined["ok"] and joined["you"]["role"] == "claimant"
    assert steps(lines, "chat_ack")[0]["message"]["text"] == "Hello from the phone"
    assert steps(lines, "bad_ack")[0]["error"]["code"] == "invalid_payload"
    assert any(len(p["participants"]) == 2 for p in steps(lines, "presence"))
    assert [m["text"] for m in steps(lines, "chat")] == ["bye"]
    assert await call.status() in {"IN_CALL", "ACTIVE"}


async def test_js_client_sees_the_refusal_reason(call: Call) -> None:
    code, lines = await run_node(call.url, {"token": "A" * 32})
    assert code == 0
    [refusal] = steps(lines, "connect_error")
    assert refusal["data"] == {"code": "not_found"} and refusal["message"]
