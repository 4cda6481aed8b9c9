"""Where captures live in the object store and what metadata each object carries (DESIGN.md section 7).

Consumers read the bucket over the S3 API without asking this server, so this layout is a contract:

    cases/{case_id}/invites/{invite_id}/pictures/{media_id}.jpg
    cases/{case_id}/invites/{invite_id}/thumbs/{media_id}.jpg
    cases/{case_id}/invites/{invite_id}/videos/{media_id}.{webm|mp4}
    cases/{case_id}/invites/{invite_id}/manifest.json

Every capture object carries the user metadata `case`, `task` (empty without a task), `invite`,
`captured-at` (ISO 8601, UTC) and `sha256` (of that object's own bytes), sent as `x-amz-meta-*`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from recorder.object_store import check_key
from rooms.models import MediaKind

PICTURE_EXTENSION = "jpg"
VIDEO_EXTENSIONS = ("webm", "mp4")
MANIFEST_NAME = "manifest.json"


def invite_prefix(case_id: str, invite_id: str) -> str:
    """The folder of one invite, with its trailing slash (for listing)."""
    return check_key(f"cases/{case_id}/invites/{invite_id}") + "/"


def normalise_extension(kind: MediaKind, extension: str) -> str:
    """`jpg` for pictures, `webm` or `mp4` for videos; a leading dot and upper case are tolerated."""
    ext = extension.strip().lstrip(".").lower()
    allowed = (PICTURE_EXTENSION,) if kind is MediaKind.PICTURE else VIDEO_EXTENSIONS
    if ext not in allowed:
        raise ValueError(f"a {kind} is stored as {' or '.join('.' + a for a in allowed)}, not {extension!r}")
    return ext


def media_key(kind: MediaKind, case_id: str, invite_id: str, media_id: str, extension: str) -> str:
    folder = "pictures" if kind is MediaKind.PICTURE else "videos"
    ext = normalise_extension(kind, extension)
    return check_key(f"{invite_prefix(case_id, invite_id)}{folder}/{media_id}.{ext}")


def picture_key(case_id: str, invite_id: str, media_id: str) -> str:
    return media_key(MediaKind.PICTURE, case_id, invite_id, media_id, PICTURE_EXTENSION)


def video_key(case_id: str, invite_id: str, media_id: str, extension: str) -> str:
    return media_key(MediaKind.VIDEO, case_id, invite_id, media_id, extension)


def thumbnail_key(case_id: str, invite_id: str, media_id: str) -> str:
    return check_key(f"{invite_prefix(case_id, invite_id)}thumbs/{media_id}.jpg")


def manifest_key(case_id: str, invite_id: str) -> str:
    return check_key(f"{invite_prefix(case_id, invite_id)}{MANIFEST_NAME}")


def utc_text(at: datetime) -> str:
    """The one text form of instants in metadata and the manifest: ISO 8601 in UTC."""
    return at.astimezone(UTC).isoformat()


def capture_metadata(
    case_id: str, task_id: str | None, invite_id: str, captured_at: datetime, sha256: str
) -> dict[str, str]:
    """The metadata of a capture object (picture, video or thumbnail); `sha256` is of its own bytes."""
    return {
        "case": case_id,
        "task": task_id or "",
        "invite": invite_id,
        "captured-at": utc_text(captured_at),
        "sha256": sha256,
    }
