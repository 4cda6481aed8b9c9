"""Request and response bodies of the REST API; they are also the OpenAPI document's schemas."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, StringConstraints, model_validator

from rooms.models import (
    CaseRole,
    ContactRole,
    ExternalRight,
    Filing,
    MediaKind,
    MediaState,
    Method,
    TaskKind,
    Visibility,
)

# Text is stored, so it fits its column and holds no NUL (PostgreSQL refuses both with an error).
# One-line fields refuse every control character: they end up in SMS texts and mail headers.
_NO_NUL = r"^[^\x00]*$"
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,63}")
Id = Annotated[str, StringConstraints(pattern=f"^{ID_PATTERN.pattern}$")]
Name = Annotated[
    str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True, pattern=_ONE_LINE)
]
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True, pattern=_ONE_LINE)
]
Text = Annotated[str, StringConstraints(max_length=300, pattern=_NO_NUL)]
ShortText = Annotated[str, StringConstraints(max_length=200, pattern=_ONE_LINE)]
Phone = Annotated[str, StringConstraints(pattern=r"^(\+?[0-9 ()\-]{5,30})?$")]
Email = Annotated[str, StringConstraints(pattern=r"^([^@\s\x00]{1,64}@[^@\s\x00]{1,255})?$")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- directory (platform scope) ----


class PortalIn(In):
    name: Name
    insurer_company: ShortText = ""
    language: Literal["en", "fi"] = "en"
    remote_video_enabled: bool = True
    invite_link_lifetime_hours: int = Field(72, ge=1, le=24 * 60)
    sms_code_required: bool = False
    external_case_handler_rights: list[ExternalRight] = Field(default_factory=list, max_length=20)


class UserIn(In):
    name: Name
    email: Email = ""
    company: ShortText = ""
    office: ShortText = ""
    phone: Phone = ""


class ContactIn(In):
    id: Id
    name: Name
    role: ContactRole = ContactRole.CONTACT_PERSON
    phone: Phone = ""
    email: Email = ""


class TaskIn(In):
    id: Id
    name: Name
    kind: TaskKind = TaskKind.OTHER


class MemberIn(In):
    user_id: Id
    role: CaseRole
    task_id: Id | None = None


class CaseIn(In):
    portal_id: Id
    reference: Reference
    title: Text = ""
    address: Text = ""
    contacts: list[ContactIn] = Field(default_factory=list, max_length=100)
    tasks: list[TaskIn] = Field(default_factory=list, max_length=200)
    members: list[MemberIn] = Field(default_factory=list, max_length=500)

    @model_validator(mode="after")
    def _consistent(self) -> CaseIn:
        for what, keys in (
            ("contact id", [c.id for c in self.contacts]),
            ("task id", [t.id for t in self.tasks]),
            ("member (user_id, role)", [f"{m.user_id}/{m.role}" for m in self.members]),
        ):
            if len(keys) != len(set(keys)):
                raise ValueError(f"duplicate {what}")
        task_ids = {t.id for t in self.tasks}
        for m in self.members:
            if m.task_id is not None and m.task_id not in task_ids:
                raise ValueError(f"member {m.user_id} names unknown task {m.task_id}")
        return self


class Stored(Out):
    id: str


# ---- calls management ----


class InviteCreate(In):
    contact_id: Id
    method: Method
    task_id: Id | None = None


class MediaPatch(In):
    filing: Filing | None = None
    visibility: Visibility | None = None
    shared_with_customer: bool | None = None


class MediaQuery(In):
    kind: MediaKind | None = None


class PersonOut(Out):
    id: str
    name: str
    company: str = ""


class ContactOut(Out):
    id: str
    name: str
    role: ContactRole
    phone: str
    email: str
    methods: list[Method]


class TaskOut(Out):
    id: str
    name: str
    kind: TaskKind


class CaseOut(Out):
    id: str
    reference: str
    title: str
    address: str
    portal_id: str
    language: str
    sms_code_required: bool
    access: Literal["full", "read"]
    can_invite: bool
    contacts: list[ContactOut]
    tasks: list[TaskOut]


class InviteOut(Out):
    id: str
    case_id: str
    task_id: str | None
    task_name: str
    contact_id: str
    contact_name: str
    method: Method
    destination: str
    sender: PersonOut
    status: Literal["INVITED", "IN_CALL", "ACTIVE", "CLOSED"]
    created_at: datetime
    expires_at: datetime
    closed_at: datetime | None
    closed_reason: str
    resend_count: int
    pictures: int
    videos: int
    actions: list[str] = Field(description="What the caller may do: events, pictures, videos, join, close, resend")


class InviteList(Out):
    case_id: str
    access: Literal["full", "read"]
    can_invite: bool
    invites: list[InviteOut]


class ActorOut(Out):
    kind: Literal["user", "claimant", "system"]
    id: str
    name: str


class EventOut(Out):
    seq: int
    at: datetime
    kind: str
    actor: ActorOut
    data: dict[str, Any]
    hash: str


class Integrity(Out):
    ok: bool
    broken_at: int | None


class InviteEvents(Out):
    invite_id: str
    integrity: Integrity
    events: list[EventOut]


class InviteEventGroup(Out):
    invite: InviteOut
    integrity: Integrity
    events: list[EventOut]


class CaseEvents(Out):
    case_id: str
    groups: list[InviteEventGroup]


class MediaOut(Out):
    id: str
    kind: MediaKind
    invite_id: str
    case_id: str
    task_id: str | None
    content_type: str
    size: int
    sha256: str
    width: int | None
    height: int | None
    duration_s: float | None
    captured_at: datetime
    captured_by: PersonOut
    filing: Filing
    visibility: Visibility
    shared_with_customer: bool
    state: MediaState = Field(
        description="`stored`, or `pending`: kept on the server while the object store was unavailable and uploaded "
        "when it answers again; until then the content and thumbnail answer 409 `media_pending`"
    )
    content_url: str
    thumbnail_url: str | None


class MediaList(Out):
    items: list[MediaOut]


class MediaLinks(Out):
    content_url: str = Field(description="The content, openable without a bearer token until `expires_at`")
    thumbnail_url: str | None = Field(description="The thumbnail, likewise; null without a thumbnail")
    expires_at: datetime


class SignedQuery(In):
    expires: int | None = Field(None, description="Unix time a signed link stops working (from /media/{id}/links)")
    signature: str | None = Field(None, description="The link's signature; with `expires`, replaces the bearer token")


class LinkInfo(Out):
    invite_id: str
    status: str
    case_reference: str
    company: str
    inspector: str
    language: str
    sms_code_required: bool


class LockedLinkInfo(Out):
    """What a link shows before its SMS security code is entered: enough to ask for the code."""

    sms_code_required: Literal[True] = True
    company: str
    language: str
    phone_hint: str = Field(description="The last two digits of the phone the code goes to, e.g. `•••• 67`")


class JoinInfo(RootModel[LinkInfo | LockedLinkInfo]):
    """LinkInfo, or LockedLinkInfo while the portal asks for a security code and no valid grant came."""


class CodeSentOut(Out):
    resend_after_s: int = Field(description="Seconds before another code may be asked for")
    expires_in_s: int = Field(description="Seconds the code stays valid")
    phone_hint: str = Field(description="The last two digits of the phone the code goes to, e.g. `•••• 67`")


class CodeIn(In):
    code: Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")] = Field(description="The 6 digits of the SMS")


class GrantOut(Out):
    grant: str = Field(description="Send it as the `X-Claimcam-Grant` header and as `grant` in the /call auth")
    expires_at: datetime


class IceServerOut(Out):
    urls: list[str] = Field(description="turn: / turns: URLs of one TURN server")
    username: str = Field(description="TURN REST API username: `<expiry unix time>:<user>`")
    credential: str = Field(description="base64(HMAC-SHA1(TURN secret, username))")


class IceServers(Out):
    ice_servers: list[IceServerOut] = Field(
        description="Pass as `iceServers` to `RTCPeerConnection`; empty when no TURN server is configured"
    )
    ttl_s: int = Field(description="Seconds the credentials stay valid; fetch new ones before they run out")


class OutboxMessage(Out):
    id: int
    invite_id: str
    method: Method
    recipient: str
    subject: str
    body: str
    link: str
    sent_at: datetime


class Outbox(Out):
    messages: list[OutboxMessage]


class ErrorBody(Out):
    code: str
    message: str
    details: list[dict[str, Any]] | None = None
    retry_after_s: int | None = Field(None, description="With 429: seconds to wait, as in the Retry-After header")
    attempts_left: int | None = Field(None, description="With a wrong security code: guesses left for this code")


class Error(Out):
    error: ErrorBody
