"""Reading the staff bearer token from an HTTP request."""

from rooms.staff_auth import Unauthorized


def bearer(header: str | None) -> str:
    if not header:
        raise Unauthorized("missing_token", "an Authorization: Bearer token is required")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("invalid_token", "the Authorization header must be 'Bearer <token>'")
    return token.strip()
