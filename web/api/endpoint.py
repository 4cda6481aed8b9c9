"""Endpoint declarations and the helpers every handler uses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel

from rooms import directory
from rooms.models import User
from rooms.staff_auth import Principal
from web.auth import bearer
from web.errors import ApiError, Handler
from web.keys import engine_key, verifier_key

# staff: a staff token, answers about one case (403 read-only, 404 unknown); signed_in: any staff
# token, nothing case-specific; platform: scope platform; link: the claimant's link token.
Auth = Literal["staff", "signed_in", "platform", "link", "none"]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "staff"
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    demo_only: bool = False
    produces: str = "application/json"
    # For the OpenAPI document: error responses beyond those `auth` implies, and optional request headers.
    errors: tuple[tuple[int, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()


def principal(request: web.Request) -> Principal:
    return request.app[verifier_key].verify(bearer(request.headers.get("Authorization")))


async def staff_user(request: web.Request) -> User:
    """The calling staff member; an unknown id is a user with no cases (so every case is a 404)."""
    p = principal(request)
    async with request.app[engine_key].connect() as conn:
        user = await directory.get_user(conn, p.user_id)
    return user or User(id=p.user_id, name=p.name or p.user_id)


def require_platform(request: web.Request) -> Principal:
    p = principal(request)
    if not p.is_platform:
        raise ApiError(403, "forbidden", "directory changes need a token with scope 'platform'")
    return p


async def read_body(request: web.Request, model: type[M]) -> M:
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()  # bounded by the app's client_max_size (413 beyond it)
    return model.model_validate_json(raw)


def read_query(request: web.Request, model: type[M]) -> M:
    return model.model_validate(dict(request.query), strict=False)


def json_out(body: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=body.model_dump_json(), status=status, content_type="application/json")

