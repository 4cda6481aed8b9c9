"""Demo data: one realistic portal and case with users of every kind of access."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import directory
from rooms.access import Access, case_access
from rooms.models import (
    Case,
    CaseRole,
    Contact,
    ContactRole,
    ExternalRight,
    Member,
    Portal,
    Task,
    TaskKind,
    User,
)
from rooms.staff_auth import PLATFORM_SCOPE, issue_hs256

DEMO_TOKEN_TTL_S = 30 * 24 * 3600

PORTAL = Portal(
    id="demo-portal",
    name="Aurora Insurance claims",
    insurer_company="Aurora Insurance",
    language="en",
    invite_link_lifetime_hours=72,
    # The external case handler sees everything but may not start inspections in this portal.
    external_case_handler_rights=frozenset({ExternalRight.CUSTOMER_COMMUNICATION}),
)

USERS = (
    User("u-inspector", "Ines Inspector", "ines@nordbuild.example", "Nordbuild Oy", "Helsinki", "+358401110001"),
    User("u-handler", "Hannu Handler", "hannu@aurora.example", "Aurora Insurance", "Espoo", "+358401110002"),
    User("u-viewer", "Vera Viewer", "vera@aurora.example", "Aurora Insurance", "Espoo", ""),
    User("u-external", "Eero External", "eero@claimsplus.example", "ClaimsPlus Ltd", "Tampere", ""),
)

CASE = Case(
    id="demo-case",
    portal_id=PORTAL.id,
    reference="CLM-2026-00042",
    title="Water damage in the kitchen",
    address="Rantakatu 5 B 12, 00100 Helsinki",
    contacts=(
        Contact("c-holder", "Paula Policyholder", ContactRole.POLICY_HOLDER, "+358401234567", "paula@example.com"),
        Contact("c-phone", "Pekka Phone-only", ContactRole.CONTACT_PERSON, "+358407654321", ""),
        Contact("c-email", "Eeva Email-only", ContactRole.CONTACT_PERSON, "", "eeva@example.com"),
    ),
    tasks=(
        Task("t-main", "Main inspection", TaskKind.MAIN_INSPECTION),
        Task("t-repair", "Kitchen floor repair", TaskKind.REPAIR),
    ),
    members=(
        Member("u-inspector", CaseRole.INSPECTOR, "t-main"),
        Member("u-handler", CaseRole.CASE_HANDLER),
        Member("u-viewer", CaseRole.VIEWER),
        Member("u-external", CaseRole.EXTERNAL_CASE_HANDLER),
    ),
)


@dataclass(frozen=True, slots=True)
class DemoUser:
    id: str
    name: str
    role: str
    access: str
    token: str


async def seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await directory.put_portal(conn, PORTAL)
        for u in USERS:
            await directory.put_user(conn, u)
        await directory.put_case(conn, CASE)


def demo_users(jwt_secret: str) -> list[DemoUser]:
    out = []
    for u in USERS:
        role = next(m.role for m in CASE.members if m.user_id == u.id)
        access = case_access(u.id, CASE, PORTAL)
        out.append(
            DemoUser(
                id=u.id,
                name=u.name,
                role=str(role),
                access={Access.FULL: "full", Access.READ: "read"}.get(access, "none"),
                token=issue_hs256(jwt_secret, u.id, name=u.name, ttl_s=DEMO_TOKEN_TTL_S),
            )
        )
    return out


def platform_token(jwt_secret: str) -> str:
    return issue_hs256(jwt_secret, "claims-platform", scope=PLATFORM_SCOPE, ttl_s=DEMO_TOKEN_TTL_S)
