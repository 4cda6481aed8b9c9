"""Schemas of what clients send. Anything else is refused with an error acknowledgement."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_CHAT_CHARS = 1000

Token = Annotated[str, StringConstraints(min_length=1, max_length=8192)]
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}$")]
# A random id a page makes once and sends on every (re)connection: a new connection with it replaces
# the page's earlier one, which the server may not yet know is gone.
Resume = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]{16,64}$")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ClaimantAuth(In):
    token: Token
    # The grant of a correct SMS security code, needed when the invite's portal asks for one.
    grant: Annotated[str, StringConstraints(max_length=256)] | None = None
    resume: Resume | None = None


class StaffCallAuth(In):
    jwt: Token
    invite_id: Id
    resume: Resume | None = None


class StaffAuth(In):
    jwt: Token


class Empty(In):
    pass


class ChatIn(In):
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_CHAT_CHARS, pattern=r"\S")]


class CursorIn(In):
    action: Literal["show", "hide", "move"]
    # Normalised to the video: (0, 0) top left, (1, 1) bottom right.
    x: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    y: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)


class MuteIn(In):
    muted: bool


class FacingIn(In):
    facing: Literal["user", "environment"]


class SwitchAnswerIn(In):
    request_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
    allow: bool


class RtcOfferIn(In):
    type: Literal["offer"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=32 * 1024)]


class WatchIn(In):
    case_id: Id
