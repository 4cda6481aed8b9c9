"""Use cases of calls management: create, re-send, close and expire invites; resolve claimant links.

Every change and the event that records it are written in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from rooms import changes, directory, event_chain, event_log, invite_store, link_codes, link_tokens
from rooms.access import Access, case_access
from rooms.changes import Change, ChangeFeed
from rooms.clock import Clock
from rooms.delivery import queue
from rooms.delivery.messages import OutgoingMessage, render
from rooms.errors import Forbidden, InvalidTransition, LinkUnusable, NoPhoneNumber, NotFound, Unprocessable
from rooms.models import Actor, Case, Invite, InviteStatus, Method, Portal, User


@dataclass(frozen=True, slots=True)
class CaseView:
    """A case as one user sees it: with its portal and the user's access."""

    case: Case
    portal: Portal
    access: Access


async def view_case(conn: AsyncConnection, case_id: str, user_id: str) -> CaseView:
    """The case for this user; unknown and forbidden cases look the same (NotFound)."""
    try:
        case = await directory.get_case(conn, case_id)
    except NotFound:
        raise NotFound(f"case {case_id} not found") from None
    portal = await directory.get_portal(conn, case.portal_id)
    access = case_access(user_id, case, portal)
    if access is Access.NONE:
        raise NotFound(f"case {case_id} not found")
    return CaseView(case, portal, access)


def require_full(view: CaseView) -> None:
    if view.access is not Access.FULL:
        raise Forbidden("read-only access to this case")


