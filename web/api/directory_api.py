"""Directory upserts by the claims platform: portals, users, cases with contacts, tasks and members."""

from __future__ import annotations

from aiohttp import web

from rooms import directory
from rooms.models import Case, Contact, Member, Portal, Task, User
from web.api.endpoint import Endpoint, json_out, read_body, require_platform
from web.keys import engine_key
from web.schemas import CaseIn, PortalIn, Stored, UserIn


async def put_portal(request: web.Request) -> web.StreamResponse:
    require_platform(request)
    portal_id = request.match_info["portal_id"]
    body = await read_body(request, PortalIn)
    portal = Portal(
        id=portal_id,
        name=body.name,
        insurer_company=body.insurer_company,
        language=body.language,
        remote_video_enabled=body.remote_video_enabled,
        invite_link_lifetime_hours=body.invite_link_lifetime_hours,
        sms_code_required=body.sms_code_required,
        external_case_handler_rights=frozenset(body.external_case_handler_rights),
    )
    async with request.app[engine_key].begin() as conn:
        await directory.put_portal(conn, portal)
    return json_out(Stored(id=portal_id))


async def put_user(request: web.Request) -> web.StreamResponse:
    require_platform(request)
    user_id = request.match_info["user_id"]
    b = await read_body(request, UserIn)
    async with request.app[engine_key].begin() as conn:
        await directory.put_user(conn, User(user_id, b.name, b.email, b.company, b.office, b.phone))
    return json_out(Stored(id=user_id))


async def put_case(request: web.Request) -> web.StreamResponse:
    require_platform(request)
    case_id = request.match_info["case_id"]
    b = await read_body(request, CaseIn)
    case = Case(
        id=case_id,
        portal_id=b.portal_id,
        reference=b.reference,
        title=b.title,
        address=b.address,
        contacts=tuple(Contact(c.id, c.name, c.role, c.phone, c.email) for c in b.contacts),
        tasks=tuple(Task(t.id, t.name, t.kind) for t in b.tasks),
        members=tuple(Member(m.user_id, m.role, m.task_id) for m in b.members),
    )
    async with request.app[engine_key].begin() as conn:
        await directory.put_case(conn, case)
    return json_out(Stored(id=case_id))


ENDPOINTS = [
    Endpoint("PUT", "/portals/{portal_id}", put_portal, "Create or replace a portal", "directory",
             auth="platform", body=PortalIn, response=Stored),
    Endpoint("PUT", "/users/{user_id}", put_user, "Create or replace a staff user", "directory",
             auth="platform", body=UserIn, response=Stored),
    Endpoint("PUT", "/cases/{case_id}", put_case, "Create or replace a case with its contacts, tasks and members",
             "directory", auth="platform", body=CaseIn, response=Stored),
]
