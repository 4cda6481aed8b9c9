"""schemathesis against the app's own OpenAPI document, on the real app and its throw-away database.

The CLI runs as a child process against the app this test serves on a free port, so the app's event
loop goes on serving while the test awaits it. Every check schemathesis has runs: no 5xx, status
codes, content types, headers and bodies as documented, bad input refused, authentication not
ignored, a 405 that names what is allowed. Path ids, link tokens and body ids come from the seeded
world most of the time and are generated the rest, so requests reach the handlers' logic instead of
stopping at a 404. Bounded by examples per operation; the seed is in the output to replay a failure.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from tests.conftest import MakeApi
from tests.support.api_tools import add_media, claimant_token, open_invite
from tests.support.world import CASES, CONTACTS, PORTALS, TASKS, Api
from web.api.views import API as API_PREFIX
from web.app import endpoints

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES_PER_OPERATION = 12
RUN_LIMIT_S = 120.0

# A portal whose claimants must confirm an SMS code, so the code endpoints do more than refuse.
CODE_PORTAL = {**PORTALS["p-std"], "name": "Code portal", "sms_code_required": True}
CODE_CASE = {**CASES["case-std"], "portal_id": "p-code", "reference": "CLM-4"}

# The API refuses with 422 what JSON Schema cannot say: member pairs that repeat, a contact or task
# the case does not have. Everything else schema-valid must be accepted (or 401/403/404/409/410/429).
ACCEPTED_OR_SEMANTIC = ["2xx", "3xx", 401, 403, 404, 409, 410, 422, 429]


def binding(dictionary: str, probability: float) -> str:
    return f'{{ dictionary = "{dictionary}", probability = {probability} }}'


def config(world: dict[str, list[str]]) -> str:
    lines = []
    for name, values in world.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]  # a JSON string array is TOML
    lines += ["[generation]", 'database = ":memory:"']
    lines += ["[checks.positive_data_acceptance]", f"expected-statuses = {json.dumps(ACCEPTED_OR_SEMANTIC)}"]
    # Mostly the world's ids, sometimes generated ones: both the logic and the refusals get exercised.
    # Link tokens almost always: unknown ones spend the client's budget and then every link is a 429.
    lines += ["[parameters]"]
    lines += [f'"path.{name}" = {binding(name, 0.8)}' for name in ("case_id", "task_id", "invite_id", "media_id")]
    lines += [f'"path.token" = {binding("token", 0.97)}']
    lines += [f'"body.{name}" = {binding(name, 0.8)}' for name in ("contact_id", "task_id")]
    # Upserts replace what they name: they get ids of their own, so the world the others use stays.
    lines += [
        "[[operations]]",
        'include-tag = "directory"',
        "parameters = { "
        + ", ".join(f'"path.{name}" = {binding("new_id", 0.8)}' for name in ("case_id", "portal_id", "user_id"))
        + " }",
    ]
    return "\n".join(lines) + "\n"


async def world_ids(api: Api) -> dict[str, list[str]]:
    for path, body in (("/portals/p-code", CODE_PORTAL), ("/cases/case-code", CODE_CASE)):
        status, out = await api.call("PUT", API_PREFIX + path, user="platform", json=body)
        assert status == 200, out
    # Closing and re-sending reach these; the links belong to others, so closing cannot end them all.
    invites = [await open_invite(api, case_id) for case_id in ("case-std", "case-std", "case-ech")]
    invites.append(await open_invite(api, "case-std", method="email", task=None))
    links = [
        await open_invite(api, "case-std"),
        await open_invite(api, "case-std", method="email"),
        await api.invite("case-code"),
    ]
    items = [await add_media(api, invites[0]), await add_media(api, invites[-1], task_id=None)]
    return {
        "case_id": [*CASES, "case-code"],
        "task_id": [str(t["id"]) for t in TASKS],
        "invite_id": [i["id"] for i in invites],
        "media_id": [i.id for i in items],
        "token": [await claimant_token(api, i["id"]) for i in links],
        "contact_id": [str(c["id"]) for c in CONTACTS],
        "new_id": ["fuzz-1", "fuzz-2", "fuzz-3"],
    }


async def run_schemathesis(api: Api, cfg: Path, token: str, *options: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "--config-file",
        str(cfg),
        "run",
        str(api.client.make_url(f"{API_PREFIX}/openapi.json")),
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES_PER_OPERATION),
        "--header",
        f"Authorization: Bearer {token}",
        "--request-timeout",
        "10",
        "--workers",
        "1",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=cfg.parent,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), RUN_LIMIT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode or 0, out.decode(errors="replace")


async def test_api_keeps_to_its_openapi_document_under_schemathesis(make_api: MakeApi, tmp_path: Path) -> None:
    api = await make_api()
    # Full access to the world's cases and the platform scope: every operation can succeed.
    token = api.token("inspector", scope="platform")
    cfg = tmp_path / "schemathesis.toml"
    cfg.write_text(config(await world_ids(api)))
    # The claimant's link operations first, on the world's links: the coverage phase's made-up
    # tokens would spend the client's budget for unknown links, and then every link answers 429.
    code, out = await run_schemathesis(api, cfg, token, "--include-tag", "claimant", "--phases", "examples,fuzzing")
    assert code == 0, out[-20_000:]
    assert "Rate limited" not in out, out[-5_000:]
    code, out = await run_schemathesis(api, cfg, token)
    assert code == 0, out[-20_000:]
    tested = next(line for line in out.splitlines() if line.strip().startswith("Tested:"))
    assert tested.split()[-1] == str(len(endpoints(api.settings))), out[-5_000:]
