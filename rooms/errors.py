"""Domain errors. Web and signalling map them to wire errors in exactly one place each."""


class RoomsError(Exception):
    """Base of every domain error; `code` is the stable machine-readable name."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RoomsError):
    """The thing does not exist, or the caller may not know that it exists."""

    code = "not_found"


class Forbidden(RoomsError):
    """The caller may see the thing but may not do this to it."""

    code = "forbidden"


class InvalidTransition(RoomsError):
    """The invite's status machine does not allow this step from the current status."""

    code = "invalid_transition"


class Conflict(RoomsError):
    """The request is well formed but clashes with the current state."""

    code = "conflict"


class Unprocessable(RoomsError):
    """The request names things that exist but cannot be combined (e.g. SMS to a contact without phone)."""

    code = "unprocessable"


class NoPhoneNumber(Unprocessable):
    """An SMS is needed (an invite or a security code) and the contact has no phone number."""

    code = "no_phone_number"


class TooManyRequests(RoomsError):
    """Asked again too soon or too often; asking again after `retry_after_s` seconds can succeed."""

    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int, code: str = "") -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        if code:
            self.code = code


class CodeRejected(RoomsError):
    """The claimant's security code is wrong; `attempts_left` more tries before the code is dead."""

    code = "code_wrong"

    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class CodeUnusable(RoomsError):
    """No security code can be checked: none was sent, or the newest one expired or was used."""

    code = "code_expired"


class CodeNotRequired(Conflict):
    """The link's portal does not ask claimants for an SMS security code."""

    code = "sms_code_not_required"


class GrantRequired(RoomsError):
    """The portal asks for the SMS security code, and no valid grant of a correct code came with the link."""

    code = "sms_code_required"


class LinkUnusable(RoomsError):
    """The claimant's link belongs to a closed or expired invite."""

    code = "invite_closed"


class DeliveryError(RoomsError):
    """A channel failed to hand a message over; the delivery queue retries it."""

    code = "delivery_failed"


class DatabaseUnavailable(RoomsError):
    """The database cannot be reached (refused, lost or still starting): a fault of ours, not the caller's."""

    code = "database_unavailable"