class InviteService:
    def __init__(
        self,
        engine: AsyncEngine,
        link_key: link_tokens.LinkKey,
        public_url: str,
        clock: Clock,
        feed: ChangeFeed | None = None,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._key = link_key
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        self._feed = feed or ChangeFeed()
        self._on_queued = on_queued
        self.codes = link_codes.LinkCodes(engine, link_key, clock, on_queued)

    async def _publish(self, kind: str, invite: Invite, **data: object) -> None:
        await self._feed.publish(Change(kind, invite.id, invite.case_id, dict(data)))

    def link(self, token: str) -> str:
        return f"{self._public_url}/join/{token}"

    async def view_invite(self, conn: AsyncConnection, invite_id: str, user_id: str) -> tuple[CaseView, Invite]:
        try:
            invite = await invite_store.get(conn, invite_id)
        except NotFound:
            raise NotFound(f"invite {invite_id} not found") from None
        try:
            view = await view_case(conn, invite.case_id, user_id)
        except NotFound:
            raise NotFound(f"invite {invite_id} not found") from None
        return view, invite

    async def create(
        self, case_id: str, sender: User, contact_id: str, method: Method, task_id: str | None
    ) -> Invite:
        now = self._clock()
        async with self._engine.begin() as conn:
            view = await view_case(conn, case_id, sender.id)
            require_full(view)
            contact = view.case.contact(contact_id)
            if contact is None:
                raise Unprocessable(f"contact {contact_id} is not a contact of this case")
            destination = contact.address_for(method)
            if not destination:
                missing = "phone number" if method is Method.SMS else "email address"
                raise Unprocessable(f"contact {contact.name} has no {missing}")
            if view.portal.sms_code_required and not contact.phone:
                raise NoPhoneNumber(
                    f"claimants of this portal need a security code by SMS, and {contact.name} has no phone number"
                )
            task = view.case.task(task_id) if task_id else None
            if task_id and task is None:
                raise Unprocessable(f"task {task_id} is not a task of this case")
            invite = Invite(
                id=uuid.uuid4().hex,
                case_id=case_id,
                task_id=task.id if task else None,
                task_name=task.name if task else "",
                contact_id=contact.id,
                contact_name=contact.name,
                method=method,
                destination=destination,
                sender_id=sender.id,
                sender_name=sender.name,
                sender_company=sender.company,
                status=InviteStatus.INVITED,
                created_at=now,
                expires_at=now + timedelta(hours=view.portal.invite_link_lifetime_hours),
            )
            salt = self._key.new_salt()
            token = self._key.token_for(invite.id, salt)
            await invite_store.insert(conn, invite, salt, link_tokens.token_hash(token), event_chain.GENESIS)
            await event_log.append(
                conn,
                invite.id,
                "created",
                Actor.of_user(sender),
                now,
                {"contact": contact.name, "method": str(method), "to": destination, "task": invite.task_name},
            )
            await queue.enqueue(conn, invite.id, "invite", now)
            invite = await invite_store.get(conn, invite.id)
        self._on_queued()
        await self._publish(changes.CREATED, invite)
        return invite

    async def resend(self, invite_id: str, actor: User) -> Invite:
        now = self._clock()
        async with self._engine.begin() as conn:
            view, invite = await self.view_invite(conn, invite_id, actor.id)
            require_full(view)
            expired = await self._expire_if_due(conn, invite)
        if expired:
            await self._publish(changes.CLOSED, invite, reason="expired")
            raise InvalidTransition("the invite has expired and is closed; it cannot be re-sent")
        async with self._engine.begin() as conn:
            # A re-sent link is valid for a full lifetime again: the claimant was just asked to use it.
            expires = now + timedelta(hours=view.portal.invite_link_lifetime_hours)
            invite = await invite_store.record_resend(conn, invite_id, expires)
            await event_log.append(
                conn, invite_id, "resent", Actor.of_user(actor), now,
                {"method": str(invite.method), "to": invite.destination, "count": invite.resend_count},
            )
            await queue.enqueue(conn, invite_id, "resend", now)
        self._on_queued()
        await self._publish(changes.RESENT, invite)
        return invite

    async def close(self, invite_id: str, actor: User) -> Invite:
        async with self._engine.begin() as conn:
            view, _ = await self.view_invite(conn, invite_id, actor.id)
            require_full(view)
            invite = await self._close(conn, invite_id, Actor.of_user(actor), "closed")
        await self._publish(changes.CLOSED, invite, reason="closed")
        return invite

    async def _close(self, conn: AsyncConnection, invite_id: str, actor: Actor, reason: str) -> Invite:
        now = self._clock()
        invite = await invite_store.set_status(conn, invite_id, InviteStatus.CLOSED, now=now, reason=reason)
        await event_log.append(conn, invite_id, "closed", actor, now, {"reason": reason})
        return invite

    async def _expire_if_due(self, conn: AsyncConnection, invite: Invite) -> bool:
        """Close an overdue invite; the caller raises only after committing, so the close sticks."""
        if invite.status is not InviteStatus.CLOSED and invite.expires_at <= self._clock():
            await self._close(conn, invite.id, Actor.system(), "expired")
            return True
        return False

    async def expire_due(self, case_id: str | None = None) -> list[str]:
        """Close every invite (of one case, if given) whose link lifetime has run out; returns their ids."""
        async with self._engine.connect() as conn:
            due = await invite_store.due_for_expiry(conn, self._clock(), case_id=case_id)
        closed: list[str] = []
        for invite_id in due:
            async with self._engine.begin() as conn:
                invite = await invite_store.get(conn, invite_id)
                if invite.status is InviteStatus.CLOSED or invite.expires_at > self._clock():
                    continue  # closed or re-sent meanwhile
                invite = await self._close(conn, invite_id, Actor.system(), "expired")
            closed.append(invite_id)
            await self._publish(changes.CLOSED, invite, reason="expired")
        return closed

    async def list_for_case(self, case_id: str, user_id: str) -> tuple[CaseView, list[Invite]]:
        await self.expire_due(case_id)  # other cases are the sweeper's
        async with self._engine.connect() as conn:
            view = await view_case(conn, case_id, user_id)
            return view, await invite_store.list_for_case(conn, case_id)

    async def resolve_link(self, token: str) -> Invite:
        """The invite a claimant's link opens; closed or expired links raise LinkUnusable."""
        if not link_tokens.plausible(token):
            raise NotFound("no such link")
        async with self._engine.begin() as conn:
            invite = await invite_store.find_by_token_hash(conn, link_tokens.token_hash(token))
            if invite is None:
                raise NotFound("no such link")
            if invite.status is InviteStatus.CLOSED:
                raise LinkUnusable("the invite is closed")
            expired = await self._expire_if_due(conn, invite)
        if expired:
            await self._publish(changes.CLOSED, invite, reason="expired")
            raise LinkUnusable("the invite has expired")
        return invite

    async def resolve_claimant(self, token: str, grant: str | None) -> Invite:
        """resolve_link, plus a valid grant when the portal asks for the SMS security code (GrantRequired)."""
        invite = await self.resolve_link(token)
        await self.codes.require_grant(invite, grant)
        return invite

    async def open_link(self, token: str) -> Invite:
        """The claimant opened his link: log it (once a minute at most, reloads are common) and tell staff."""
        invite = await self.resolve_link(token)
        now = self._clock()
        async with self._engine.begin() as conn:
            recent = await event_log.latest_of_kind(conn, invite.id, "link_opened", 1)
            if recent and now - recent[0].at < timedelta(seconds=60):
                return invite
            actor = Actor("claimant", invite.contact_id, invite.contact_name)
            await event_log.append(conn, invite.id, "link_opened", actor, now)
        await self._publish(changes.LINK_OPENED, invite, contact_name=invite.contact_name)
        return invite

    async def transition(self, invite_id: str, target: InviteStatus, actor: Actor, kind: str) -> Invite:
        """Status changes caused by the call itself (claimant joins or leaves), logged as `kind`."""
        now = self._clock()
        async with self._engine.begin() as conn:
            invite = await invite_store.set_status(conn, invite_id, target, now=now)
            await event_log.append(conn, invite_id, kind, actor, now, {"status": str(target)})
        await self._publish(changes.STATUS, invite, status=str(target))
        return invite

    async def render_message(
        self, conn: AsyncConnection, invite_id: str, purpose: str = "invite"
    ) -> tuple[Invite, OutgoingMessage]:
        """What the delivery worker sends: the token is derived again, never read from storage."""
        invite = await invite_store.get(conn, invite_id)
        case = await directory.get_case(conn, invite.case_id)
        portal = await directory.get_portal(conn, case.portal_id)
        token = self._key.token_for(invite.id, await invite_store.token_salt(conn, invite.id))
        if purpose == queue.SMS_CODE:
            return invite, await self.codes.message(conn, invite, case, portal, self.link(token))
        return invite, render(invite, case, portal, self.link(token))
