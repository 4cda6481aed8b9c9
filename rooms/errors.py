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


class LinkUnusable(RoomsError):
    """The claimant's link belongs to a closed or expired invite."""

    code = "invite_closed"


class DeliveryError(RoomsError):
    """A channel failed to hand a message over; the delivery queue retries it."""

    code = "delivery_failed"
