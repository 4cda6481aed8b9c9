"""The directory every API test starts from, put through the platform API itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from rooms.staff_auth import issue_hs256
from web.settings import Settings

PORTALS: dict[str, dict[str, Any]] = {
    # External case handlers may look but not start inspections here.
    "p-std": {"name": "Standard portal", "insurer_company": "Aurora Insurance",
              "external_case_handler_rights": ["customer_communication"]},
    # Here they may run inspections themselves.
    "p-ech": {"name": "ECH portal", "insurer_company": "Aurora Insurance",
              "external_case_handler_rights": ["start_inspection"]},
    "p-off": {"name": "Remote video off", "insurer_company": "Aurora Insurance", "remote_video_enabled": False},
}

USERS: dict[str, dict[str, Any]] = {
    "inspector": {"name": "Ines Inspector", "company": "Nordbuild Oy", "email": "ines@nordbuild.example"},
    "handler": {"name": "Hannu Handler", "company": "Aurora Insurance"},
    "pm": {"name": "Pia Manager", "company": "Buildco"},
    "viewer": {"name": "Vera Viewer", "company": "Aurora Insurance"},
    "ech": {"name": "Eero External", "company": "ClaimsPlus Ltd"},
    "outsider": {"name": "Otto Outsider", "company": "Nordbuild Oy"},
}

CONTACTS = [
    {"id": "c-both", "name": "Paula Policyholder", "role": "policy_holder", "phone": "+358401234567",
     "email": "paula@example.com"},
    {"id": "c-phone", "name": "Pekka Phone", "phone": "+358407654321"},
    {"id": "c-email", "name": "Eeva Email", "email": "eeva@example.com"},
]
TASKS = [
    {"id": "t-main", "name": "Main inspection", "kind": "main_inspection"},
    {"id": "t-repair", "name": "Floor repair", "kind": "repair"},
]

CASES: dict[str, dict[str, Any]] = {
    "case-std": {
        "portal_id": "p-std", "reference": "CLM-1", "title": "Water damage", "contacts": CONTACTS, "tasks": TASKS,
        "members": [
            {"user_id": "inspector", "role": "inspector", "task_id": "t-main"},
            {"user_id": "handler", "role": "case_handler"},
            {"user_id": "pm", "role": "project_manager"},
            {"user_id": "viewer", "role": "viewer"},
            {"user_id": "ech", "role": "external_case_handler"},
        ],
    },
    "case-ech": {
        "portal_id": "p-ech", "reference": "CLM-2", "contacts": CONTACTS, "tasks": TASKS,
        "members": [{"user_id": "ech", "role": "external_case_handler"}, {"user_id": "inspector", "role": "inspector"}],
    },
    "case-off": {
        "portal_id": "p-off", "reference": "CLM-3", "contacts": CONTACTS, "tasks": TASKS,
        "members": [{"user_id": "inspector", "role": "inspector"}],
    },
}

# Expected access of each user in each case: the table the access tests assert against.
ACCESS: dict[str, dict[str, str]] = {
    "case-std": {"inspector": "full", "handler": "full", "pm": "full", "viewer": "read", "ech": "read",
                 "outsider": "none"},
    "case-ech": {"ech": "full", "inspector": "full", "viewer": "none", "outsider": "none"},
    "case-off": {"inspector": "read", "outsider": "none"},
}


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes of any other content type


class Api:
    """A test client that knows the app's JWT secret, so it can speak as any user."""

    def __init__(self, client: TestClient[Any, Any], settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def token(self, user_id: str, *, scope: str = "", ttl_s: int = 3600) -> str:
        return issue_hs256(self.settings.jwt_secret, user_id, scope=scope, ttl_s=ttl_s)

    async def request(
        self,
        method: str,
        path: str,
        *,
        user: str | None = None,
        token: str | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Speak as `user` (a world user id, or "platform"), or with an explicit `token`."""
        h = dict(headers or {})
        if user is not None:
            token = self.token(user, scope="platform" if user == "platform" else "")
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if data is not None and "Content-Type" not in h:
            h["Content-Type"] = "application/json"
        async with self.client.request(method, path, json=json, data=data, headers=h) as resp:
            body: Any = await resp.json() if resp.content_type == "application/json" else await resp.read()
            return Reply(resp.status, dict(resp.headers), body)

    async def call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        reply = await self.request(method, path, **kw)
        return reply.status, reply.body

    async def seed(self) -> None:
        for pid, body in PORTALS.items():
            status, out = await self.call("PUT", f"/api/v1/portals/{pid}", user="platform", json=body)
            assert status == 200, out
        for uid, body in USERS.items():
            status, out = await self.call("PUT", f"/api/v1/users/{uid}", user="platform", json=body)
            assert status == 200, out
        for cid, body in CASES.items():
            status, out = await self.call("PUT", f"/api/v1/cases/{cid}", user="platform", json=body)
            assert status == 200, out

    async def invite(self, case_id: str = "case-std", *, user: str = "inspector", contact: str = "c-both",
                     method: str = "sms", task: str | None = "t-main") -> dict[str, Any]:
        body: dict[str, Any] = {"contact_id": contact, "method": method}
        if task is not None:
            body["task_id"] = task
        status, out = await self.call("POST", f"/api/v1/cases/{case_id}/invites", user=user, json=body)
        assert status == 201, out
        return dict(out)
