"""Who may do what in a case. Pages and handlers ask here; nobody re-implements these rules."""

from __future__ import annotations

import enum

from rooms.models import (
    Case,
    CaseRole,
    ExternalRight,
    Invite,
    InviteStatus,
    MediaItem,
    Portal,
    User,
    Visibility,
)


class Access(enum.IntEnum):
    NONE = 0
    READ = 1
    FULL = 2


_ROLE_ACCESS = {
    CaseRole.CASE_HANDLER: Access.FULL,
    CaseRole.INSPECTOR: Access.FULL,
    CaseRole.PROJECT_MANAGER: Access.FULL,
    CaseRole.VIEWER: Access.READ,
}


def role_access(role: CaseRole, portal: Portal) -> Access:
    if role is CaseRole.EXTERNAL_CASE_HANDLER:
        # The portal decides whether an external case handler may run inspections himself;
        # without that right he still sees everything in the case.
        if ExternalRight.START_INSPECTION in portal.external_case_handler_rights:
            return Access.FULL
        return Access.READ
    return _ROLE_ACCESS[role]


def case_access(user_id: str, case: Case, portal: Portal) -> Access:
    roles = case.roles_of(user_id)
    best = max((role_access(r, portal) for r in roles), default=Access.NONE)
    if best is Access.FULL and not portal.remote_video_enabled:
        # With remote video switched off the history stays visible but no new call can start.
        return Access.READ
    return best


def invite_actions(access: Access, invite: Invite) -> list[str]:
    """What the caller may do with one invite, in the order pages show the buttons."""
    if access is Access.NONE:
        return []
    actions = ["events", "pictures", "videos"]
    if access is Access.FULL:
        if invite.status is InviteStatus.IN_CALL:
            actions.append("join")
        if invite.status is not InviteStatus.CLOSED:
            actions += ["close", "resend"]
    return actions


def may_see_media(user: User, case: Case, portal: Portal, item: MediaItem) -> bool:
    """`own` items are for the insurer and the company whose user made the call."""
    if case_access(user.id, case, portal) is Access.NONE:
        return False
    if item.visibility is Visibility.ALL:
        return True
    if CaseRole.EXTERNAL_CASE_HANDLER in case.roles_of(user.id):
        return True
    return bool(user.company) and user.company in {portal.insurer_company, item.owner_company}
