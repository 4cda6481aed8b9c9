"""Which media items a staff user may see and change, and the log entry of each change."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from rooms import event_log, media_store
from rooms.access import may_see_media
from rooms.clock import Clock
from rooms.errors import NotFound
from rooms.invites import CaseView, require_full, view_case
from rooms.models import Actor, Filing, MediaItem, User, Visibility


async def visible_item(conn: AsyncConnection, user: User, media_id: str) -> tuple[CaseView, MediaItem]:
    """The item if this user may see it; otherwise NotFound, exactly as if it did not exist."""
    try:
        item = await media_store.get(conn, media_id)
        view = await view_case(conn, item.case_id, user.id)
    except NotFound:
        raise NotFound(f"media item {media_id} not found") from None
    if not may_see_media(user, view.case, view.portal, item):
        raise NotFound(f"media item {media_id} not found")
    return view, item


def only_visible(user: User, view: CaseView, items: list[MediaItem]) -> list[MediaItem]:
    return [i for i in items if may_see_media(user, view.case, view.portal, i)]


async def change(
    conn: AsyncConnection,
    user: User,
    media_id: str,
    clock: Clock,
    *,
    filing: Filing | None,
    visibility: Visibility | None,
    shared_with_customer: bool | None,
) -> MediaItem:
    view, item = await visible_item(conn, user, media_id)
    require_full(view)
    updated = await media_store.update(
        conn, item, filing=filing, visibility=visibility, shared_with_customer=shared_with_customer
    )
    changes = {
        k: str(v)
        for k, v, old in (
            ("filing", updated.filing, item.filing),
            ("visibility", updated.visibility, item.visibility),
            ("shared_with_customer", updated.shared_with_customer, item.shared_with_customer),
        )
        if v != old
    }
    if changes:
        await event_log.append(
            conn, item.invite_id, "media_updated", Actor.of_user(user), clock(), {"media_id": item.id, **changes}
        )
    return updated
