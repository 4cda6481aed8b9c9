"""Domain records to response bodies."""

from __future__ import annotations

from rooms.access import Access, invite_actions
from rooms.event_chain import ChainCheck
from rooms.invites import CaseView
from rooms.models import Event, Invite, MediaItem
from web.schemas import (
    ActorOut,
    CaseOut,
    ContactOut,
    EventOut,
    Integrity,
    InviteOut,
    MediaOut,
    PersonOut,
    TaskOut,
)

API = "/api/v1"


def access_name(access: Access) -> str:
    return "full" if access is Access.FULL else "read"


def case_out(view: CaseView) -> CaseOut:
    c = view.case
    return CaseOut(
        id=c.id,
        reference=c.reference,
        title=c.title,
        address=c.address,
        portal_id=view.portal.id,
        language=view.portal.language,
        sms_code_required=view.portal.sms_code_required,
        access=access_name(view.access),
        can_invite=view.access is Access.FULL,
        contacts=[
            ContactOut(id=x.id, name=x.name, role=x.role, phone=x.phone, email=x.email, methods=list(x.methods))
            for x in c.contacts
        ],
        tasks=[TaskOut(id=t.id, name=t.name, kind=t.kind) for t in c.tasks],
    )


def invite_out(invite: Invite, access: Access) -> InviteOut:
    return InviteOut(
        id=invite.id,
        case_id=invite.case_id,
        task_id=invite.task_id,
        task_name=invite.task_name,
        contact_id=invite.contact_id,
        contact_name=invite.contact_name,
        method=invite.method,
        destination=invite.destination,
        sender=PersonOut(id=invite.sender_id, name=invite.sender_name, company=invite.sender_company),
        status=invite.status.value,
        created_at=invite.created_at,
        expires_at=invite.expires_at,
        closed_at=invite.closed_at,
        closed_reason=invite.closed_reason,
        resend_count=invite.resend_count,
        pictures=invite.pictures,
        videos=invite.videos,
        actions=invite_actions(access, invite),
    )


def event_out(e: Event) -> EventOut:
    return EventOut(
        seq=e.seq,
        at=e.at,
        kind=e.kind,
        actor=ActorOut(kind=e.actor.kind, id=e.actor.id, name=e.actor.name),
        data=e.data,
        hash=e.hash,
    )


def integrity(check: ChainCheck) -> Integrity:
    return Integrity(ok=check.ok, broken_at=check.broken_at)


def media_out(m: MediaItem) -> MediaOut:
    return MediaOut(
        id=m.id,
        kind=m.kind,
        invite_id=m.invite_id,
        case_id=m.case_id,
        task_id=m.task_id,
        content_type=m.content_type,
        size=m.size,
        sha256=m.sha256,
        width=m.width,
        height=m.height,
        duration_s=m.duration_s,
        captured_at=m.captured_at,
        captured_by=PersonOut(id=m.captured_by_id, name=m.captured_by_name, company=m.owner_company),
        filing=m.filing,
        visibility=m.visibility,
        shared_with_customer=m.shared_with_customer,
        state=m.state,
        content_url=f"{API}/media/{m.id}/content",
        thumbnail_url=f"{API}/media/{m.id}/thumbnail" if m.thumbnail_key else None,
    )
