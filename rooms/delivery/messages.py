"""The text of invite messages, per language."""

from __future__ import annotations

from dataclasses import dataclass

from rooms.models import Case, Invite, Method, Portal

_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Video call about your claim {reference}",
        "sms": "{sender} ({company}) invites you to a video call about claim {reference}. "
        "Open the link on your phone: {link}",
        "email": "Hello {contact},\n\n{sender} from {company} invites you to a video call about "
        "your claim {reference}.\nOpen this link on your phone to join; no app is needed:\n\n"
        "{link}\n\nThe link is personal. Please do not forward it.\n",
    },
    "fi": {
        "subject": "Videopuhelu vahinkoasiastasi {reference}",
        "sms": "{sender} ({company}) kutsuu sinut videopuheluun vahinkoasiassa {reference}. "
        "Avaa linkki puhelimellasi: {link}",
        "email": "Hei {contact},\n\n{sender} ({company}) kutsuu sinut videopuheluun "
        "vahinkoasiassasi {reference}.\nAvaa tämä linkki puhelimellasi; sovellusta ei tarvita:\n\n"
        "{link}\n\nLinkki on henkilökohtainen. Älä välitä sitä eteenpäin.\n",
    },
}


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    invite_id: str
    method: Method
    recipient: str
    subject: str
    body: str
    link: str


def render(invite: Invite, case: Case, portal: Portal, link: str) -> OutgoingMessage:
    texts = _TEXTS.get(portal.language, _TEXTS["en"])
    fields = {
        "reference": case.reference,
        "sender": invite.sender_name,
        "company": invite.sender_company or portal.insurer_company,
        "contact": invite.contact_name,
        "link": link,
    }
    body = texts["sms" if invite.method is Method.SMS else "email"].format(**fields)
    return OutgoingMessage(
        invite_id=invite.id,
        method=invite.method,
        recipient=invite.destination,
        # Header injection guard: a line break from a platform field must not reach a mail header.
        subject=" ".join(texts["subject"].format(**fields).split()),
        body=body,
        link=link,
    )
