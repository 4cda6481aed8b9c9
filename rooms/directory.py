"""Portals, users and cases as the claims platform upserts them."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms import tables as t
from rooms.errors import NotFound, Unprocessable
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


async def _upsert(conn: AsyncConnection, table: sa.Table, key: dict[str, str], values: dict[str, object]) -> None:
    where = sa.and_(*(table.c[k] == v for k, v in key.items()))
    res = await conn.execute(table.update().where(where).values(**values))
    if res.rowcount == 0:
        await conn.execute(table.insert().values(**key, **values))


async def put_portal(conn: AsyncConnection, p: Portal) -> None:
    await _upsert(
        conn,
        t.portals,
        {"id": p.id},
        {
            "name": p.name,
            "insurer_company": p.insurer_company,
            "language": p.language,
            "remote_video_enabled": p.remote_video_enabled,
            "invite_link_lifetime_hours": p.invite_link_lifetime_hours,
            "sms_code_required": p.sms_code_required,
            "external_case_handler_rights": sorted(str(r) for r in p.external_case_handler_rights),
        },
    )


async def get_portal(conn: AsyncConnection, portal_id: str) -> Portal:
    row = (await conn.execute(t.portals.select().where(t.portals.c.id == portal_id))).first()
    if row is None:
        raise NotFound(f"portal {portal_id} not found")
    m = row._mapping
    return Portal(
        id=m["id"],
        name=m["name"],
        insurer_company=m["insurer_company"],
        language=m["language"],
        remote_video_enabled=m["remote_video_enabled"],
        invite_link_lifetime_hours=m["invite_link_lifetime_hours"],
        sms_code_required=m["sms_code_required"],
        external_case_handler_rights=frozenset(
            ExternalRight(r) for r in m["external_case_handler_rights"]
        ),
    )


async def put_user(conn: AsyncConnection, u: User) -> None:
    await _upsert(
        conn,
        t.users,
        {"id": u.id},
        {"name": u.name, "email": u.email, "company": u.company, "office": u.office, "phone": u.phone},
    )


async def get_user(conn: AsyncConnection, user_id: str) -> User | None:
    row = (await conn.execute(t.users.select().where(t.users.c.id == user_id))).first()
    if row is None:
        return None
    m = row._mapping
    return User(m["id"], m["name"], m["email"], m["company"], m["office"], m["phone"])


async def put_case(conn: AsyncConnection, c: Case) -> None:
    """Replace the case with its contacts, tasks and members; invites keep their snapshots."""
    if (await conn.execute(sa.select(t.portals.c.id).where(t.portals.c.id == c.portal_id))).first() is None:
        raise Unprocessable(f"portal {c.portal_id} does not exist")
    await _upsert(
        conn,
        t.cases,
        {"id": c.id},
        {"portal_id": c.portal_id, "reference": c.reference, "title": c.title, "address": c.address},
    )
    for child in (t.contacts, t.tasks, t.members):
        await conn.execute(child.delete().where(child.c.case_id == c.id))
    if c.contacts:
        await conn.execute(
            t.contacts.insert(),
            [
                {"case_id": c.id, "id": x.id, "position": i, "name": x.name, "role": str(x.role),
                 "phone": x.phone, "email": x.email}
                for i, x in enumerate(c.contacts)
            ],
        )
    if c.tasks:
        await conn.execute(
            t.tasks.insert(),
            [
                {"case_id": c.id, "id": x.id, "position": i, "name": x.name, "kind": str(x.kind)}
                for i, x in enumerate(c.tasks)
            ],
        )
    if c.members:
        await conn.execute(
            t.members.insert(),
            [
                {"case_id": c.id, "user_id": x.user_id, "role": str(x.role), "task_id": x.task_id}
                for x in c.members
            ],
        )


async def get_case(conn: AsyncConnection, case_id: str) -> Case:
    row = (await conn.execute(t.cases.select().where(t.cases.c.id == case_id))).first()
    if row is None:
        raise NotFound(f"case {case_id} not found")
    m = row._mapping
    contact_rows = await conn.execute(
        t.contacts.select().where(t.contacts.c.case_id == case_id).order_by(t.contacts.c.position)
    )
    task_rows = await conn.execute(
        t.tasks.select().where(t.tasks.c.case_id == case_id).order_by(t.tasks.c.position)
    )
    member_rows = await conn.execute(
        t.members.select().where(t.members.c.case_id == case_id).order_by(t.members.c.user_id)
    )
    return Case(
        id=m["id"],
        portal_id=m["portal_id"],
        reference=m["reference"],
        title=m["title"],
        address=m["address"],
        contacts=tuple(
            Contact(r.id, r.name, ContactRole(r.role), r.phone, r.email) for r in contact_rows
        ),
        tasks=tuple(Task(r.id, r.name, TaskKind(r.kind)) for r in task_rows),
        members=tuple(Member(r.user_id, CaseRole(r.role), r.task_id) for r in member_rows),
    )


async def case_ids_of_user(conn: AsyncConnection, user_id: str) -> list[str]:
    rows = await conn.execute(
        sa.select(t.members.c.case_id).where(t.members.c.user_id == user_id).distinct()
    )
    return sorted(r[0] for r in rows)
