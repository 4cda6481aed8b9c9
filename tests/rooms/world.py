"""A minimal directory written straight through the store, for store-level tests."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from rooms import directory
from rooms.models import Case, CaseRole, Contact, Member, Portal, Task, User

PORTAL = Portal("p1", "Portal", "Aurora Insurance", invite_link_lifetime_hours=2)
INSPECTOR = User("u1", "Ines Inspector", "ines@x.example", "Nordbuild Oy")
VIEWER = User("u2", "Vera Viewer", company="Aurora Insurance")
CASE = Case(
    "case-1",
    "p1",
    "CLM-1",
    contacts=(
        Contact("c1", "Paula", phone="+358401234567", email="p@example.com"),
        Contact("c2", "Pekka", phone="+3584000"),
    ),
    tasks=(Task("t1", "Main inspection"),),
    members=(Member("u1", CaseRole.INSPECTOR, "t1"), Member("u2", CaseRole.VIEWER)),
)


async def seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await directory.put_portal(conn, PORTAL)
        await directory.put_user(conn, INSPECTOR)
        await directory.put_user(conn, VIEWER)
        await directory.put_case(conn, CASE)
