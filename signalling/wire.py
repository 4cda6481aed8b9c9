"""Acknowledgements, and the one place where errors become wire errors."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from rooms import errors as domain


class SignallingError(Exception):
    """A refusal the client caused: bad payload, wrong role, rate limit."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def failure(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def to_wire(error: Exception) -> dict[str, Any]:
    """The error as sent to the client; unexpected errors say nothing of their internals."""
    if isinstance(error, SignallingError):
        return failure(error.code, error.message)
    if isinstance(error, domain.RoomsError):
        return failure(error.code, error.message)
    if isinstance(error, ValidationError):
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in error.errors()[:5])
        return failure("invalid_payload", problems)
    return failure("internal_error", "internal error")
