"""The text of invite messages and of the claimant's security code SMS, per language."""

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
        "code": "Your claimcam security code is {code}. It is valid for {minutes} minutes.",
    },
    "fi": {
        "subject": "Videopuhelu vahinkoasiastasi {reference}",
        "sms": "{sender} ({company}) kutsuu sinut videopuheluun vahinkoasiassa {reference}. "
        "Avaa linkki puhelimellasi: {link}",
        "email": "Hei {contact},\n\n{sender} ({company}) kutsuu sinut videopuheluun "
        "vahinkoasiassasi {reference}.\nAvaa tämä linkki puhelimellasi; sovellusta ei tarvita:\n\n"
        "{link}\n\nLinkki on henkilökohtainen. Älä välitä sitä eteenpäin.\n",
        "code": "claimcam-turvakoodisi on {code}. Se on voimassa {minutes} minuuttia.",
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
    # Text that must never reach a log or the event log (a security code), should an error echo it.
    sensitive: tuple[str, ...] = ()

    def redact(self, text: str) -> str:
        for secret in self.sensitive:
            text = text.replace(secret, "[redacted]")
        return text


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


def render_code(invite: Invite, portal: Portal, phone: str, code: str, minutes: int, link: str) -> OutgoingMessage:
    """The security code SMS; `link` is the invite's own link, kept only for the dev outbox."""
    texts = _TEXTS.get(portal.language, _TEXTS["en"])
    return OutgoingMessage(
        invite_id=invite.id,
        method=Method.SMS,
        recipient=phone,
        subject="",
        body=texts["code"].format(code=code, minutes=minutes),
        link=link,
        sensitive=(code,),
    )
