"""Plain domain records. Stores return these; nothing here touches I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class InviteStatus(StrEnum):
    INVITED = "INVITED"
    IN_CALL = "IN_CALL"
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"


class Method(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class CaseRole(StrEnum):
    CASE_HANDLER = "case_handler"
    INSPECTOR = "inspector"
    PROJECT_MANAGER = "project_manager"
    EXTERNAL_CASE_HANDLER = "external_case_handler"
    VIEWER = "viewer"


class ContactRole(StrEnum):
    POLICY_HOLDER = "policy_holder"
    CONTACT_PERSON = "contact_person"


class TaskKind(StrEnum):
    MAIN_INSPECTION = "main_inspection"
    REPAIR = "repair"
    OTHER = "other"


class MediaKind(StrEnum):
    PICTURE = "picture"
    VIDEO = "video"


class Filing(StrEnum):
    TASK_MULTIMEDIA = "task_multimedia"
    TASK_MULTIMEDIA_EXTRA = "task_multimedia_extra"
    CASE_DOCUMENTS = "case_documents"


class Visibility(StrEnum):
    OWN = "own"
    ALL = "all"


class MediaState(StrEnum):
    """Whether a capture's objects are in the object store, or kept on a node's disk until it answers again."""

    STORED = "stored"
    PENDING = "pending"


class ExternalRight(StrEnum):
    """Portal-level rights of the external case handler that matter to remote video."""

    START_INSPECTION = "start_inspection"
    CUSTOMER_COMMUNICATION = "customer_communication"


@dataclass(frozen=True, slots=True)
class Portal:
    id: str
    name: str
    insurer_company: str
    language: str = "en"
    remote_video_enabled: bool = True
    invite_link_lifetime_hours: int = 72
    sms_code_required: bool = False
    external_case_handler_rights: frozenset[ExternalRight] = frozenset()


@dataclass(frozen=True, slots=True)
class User:
    id: str
    name: str
    email: str = ""
    company: str = ""
    office: str = ""
    phone: str = ""


@dataclass(frozen=True, slots=True)
class Contact:
    id: str
    name: str
    role: ContactRole = ContactRole.CONTACT_PERSON
    phone: str = ""
    email: str = ""

    def address_for(self, method: Method) -> str:
        return self.phone if method is Method.SMS else self.email

    @property
    def methods(self) -> tuple[Method, ...]:
        return tuple(m for m in Method if self.address_for(m))


@dataclass(frozen=True, slots=True)
class Task:
    id: str
    name: str
    kind: TaskKind = TaskKind.OTHER


@dataclass(frozen=True, slots=True)
class Member:
    user_id: str
    role: CaseRole
    task_id: str | None = None


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    portal_id: str
    reference: str
    title: str = ""
    address: str = ""
    contacts: tuple[Contact, ...] = ()
    tasks: tuple[Task, ...] = ()
    members: tuple[Member, ...] = ()

    def contact(self, contact_id: str) -> Contact | None:
        return next((c for c in self.contacts if c.id == contact_id), None)

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.id == task_id), None)

    def roles_of(self, user_id: str) -> frozenset[CaseRole]:
        return frozenset(m.role for m in self.members if m.user_id == user_id)


@dataclass(frozen=True, slots=True)
class Invite:
    id: str
    case_id: str
    task_id: str | None
    task_name: str
    contact_id: str
    contact_name: str
    method: Method
    destination: str
    sender_id: str
    sender_name: str
    sender_company: str
    status: InviteStatus
    created_at: datetime
    expires_at: datetime
    resend_count: int = 0
    closed_at: datetime | None = None
    closed_reason: str = ""
    pictures: int = 0
    videos: int = 0


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: a staff user, the claimant of an invite, or the system."""

    kind: str  # "user" | "claimant" | "system"
    id: str = ""
    name: str = ""

    @staticmethod
    def system() -> Actor:
        return Actor("system", "", "claimcam")

    @staticmethod
    def of_user(user: User) -> Actor:
        return Actor("user", user.id, user.name)


@dataclass(frozen=True, slots=True)
class Event:
    invite_id: str
    seq: int
    at: datetime
    kind: str
    actor: Actor
    data: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class MediaItem:
    id: str
    kind: MediaKind
    invite_id: str
    case_id: str
    task_id: str | None
    object_key: str
    thumbnail_key: str
    content_type: str
    size: int
    sha256: str
    captured_at: datetime
    captured_by_id: str
    captured_by_name: str
    owner_company: str
    filing: Filing
    visibility: Visibility
    shared_with_customer: bool = False
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    state: MediaState = MediaState.STORED
