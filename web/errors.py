"""The one place where domain and protocol errors become HTTP responses of one JSON shape."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from pydantic import ValidationError

from recorder.object_store import BadKey, ObjectMissing
from rooms import errors as domain
from rooms.staff_auth import Unauthorized

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger(__name__)

_DOMAIN_STATUS: dict[type[domain.RoomsError], int] = {
    domain.NotFound: 404,
    domain.Forbidden: 403,
    domain.InvalidTransition: 409,
    domain.Conflict: 409,
    domain.Unprocessable: 422,
    domain.LinkUnusable: 410,
    domain.DeliveryError: 502,
    domain.TooManyRequests: 429,
    domain.CodeRejected: 422,
    domain.CodeUnusable: 422,
    domain.GrantRequired: 403,
    domain.DatabaseUnavailable: 503,
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None, **extra: int
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message, **extra}
    if details is not None:
        body["details"] = details
    return web.json_response({"error": body}, status=status)


def _domain_response(e: domain.RoomsError) -> web.Response:
    status = next((s for cls, s in _DOMAIN_STATUS.items() if isinstance(e, cls)), 400)
    if isinstance(e, domain.TooManyRequests):
        resp = error_response(status, e.code, e.message, retry_after_s=e.retry_after_s)
        resp.headers["Retry-After"] = str(e.retry_after_s)
        return resp
    if isinstance(e, domain.CodeRejected):
        return error_response(status, e.code, e.message, attempts_left=e.attempts_left)
    return error_response(status, e.code, e.message)


def _validation_details(e: ValidationError) -> list[dict[str, Any]]:
    # Only location and message: echoing input back could reflect personal data or huge values.
    return [{"loc": [str(p) for p in err["loc"]], "msg": err["msg"]} for err in e.errors()[:20]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ApiError as e:
        return error_response(e.status, e.code, e.message)
    except Unauthorized as e:
        resp = error_response(401, e.code, e.message)
        resp.headers["WWW-Authenticate"] = 'Bearer realm="claimcam"'
        return resp
    except domain.RoomsError as e:
        return _domain_response(e)
    except ValidationError as e:
        return error_response(422, "invalid_request", "the request does not match the schema", _validation_details(e))
    except (ObjectMissing, BadKey):
        return error_response(404, "not_found", "the object is not in storage")
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "payload_too_large", "the request body is too large")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = (e.reason or "error").lower().replace(" ", "_")
        resp = error_response(e.status, code, e.text or e.reason or "error")
        # The exception's own headers are part of the answer: a 405 must say what is Allowed.
        resp.headers.extend((k, v) for k, v in e.headers.items() if k not in (hdrs.CONTENT_TYPE, hdrs.CONTENT_LENGTH))
        return resp
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.rel_url.path)
        return error_response(500, "internal_error", "internal server error")
