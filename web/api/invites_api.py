"""Calls management: a case's invites, creating, re-sending and closing them, and their event logs;
and the claimant's side of a link: what it opens, and the SMS security code step."""

from __future__ import annotations

from aiohttp import web

from rooms import directory, event_log, invite_store, link_codes
from rooms.access import Access
from rooms.invites import view_case
from web.api.endpoint import Endpoint, json_out, read_body, staff_user
from web.api.views import access_name, case_out, event_out, integrity, invite_out
from web.keys import engine_key, invites_key, metrics_key
from web.schemas import (
    CaseEvents,
    CaseOut,
    CodeIn,
    CodeSentOut,
    GrantOut,
    InviteCreate,
    InviteEventGroup,
    InviteEvents,
    InviteList,
    InviteOut,
    JoinInfo,
    LinkInfo,
    LockedLinkInfo,
)

# The claimant's grant from a correct SMS security code travels in this header.
GRANT_HEADER = "X-Claimcam-Grant"
GRANT_HEADERS = ((GRANT_HEADER, "The grant from POST /join/{token}/code/verify, when the portal asks for a code"),)


def grant_of(request: web.Request) -> str | None:
    return request.headers.get(GRANT_HEADER)


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
    """What the claimant's page shows before joining; the token is the only credential, and when the
    portal asks for an SMS security code, the page learns no more than how to ask for it until then."""
    service = request.app[invites_key]
    invite = await service.open_link(request.match_info["token"])
    async with request.app[engine_key].connect() as conn:
        case = await directory.get_case(conn, invite.case_id)
        portal = await directory.get_portal(conn, case.portal_id)
        locked = portal.sms_code_required and not await service.codes.granted(conn, invite, grant_of(request))
    company = invite.sender_company or portal.insurer_company
    if locked:
        hint = link_codes.phone_hint(link_codes.phone_of(invite, case))
        return json_out(JoinInfo(LockedLinkInfo(company=company, language=portal.language, phone_hint=hint)))
    return json_out(
        JoinInfo(
            LinkInfo(
                invite_id=invite.id,
                status=str(invite.status),
                case_reference=case.reference,
                company=company,
                inspector=invite.sender_name,
                language=portal.language,
                sms_code_required=portal.sms_code_required,
            )
        )
    )


async def send_code(request: web.Request) -> web.StreamResponse:
    service = request.app[invites_key]
    invite = await service.resolve_link(request.match_info["token"])
    sent = await service.codes.send(invite)
    return json_out(
        CodeSentOut(resend_after_s=sent.resend_after_s, expires_in_s=sent.expires_in_s, phone_hint=sent.phone_hint),
        status=202,
    )


async def verify_code(request: web.Request) -> web.StreamResponse:
    service = request.app[invites_key]
    invite = await service.resolve_link(request.match_info["token"])
    body = await read_body(request, CodeIn)
    grant = await service.codes.verify(invite, body.code)
    return json_out(GrantOut(grant=grant.value, expires_at=grant.expires_at))


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
    Endpoint("GET", "/join/{token}", link_info,
             "What a claimant's link opens (the token is the credential); only how to ask for the SMS "
             "security code until a valid grant comes with it", "claimant", auth="link", response=JoinInfo,
             headers=GRANT_HEADERS),
    Endpoint("POST", "/join/{token}/code", send_code,
             "Send the claimant a new SMS security code (replacing the previous one)", "claimant", auth="link",
             response=CodeSentOut, status=202,
             errors=((409, "The portal asks for no security code"),
                     (422, "No phone number is known for the invite's contact"),
                     (429, "Too soon or too often: once a minute, 5 an hour; see Retry-After"))),
    Endpoint("POST", "/join/{token}/code/verify", verify_code,
             "Check the SMS security code; a correct one earns a grant valid 12 h", "claimant", auth="link",
             body=CodeIn, response=GrantOut,
             errors=((409, "The portal asks for no security code"),
                     (422, "Wrong code (`attempts_left`), no valid code (`code_expired`), or not 6 digits"),
                     (429, "Too many wrong codes: ask for a new one; see Retry-After"))),
]
