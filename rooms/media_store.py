"""Media items (pictures and videos) and where they are filed in the case."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from rooms import tables as t
from rooms.errors import NotFound, Unprocessable
from rooms.models import Filing, Invite, MediaItem, MediaKind, MediaState, Visibility


def filing_for(invite: Invite) -> tuple[Filing, Visibility]:
    """A capture goes to the task's multimedia, or to the case documents as `own` when no task."""
    if invite.task_id:
        return Filing.TASK_MULTIMEDIA, Visibility.ALL
    return Filing.CASE_DOCUMENTS, Visibility.OWN


def _item(m: Any) -> MediaItem:
    return MediaItem(
        id=m["id"],
        kind=MediaKind(m["kind"]),
        invite_id=m["invite_id"],
        case_id=m["case_id"],
        task_id=m["task_id"],
        object_key=m["object_key"],
        thumbnail_key=m["thumbnail_key"],
        content_type=m["content_type"],
        size=m["size"],
        sha256=m["sha256"],
        captured_at=m["captured_at"],
        captured_by_id=m["captured_by_id"],
        captured_by_name=m["captured_by_name"],
        owner_company=m["owner_company"],
        filing=Filing(m["filing"]),
        visibility=Visibility(m["visibility"]),
        shared_with_customer=m["shared_with_customer"],
        width=m["width"],
        height=m["height"],
        duration_s=m["duration_s"],
        state=MediaState(m["state"]),
    )


async def insert(conn: AsyncConnection, item: MediaItem) -> None:
    await conn.execute(
        t.media_items.insert().values(
            id=item.id,
            kind=str(item.kind),
            invite_id=item.invite_id,
            case_id=item.case_id,
            task_id=item.task_id,
            object_key=item.object_key,
            thumbnail_key=item.thumbnail_key,
            content_type=item.content_type,
            size=item.size,
            sha256=item.sha256,
            width=item.width,
            height=item.height,
            duration_s=item.duration_s,
            captured_at=item.captured_at,
            captured_by_id=item.captured_by_id,
            captured_by_name=item.captured_by_name,
            owner_company=item.owner_company,
            filing=str(item.filing),
            visibility=str(item.visibility),
            shared_with_customer=item.shared_with_customer,
            state=str(item.state),
        )
    )


async def mark_stored(conn: AsyncConnection, media_id: str) -> bool:
    """A pending item's objects reached the object store; False when it was not pending (any more)."""
    result = await conn.execute(
        t.media_items.update()
        .where(t.media_items.c.id == media_id, t.media_items.c.state == str(MediaState.PENDING))
        .values(state=str(MediaState.STORED))
    )
    return bool(result.rowcount)


async def get(conn: AsyncConnection, media_id: str) -> MediaItem:
    row = (await conn.execute(t.media_items.select().where(t.media_items.c.id == media_id))).first()
    if row is None:
        raise NotFound(f"media item {media_id} not found")
    return _item(row._mapping)


async def list_where(conn: AsyncConnection, *conditions: sa.ColumnElement[bool]) -> list[MediaItem]:
    rows = await conn.execute(
        t.media_items.select()
        .where(*conditions)
        .order_by(t.media_items.c.captured_at, t.media_items.c.id)
    )
    return [_item(r._mapping) for r in rows]


async def for_invite(conn: AsyncConnection, invite_id: str, kind: MediaKind | None = None) -> list[MediaItem]:
    cond = [t.media_items.c.invite_id == invite_id]
    if kind is not None:
        cond.append(t.media_items.c.kind == str(kind))
    return await list_where(conn, *cond)


async def for_case(conn: AsyncConnection, case_id: str, kind: MediaKind | None = None) -> list[MediaItem]:
    cond = [t.media_items.c.case_id == case_id]
    if kind is not None:
        cond.append(t.media_items.c.kind == str(kind))
    return await list_where(conn, *cond)


async def case_documents(conn: AsyncConnection, case_id: str) -> list[MediaItem]:
    return await list_where(
        conn, t.media_items.c.case_id == case_id, t.media_items.c.filing == str(Filing.CASE_DOCUMENTS)
    )


async def task_multimedia(conn: AsyncConnection, case_id: str, task_id: str) -> list[MediaItem]:
    return await list_where(
        conn,
        t.media_items.c.case_id == case_id,
        t.media_items.c.task_id == task_id,
        t.media_items.c.filing.in_([str(Filing.TASK_MULTIMEDIA), str(Filing.TASK_MULTIMEDIA_EXTRA)]),
    )


async def update(
    conn: AsyncConnection,
    item: MediaItem,
    *,
    filing: Filing | None = None,
    visibility: Visibility | None = None,
    shared_with_customer: bool | None = None,
) -> MediaItem:
    values: dict[str, Any] = {}
    if filing is not None:
        in_task = filing in (Filing.TASK_MULTIMEDIA, Filing.TASK_MULTIMEDIA_EXTRA)
        if in_task and not item.task_id:
            raise Unprocessable("this item belongs to no task; it can only be filed in the case documents")
        if not in_task and item.task_id:
            raise Unprocessable("this item belongs to a task; move it between main and extra folders")
        values["filing"] = str(filing)
    if visibility is not None:
        values["visibility"] = str(visibility)
    if shared_with_customer is not None:
        values["shared_with_customer"] = shared_with_customer
    if values:
        await conn.execute(t.media_items.update().where(t.media_items.c.id == item.id).values(**values))
    return await get(conn, item.id)
