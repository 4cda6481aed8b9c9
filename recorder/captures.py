"""What a capture command gives back, and the refusal when the media plane cannot serve it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rooms.errors import RoomsError


class MediaUnavailable(RoomsError):
    code = "media_unavailable"


@dataclass(frozen=True, slots=True)
class Capture:
    """A stored capture, as announced to the call and the staff page."""

    media: dict[str, Any]
