"""Calls management: a case's invites, creating, re-sending and closing them, and their event logs."""

from __future__ import annotations

from aiohttp import web

from rooms import directory, event_log, invite_store
from rooms.access import Access
from rooms.invites import view_case
from web.api.endpoint import Endpoint, json_out, read_body, staff_user
from web.api.views import access_name, case_out, event_out, integrity, invite_out
from web.keys import engine_key, invites_key, metrics_key
from web.schemas import (
    CaseEvents,
    CaseOut,
    InviteCreate,
    InviteEventGroup,
    InviteEvents,
    InviteList,
    InviteOut,
    LinkInfo,
)


async def get_case(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        view = await view_case(conn, request.match_info["case_id"], user.id)
    return json_out(case_out(view))


async def list_invites(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    view, invites = await request.app[invites_key].list_for_case(request.match_info["case_id"], user.id)
    return json_out(
        InviteList(
            case_id=view.case.id,
            access=access_name(view.access),
            can_invite=view.access is Access.FULL,
            invites=[invite_out(i, view.access) for i in invites],
        )
    )


async def create_invite(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    body = await read_body(request, InviteCreate)
    invite = await request.app[invites_key].create(
        request.match_info["case_id"], user, body.contact_id, body.method, body.task_id
    )
    request.app[metrics_key].invites.labels(str(invite.method)).inc()
    async with request.app[engine_key].connect() as conn:
        view = await view_case(conn, invite.case_id, user.id)
    return json_out(invite_out(invite, view.access), status=201)


async def get_invite(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        view, invite = await request.app[invites_key].view_invite(conn, request.match_info["invite_id"], user.id)
    return json_out(invite_out(invite, view.access))


async def resend_invite(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    service = request.app[invites_key]
    invite = await service.resend(request.match_info["invite_id"], user)
    async with request.app[engine_key].connect() as conn:
        view, invite = await service.view_invite(conn, invite.id, user.id)
    return json_out(invite_out(invite, view.access))


async def close_invite(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    service = request.app[invites_key]
    invite = await service.close(request.match_info["invite_id"], user)
    async with request.app[engine_key].connect() as conn:
        view, invite = await service.view_invite(conn, invite.id, user.id)
    return json_out(invite_out(invite, view.access))


async def invite_events(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        _, invite = await request.app[invites_key].view_invite(conn, request.match_info["invite_id"], user.id)
        events = await event_log.list_for_invite(conn, invite.id)
        check = await event_log.verify(conn, invite.id, events)
    return json_out(
        InviteEvents(invite_id=invite.id, integrity=integrity(check), events=[event_out(e) for e in events])
    )


async def case_events(request: web.Request) -> web.StreamResponse:
    user = await staff_user(request)
    async with request.app[engine_key].connect() as conn:
        view = await view_case(conn, request.match_info["case_id"], user.id)
        invites = await invite_store.list_for_case(conn, view.case.id)
        grouped = await event_log.list_for_case(conn, view.case.id)
        groups = []
        for invite in invites:
            events = grouped.get(invite.id, [])
            check = await event_log.verify(conn, invite.id, events)
            groups.append(
                InviteEventGroup(
                    invite=invite_out(invite, view.access),
                    integrity=integrity(check),
                    events=[event_out(e) for e in events],
                )
            )
    return json_out(CaseEvents(case_id=view.case.id, groups=groups))


async def link_info(request: web.Request) -> web.StreamResponse:
    """What the claimant's page shows before joining; the token is the only credential."""
    invite = await request.app[invites_key].open_link(request.match_info["token"])
    async with request.app[engine_key].connect() as conn:
        case = await directory.get_case(conn, invite.case_id)
        portal = await directory.get_portal(conn, case.portal_id)
    return json_out(
        LinkInfo(
            invite_id=invite.id,
            status=str(invite.status),
            case_reference=case.reference,
            company=invite.sender_company or portal.insurer_company,
            inspector=invite.sender_name,
            language=portal.language,
            sms_code_required=portal.sms_code_required,
        )
    )


ENDPOINTS = [
    Endpoint("GET", "/cases/{case_id}", get_case, "A case with its contacts, tasks and the caller's access",
             "calls", response=CaseOut),
    Endpoint("GET", "/cases/{case_id}/invites", list_invites, "The case's invites, each with the caller's actions",
             "calls", response=InviteList),
    Endpoint("POST", "/cases/{case_id}/invites", create_invite, "Invite a contact to a video call by SMS or email",
             "calls", body=InviteCreate, response=InviteOut, status=201),
    Endpoint("GET", "/invites/{invite_id}", get_invite, "One invite", "calls", response=InviteOut),
    Endpoint("POST", "/invites/{invite_id}/resend", resend_invite,
             "Send the same link again by the same method", "calls", response=InviteOut),
    Endpoint("POST", "/invites/{invite_id}/close", close_invite,
             "Close the invite: the link stops working at once", "calls", response=InviteOut),
    Endpoint("GET", "/invites/{invite_id}/events", invite_events, "The invite's event log with its integrity check",
             "logs", response=InviteEvents),
    Endpoint("GET", "/cases/{case_id}/events", case_events, "Every invite's event log in the case, grouped",
             "logs", response=CaseEvents),
    Endpoint("GET", "/join/{token}", link_info, "What a claimant's link opens (the token is the credential)",
             "claimant", auth="link", response=LinkInfo),
]
