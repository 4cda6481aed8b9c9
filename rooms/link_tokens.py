"""Claimant link tokens.

The token is derived, not stored: HMAC(instance secret, invite id + per-invite salt). The database
keeps only its SHA-256 for look-up, so a leaked database yields no working link, yet "re-send" can
deliver the very same link again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

TOKEN_BYTES = 24  # 192 bits, comfortably above the 128-bit floor
_MAX_TOKEN_CHARS = 64


@dataclass(frozen=True, slots=True)
class LinkKey:
    secret: bytes

    def new_salt(self) -> str:
        return secrets.token_hex(16)

    def token_for(self, invite_id: str, salt: str) -> str:
        mac = hmac.new(self.secret, f"invite-link:{invite_id}:{salt}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:TOKEN_BYTES]).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def plausible(token: str) -> bool:
    """Cheap shape check so garbage never reaches the database."""
    if not token or len(token) > _MAX_TOKEN_CHARS:
        return False
    return all(c.isascii() and (c.isalnum() or c in "-_") for c in token)
