"""Staff authentication: JWTs issued by the claims platform (HS256 secret or RS256 public key).

Used by the REST API and the Socket.IO hub alike, so it lives with the domain, not the web layer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import jwt

from rooms.errors import RoomsError

PLATFORM_SCOPE = "platform"
_MAX_TOKEN_CHARS = 8192


class Unauthorized(RoomsError):
    """Missing, malformed, forged or expired credentials; `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: str
    name: str
    scopes: frozenset[str]

    @property
    def is_platform(self) -> bool:
        return PLATFORM_SCOPE in self.scopes


@dataclass(frozen=True, slots=True)
class JwtVerifier:
    algorithm: str  # exactly one algorithm is accepted: no "none", no HS/RS confusion
    key: str
    audience: str = ""
    issuer: str = ""
    leeway_s: int = 30

    @staticmethod
    def for_settings(jwt_secret: str, jwt_public_key: str, audience: str, issuer: str) -> JwtVerifier:
        if jwt_public_key:
            return JwtVerifier("RS256", jwt_public_key, audience, issuer)
        return JwtVerifier("HS256", jwt_secret, audience, issuer)

    def verify(self, token: str) -> Principal:
        if not token or len(token) > _MAX_TOKEN_CHARS:
            raise Unauthorized("invalid_token", "malformed bearer token")
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=[self.algorithm],
                audience=self.audience or None,
                issuer=self.issuer or None,
                leeway=self.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": bool(self.audience)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token_expired", "the bearer token has expired") from None
        except jwt.PyJWTError as e:
            raise Unauthorized("invalid_token", f"invalid bearer token: {e}") from None
        sub = claims.get("sub")
        # Control characters (NUL above all) are in no user id, and PostgreSQL refuses NUL.
        if not isinstance(sub, str) or not sub or len(sub) > 64 or not sub.isprintable():
            raise Unauthorized("invalid_token", "the token's subject is not a user id")
        scope = claims.get("scope", "")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        name = claims.get("name", "")
        return Principal(sub, name if isinstance(name, str) else "", scopes)


def issue_hs256(secret: str, sub: str, *, name: str = "", scope: str = "", ttl_s: int = 3600) -> str:
    """Tokens for the demo's users and for tests; production tokens come from the platform."""
    now = int(time.time())
    claims: dict[str, object] = {"sub": sub, "iat": now, "exp": now + ttl_s}
    if name:
        claims["name"] = name
    if scope:
        claims["scope"] = scope
    return jwt.encode(claims, secret, algorithm="HS256")
